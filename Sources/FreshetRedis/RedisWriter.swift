import Foundation
import FreshetCore
import FreshetSystem
import Logging
import ServiceLifecycle

/// Applies change jobs to Redis, in order, many commands per round trip, on connections owned by one thread: one
/// server, the master Redis Sentinel names, or a Redis Cluster's masters (`RedisTarget`).
///
/// The parts: `RedisJobQueue` (submissions, never waiting; the `max_pending` bound), `RedisWriterState` (the outage
/// and refusal rules, a value), `RedisExecutor` (runs a batch and checks every reply), and this thread loop that
/// joins them. Each job is reported on `completions` once Redis acknowledged it, or once its event had to be
/// released (Redis away past `timeout`, a refusal, or a gap); a gap's repair (flush every template pattern) is
/// reported as a completion with `repairCause`, so that subscribers get a resync.
///
/// On graceful shutdown it flushes what is queued for at most `shutdownTimeout` seconds; what is left is a gap.
package final class RedisWriter: Service, @unchecked Sendable {
    /// Completions in the order of the jobs, a batch at a time (a pipelined round trip's jobs together).
    package let completions: AsyncStream<[RedisCompletion]>
    private let completionSink: AsyncStream<[RedisCompletion]>.Continuation
    private let topology: RedisTopology
    private let tls: RedisTLSContext?
    private let timeout: Double
    /// Seconds of applied operations re-applied after a master changes (`redis.replay_after_failover`).
    private let replayWindow: Double
    private let maxOutage: Double
    private let shutdownTimeout: Double
    private let logger: Logger
    private let observer: RedisWriterObserver?
    private let queue: RedisJobQueue
    /// The source replays what was not confirmed (replication): never drop the backlog (no overflow, outage or
    /// shutdown gaps); the source stops reading instead.
    private let durable: Bool
    private let onApplied: (@Sendable (JobConfirmation) -> Void)?
    /// `http.relay: redis`: each batch's events are appended to the relay stream before they are reported.
    private let relay: RelayStreamWriter?
    /// `http.relay: redis`: operations are applied only while it is open (this process holds the writer lock).
    private let fence: WriterFence?

    /// Guards the repair settings and the published state.
    private let lock = NSLock()
    private var repairPatterns: [String] = []
    private var flushOnGap = true
    /// The thread's state as last published, for `/readyz`.
    private var published: RedisWriterState
    private var answered = false

    /// Operations per pipelined round trip.
    static let batchLimit = 2048
    /// Applied operations kept for a failover replay; past it the replay would be incomplete and a flush is done.
    private let historyLimit: Int
    /// Seconds between PINGs while idle.
    static let idlePing = 2.0
    /// Completion batches waiting for the publisher before the oldest are dropped (and subscribers told to resync).
    package static let defaultCompletionBuffer = 4096

    package convenience init(
        endpoint: RedisEndpoint, timeout: Double, maxPending: Int, maxOutage: Double = 30, shutdownTimeout: Double,
        logger: Logger, observer: RedisWriterObserver? = nil, completionBuffer: Int = RedisWriter.defaultCompletionBuffer,
        durable: Bool = false, onApplied: (@Sendable (JobConfirmation) -> Void)? = nil
    ) {
        self.init(
            topology: .standalone(endpoint), tls: nil, timeout: timeout, maxPending: maxPending, maxOutage: maxOutage,
            shutdownTimeout: shutdownTimeout, logger: logger, observer: observer, completionBuffer: completionBuffer,
            durable: durable, onApplied: onApplied
        )
    }

    package init(
        topology: RedisTopology, tls: RedisTLSContext?, timeout: Double, maxPending: Int, maxOutage: Double = 30,
        replayAfterFailover: Double = 15, shutdownTimeout: Double,
        logger: Logger, observer: RedisWriterObserver? = nil, completionBuffer: Int = RedisWriter.defaultCompletionBuffer,
        durable: Bool = false, onApplied: (@Sendable (JobConfirmation) -> Void)? = nil, relay: RelayStreamWriter? = nil,
        fence: WriterFence? = nil
    ) {
        self.fence = fence
        self.durable = durable
        self.onApplied = onApplied
        self.relay = relay
        self.topology = topology
        self.tls = tls
        self.replayWindow = replayAfterFailover
        self.historyLimit = max(maxPending == Int.max ? 100_000 : maxPending, 10_000)
        self.timeout = timeout
        self.maxOutage = maxOutage
        self.shutdownTimeout = shutdownTimeout
        self.logger = logger
        self.observer = observer
        self.queue = RedisJobQueue(maxPending: durable ? Int.max : maxPending)
        self.published = RedisWriterState(timeout: timeout, maxOutage: durable ? .infinity : maxOutage)
        (completions, completionSink) = AsyncStream.makeStream(
            of: [RedisCompletion].self, bufferingPolicy: .bufferingOldest(completionBuffer)
        )
    }

    /// The patterns a gap repair flushes (every configured key template), and whether it flushes at all (`on_gap`).
    package func configureRepair(patterns: [String], flush: Bool) {
        lock.withLock {
            repairPatterns = patterns
            flushOnGap = flush
        }
    }

    /// Why `/readyz` must say 503 because of Redis: it does not answer, cannot take writes now, refused a command,
    /// or a gap of the writer's own waits for repair. Empty when all is well.
    package var notReadyReasons: [String] {
        lock.withLock {
            !answered && published.fault == nil ? ["Redis has not answered yet"] : published.notReadyReasons(now: .now)
        }
    }

    /// Operations queued and not yet acknowledged.
    package var pending: Int { queue.pendingOperations }

    /// Queues a job. Never waits: past `maxPending` waiting operations the queue overflows (a `redis_overflow` gap).
    package func submit(_ job: RedisJob) {
        submit([job])
    }

    /// Queues jobs in order (one statement's changes); the writer sees them together, so they share round trips.
    /// Never waits: past `maxPending` waiting operations the queue overflows (a `redis_overflow` gap).
    package func submit(_ jobs: [RedisJob]) {
        let (pending, dropped) = queue.submit(jobs)
        observer?.pendingChanged(pending)
        if dropped > 0 { observer?.operationsDropped(dropped) }
    }

    package func run() async throws {
        await withGracefulShutdownHandler {
            // Cancelled: stop twice, so the thread does not wait for the flush.
            await runOnDedicatedThread(name: "freshet-redis", body: { self.loop() }, stop: { self.stop() }, cancelStop: { self.stop() })
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Flushes what is queued (for at most `shutdownTimeout`), then ends the thread and `completions`.
    package func stop() {
        queue.stop(timeout: shutdownTimeout)
    }

    // MARK: - The writer thread

    /// A job taken from the queue, and whether its completion was already reported (released early).
    private struct Pending {
        var job: RedisJob
        var reported = false
    }

    /// Everything the thread owns; only the thread touches it.
    private struct ThreadState {
        let target: RedisTarget
        /// The last attempt reached Redis.
        var connected = false
        var state: RedisWriterState
        /// What was applied in the last `replayWindow` seconds, for a failover replay.
        var history: ReplayHistory
        var backlog: [Pending] = []
        var backlogOperations = 0
        var outbox: [RedisCompletion] = []
        var lastActivity = ContinuousClock.now
        var refusalLog = RefusalLog()
        /// Completions were dropped (the buffer was full): a resync is owed.
        var eventsDropped = false
        /// Confirmations of applied jobs not yet reported (a refusal holds them until its repair).
        var heldConfirmations: [JobConfirmation] = []

        /// Reports the backlog's job at `index` (once).
        mutating func report(_ index: Int, acknowledged: Bool, keys: Int = 0) {
            guard !backlog[index].reported else { return }
            backlog[index].reported = true
            outbox.append(RedisCompletion(job: backlog[index].job, acknowledged: acknowledged, keysFlushed: keys))
        }

        /// Reports the events of every waiting job but gap repairs (released early).
        mutating func releaseEvents() {
            for i in backlog.indices where backlog[i].job.repairCause == nil { report(i, acknowledged: false) }
        }
    }

    private func loop() {
        var t = ThreadState(
            target: makeRedisTarget(topology, tls: tls, timeout: timeout, logger: logger, observer: observer),
            state: RedisWriterState(timeout: timeout, maxOutage: durable ? .infinity : maxOutage),
            history: ReplayHistory(window: replayWindow, limit: historyLimit)
        )
        // Connect at once, so readiness is known without waiting for work.
        ping(&t)
        while true {
            deliver(&t)
            let taken = queue.take(
                limit: !t.connected ? Int.max : Self.batchLimit,  // all while away: their events may be released
                wait: t.backlog.isEmpty && t.state.gapCause == nil,
                idle: !t.connected ? 0.25 : Self.idlePing
            )
            for job in taken.jobs {
                t.backlog.append(Pending(job: job))
                t.backlogOperations += job.operations.count
            }
            if taken.overflowed {
                dropBacklog(&t, cause: "redis_overflow", detail: "more than redis.max_pending (\(queue.maxPending)) operations waiting for Redis")
            }
            let pastDeadline = taken.deadline.map { ContinuousClock.now >= $0 } ?? false
            reportLeadingEmptyJobs(&t)

            if t.backlog.isEmpty && t.state.gapCause == nil {
                if taken.stopping { break }
                if !t.connected || ContinuousClock.now - t.lastActivity >= .seconds(Self.idlePing) { ping(&t) }
                if t.connected && t.target.masterChange != nil && fence?.isOpen != false, let fault = replay(&t) {
                    _ = fail(&t, fault, stopping: taken.stopping, pastDeadline: pastDeadline)
                }
                continue
            }

            // `http.relay: redis`: nothing is applied once the writer lock is lost. When stopping, what is left is the
            // next writer's (the slot sends it again; in notify mode the next writer starts with a flush).
            if let fence, !fence.isOpen {
                if taken.stopping { break }
                Foundation.Thread.sleep(forTimeInterval: 0.05)
                continue
            }

            // Redis answers (connected is not answering: a hung Redis still accepts connections).
            if !t.connected {
                do {
                    try t.target.check()
                    t.connected = true
                } catch {
                    if fail(&t, .init(error), stopping: taken.stopping, pastDeadline: pastDeadline) { continue } else { break }
                }
            }

            // A gap of the writer's own: flush every template pattern first, then report it.
            if t.state.gapCause != nil {
                if let fault = repair(&t) {
                    if fail(&t, fault, stopping: taken.stopping, pastDeadline: pastDeadline) { continue } else { break }
                }
            }

            // The backlog in order, a pipelined batch at a time.
            if let fault = runBacklog(&t) {
                if !fail(&t, fault, stopping: taken.stopping, pastDeadline: pastDeadline) { break }
            }
        }
        deliver(&t)
        completionSink.finish()
    }

    /// Hands the completions reported so far to `completions`, as one batch. When the publisher is so far behind
    /// that the buffer is full, the batch is dropped and counted, and a resync (`events_dropped`) goes out as soon as
    /// there is room again: subscribers never miss an event silently.
    private func deliver(_ t: inout ThreadState) {
        if t.eventsDropped {
            let resync = RedisCompletion(job: RedisJob(operations: [], event: nil, repairCause: "events_dropped"), acknowledged: true, keysFlushed: 0)
            if case .dropped = completionSink.yield([resync]) {
                observer?.bufferDropped("completions", count: t.outbox.count)
                t.outbox.removeAll(keepingCapacity: true)
                return
            }
            t.eventsDropped = false
        }
        guard !t.outbox.isEmpty else { return }
        if case .dropped = completionSink.yield(t.outbox) {
            observer?.bufferDropped("completions", count: t.outbox.count)
            logger.error("the event publisher is too far behind; events dropped, subscribers will be told to resync", metadata: [
                "events": "\(t.outbox.count)",
            ])
            t.eventsDropped = true
        }
        t.outbox.removeAll(keepingCapacity: true)
    }


    /// Jobs with nothing to do (their operations were dropped by an overflow) complete as soon as nothing is ahead.
    private func reportLeadingEmptyJobs(_ t: inout ThreadState) {
        guard relay == nil else { return }  // with the relay every event goes through a batch (and the stream)
        var count = 0
        while count < t.backlog.count, t.backlog[count].job.operations.isEmpty, t.backlog[count].job.repairCause == nil {
            t.report(count, acknowledged: !t.backlog[count].job.dropped)
            if let confirms = t.backlog[count].job.confirms { t.heldConfirmations.append(confirms) }
            count += 1
        }
        if count > 0 { t.backlog.removeFirst(count) }
        if t.state.gapCause == nil { releaseConfirmations(&t) }
    }

    /// Drops the backlog (its events are released) and opens a gap.
    private func dropBacklog(_ t: inout ThreadState, cause: String, detail: String) {
        t.releaseEvents()
        // A pipeline repair job in the backlog stays: its flush is what the new gap needs too.
        t.backlog.removeAll { $0.job.repairCause == nil }
        let dropped = t.backlogOperations - t.backlog.reduce(0) { $0 + $1.job.operations.count }
        t.backlogOperations -= dropped
        let pending = queue.release(dropped)  // not inside `observer?.…(…)`: that skips its argument without an observer
        observer?.pendingChanged(pending)
        if dropped > 0 { observer?.operationsDropped(dropped) }
        openGap(&t, cause: cause, detail: detail, operations: dropped)
    }

    private func openGap(_ t: inout ThreadState, cause: String, detail: String, operations: Int) {
        t.state.openGap(cause)
        publish(t.state)
        observer?.gapRecorded(cause: cause)
        logger.error("Redis operations not applied; every key of every template will be flushed when Redis takes writes", metadata: [
            "gap": "\(cause)", "operations": "\(operations)", "detail": "\(detail)",
        ])
    }

    /// After a failed attempt: the outage rules, then back off. Returns false when the thread must end (shutting
    /// down past the deadline).
    private func fail(_ t: inout ThreadState, _ fault: RedisWriterState.Fault, stopping: Bool, pastDeadline: Bool) -> Bool {
        if case .notNow(let reply) = fault {
            t.target.reset()  // a failover may have moved the master behind this address
            // The server Freshet wrote to is a replica now: what it acknowledged before may never have reached the
            // new master. Replay the recent operations once writes go through again.
            if reply.word == "READONLY" && t.target.masterChange == nil { t.target.masterChange = "a master turned replica (READONLY)" }
        }
        if case .unreachable = fault { t.target.reset() }
        t.connected = false
        let decision = t.state.failed(fault, now: .now, hasBacklog: !t.backlog.isEmpty, stopping: stopping, pastDeadline: pastDeadline)
        publish(t.state)
        if decision.stop {
            if durable {
                // Nothing is lost: what was not applied was not confirmed, and the slot sends it again.
                logger.warning("Redis not writable at shutdown; the replication slot replays what was not applied", metadata: [
                    "waiting_operations": "\(t.backlogOperations)",
                ])
            } else {
                dropBacklog(&t, cause: "shutdown", detail: "Redis not writable at shutdown: \(fault.reason)")
            }
            return false
        }
        if decision.releaseEvents { t.releaseEvents() }
        if let cause = decision.dropBacklog {
            dropBacklog(&t, cause: cause, detail: "Redis not writable for more than redis.max_outage (\(maxOutage)s)")
        }
        deliver(&t)
        observer?.connectionChanged(connected: false)
        if decision.log {
            logger.warning("Redis does not take writes; retrying", metadata: [
                "reason": "\(fault.reason)", "waiting_operations": "\(t.backlogOperations)",
            ])
        }
        Foundation.Thread.sleep(forTimeInterval: decision.delay)
        return true
    }

    private func succeeded(_ t: inout ThreadState) {
        t.connected = true
        t.lastActivity = .now
        if t.state.succeeded() {
            logger.info("Redis takes writes again; waiting operations applied")
        }
        publish(t.state)
        observer?.connectionChanged(connected: true)
    }

    /// Flushes every template pattern (unless `on_gap: none`) and reports the repair; returns the fault when it could
    /// not be done (the gap stays open and the repair is retried).
    private func repair(_ t: inout ThreadState) -> RedisWriterState.Fault? {
        let patterns = lock.withLock { flushOnGap ? repairPatterns : [] }
        let executor = RedisExecutor(observer: observer)
        let result: RedisExecutor.Result
        do {
            result = try executor.run(patterns.map { .flush(pattern: $0) }, on: t.target)
        } catch {
            return .unreachable(error.message)
        }
        logRefusals(result.refusals, in: &t)
        if let reply = result.notNow { return .notNow(reply) }
        if let reply = result.unrepaired { return .repairRefused(reply) }
        if let relay, let cause = t.state.gapCause {
            do {
                try relay.append([RedisJob(operations: [], event: nil, repairCause: cause)], on: t.target)
            } catch {
                return .unreachable("relay stream: \(error.message)")
            }
        }
        let cause = t.state.repaired() ?? "unknown"
        t.state.clearRefusal()  // Redis deleted every key it was asked to
        releaseConfirmations(&t)
        t.outbox.append(RedisCompletion(
            job: RedisJob(operations: [], event: nil, repairCause: cause), acknowledged: true, keysFlushed: result.keysFlushed
        ))
        succeeded(&t)
        logger.warning("gap repaired", metadata: ["gap": "\(cause)", "keys_flushed": "\(result.keysFlushed)"])
        return nil
    }

    /// Runs the backlog, a pipelined batch at a time, until it is empty or an attempt fails (returned).
    private func runBacklog(_ t: inout ThreadState) -> RedisWriterState.Fault? {
        let executor = RedisExecutor(observer: observer)
        while !t.backlog.isEmpty {
            if let fence, !fence.isOpen { return nil }  // lost the writer lock meanwhile: nothing more (the loop waits)
            var count = 0
            var operations = 0
            while count < t.backlog.count && (operations < Self.batchLimit || count == 0) {
                operations += t.backlog[count].job.operations.count
                count += 1
                // A gap repair ends its batch: what follows it runs only once its flush was done (a refused flush
                // opens the writer's own gap, repaired before the rest of the backlog).
                if t.backlog[count - 1].job.repairCause != nil { break }
            }
            if t.target.masterChange != nil, let fault = replay(&t) { return fault }
            let steps = RedisBatch.steps(for: t.backlog[0..<count].map(\.job))
            let result: RedisExecutor.Result
            do {
                result = try executor.run(steps, on: t.target)
            } catch {
                if t.state.outageSince == nil {
                    logger.error("Redis connection lost; the batch will be retried", metadata: ["error": "\(error.message)"])
                }
                return .unreachable(error.message)
            }
            logRefusals(result.refusals, in: &t)
            if let reply = result.notNow { return .notNow(reply) }  // nothing reported: the batch is retried whole
            // The master changed while this batch ran: replay what came before it, then run it again (in that order,
            // so that no older operation lands after a newer one on the same key).
            if t.target.masterChange != nil { continue }
            if let relay {
                do {
                    try relay.append(t.backlog[0..<count].map(\.job), on: t.target)
                } catch {
                    return .init(error, context: "relay stream")
                }
            }
            t.history.record(t.backlog[0..<count].flatMap(\.job.operations), now: .now)
            let refused = result.unrepaired != nil
            for i in 0..<count {
                t.report(i, acknowledged: !refused, keys: result.keysFlushed)
                if let confirms = t.backlog[i].job.confirms { t.heldConfirmations.append(confirms) }
            }
            if !refused { releaseConfirmations(&t) }  // a refusal holds them until its repair is done
            t.backlog.removeFirst(count)
            t.backlogOperations -= operations
            let pending = queue.release(operations)
            observer?.pendingChanged(pending)
            deliver(&t)
            if let reply = result.unrepaired {
                t.state.refused(reply, now: .now)
                openGap(&t, cause: "redis_refused", detail: "Redis refused to delete a key: \(reply)", operations: 0)
                succeeded(&t)
                return nil  // the repair runs before the rest of the backlog
            }
            if result.refusals.isEmpty { t.state.clearRefusal() } else { t.state.refused(result.refusals[0].reply, now: .now) }
            succeeded(&t)
        }
        return nil
    }

    /// Reports the held confirmations, in order (`onApplied` keeps the newest of each kind for its slot history).
    private func releaseConfirmations(_ t: inout ThreadState) {
        guard !t.heldConfirmations.isEmpty else { return }
        defer { t.heldConfirmations.removeAll(keepingCapacity: true) }
        guard let onApplied else { return }
        for confirmation in t.heldConfirmations { onApplied(confirmation) }
    }

    private func ping(_ t: inout ThreadState) {
        do throws(RedisError) {
            try t.target.check()
            t.connected = true
            observer?.nodesChanged(t.target.nodeCount)
            if t.state.succeeded() { logger.info("Redis answers again") }
        } catch {
            t.connected = false
            t.target.reset()
            // A server that refuses PING (LOADING, NOAUTH after a restart, …) is not writable either.
            let fault = RedisWriterState.Fault(error)
            if case .unreachable = fault, t.state.fault == nil {
                logger.warning("Redis does not answer PING", metadata: ["error": "\(error.message)"])
            }
            _ = t.state.failed(fault, now: .now, hasBacklog: false, stopping: false, pastDeadline: false)
        }
        t.lastActivity = .now
        publish(t.state)
        observer?.connectionChanged(connected: t.state.fault == nil)
    }

    /// A master changed (failover): applies the operations of the last `replayWindow` seconds again, in their order,
    /// before anything newer. When the history does not cover the window (more than `historyLimit` operations), a
    /// `redis_failover` gap is opened instead (every template pattern is flushed). Returns the fault when Redis
    /// could not take the replay (the change stays pending).
    private func replay(_ t: inout ThreadState) -> RedisWriterState.Fault? {
        guard let change = t.target.masterChange else { return nil }
        if !t.history.complete(now: .now) {
            t.target.masterChange = nil
            openGap(&t, cause: "redis_failover", detail: "the master changed (\(change)) and more than \(historyLimit) operations were applied in the last \(replayWindow) s", operations: 0)
            return nil
        }
        let operations = t.history.operations
        let executor = RedisExecutor(observer: observer)
        do {
            let result = try executor.run(RedisBatch.steps(for: [RedisJob(operations: operations, event: nil)]), on: t.target)
            if let reply = result.notNow { return .notNow(reply) }
        } catch {
            return .init(error)
        }
        if t.target.masterChange != change { return nil }  // changed again during the replay: replay again
        t.target.masterChange = nil
        observer?.failoverReplayed(operations: operations.count)
        logger.warning("Redis master changed; recent operations applied again", metadata: [
            "change": "\(change)", "operations": "\(operations.count)", "window_seconds": "\(replayWindow)",
        ])
        return nil
    }

    private func publish(_ state: RedisWriterState) {
        lock.withLock {
            published = state
            answered = answered || state.fault == nil
        }
    }

    /// Logs error replies once per burst: the first of each reply word, then at most one line every 10 s with the
    /// count since. The key's template pattern is logged, never a value (nor the key's own values).
    private func logRefusals(_ refusals: [RedisExecutor.Refusal], in t: inout ThreadState) {
        guard !refusals.isEmpty else { return }
        let patterns = lock.withLock { repairPatterns }
        for refusal in refusals {
            guard let suppressed = t.refusalLog.shouldLog(refusal.reply.word, now: .now) else { continue }
            let pattern = refusal.action == "flush" ? refusal.key : (patterns.first { Glob.matches($0, refusal.key) } ?? "?")
            logger.error("Redis refused a command", metadata: [
                "action": "\(refusal.action)", "key_pattern": "\(pattern)", "reply": "\(refusal.reply)",
                "similar_since_last_line": "\(suppressed)",
            ])
        }
    }
}

/// Rate-limits the refusal log: one line per reply word per `interval`, counting what it held back.
struct RefusalLog {
    static let interval = 10.0
    private var last: [String: (at: ContinuousClock.Instant, suppressed: Int)] = [:]

    /// The number of refusals held back since the last line, when this one is to be logged; nil to stay quiet.
    mutating func shouldLog(_ word: String, now: ContinuousClock.Instant) -> Int? {
        if let entry = last[word], now - entry.at < .seconds(Self.interval) {
            last[word]!.suppressed += 1
            return nil
        }
        let suppressed = last[word]?.suppressed ?? 0
        last[word] = (now, 0)
        return suppressed
    }
}
