import Foundation
import FreshetCore
import Logging
import ServiceLifecycle

/// Applies change jobs to Redis, in order, many commands per round trip, on one connection owned by one thread.
///
/// `submit` queues a job (waiting while `maxPending` operations are queued); the thread pipelines what is queued and
/// reports each job on `completions` once Redis acknowledged it.
///
/// While Redis is away (down, hung past `timeout`, or the connection killed) the jobs wait in a backlog and are retried
/// in order on reconnect (UNLINK and SET are idempotent). Their events are released after `timeout`, so subscribers
/// keep receiving changes. When the backlog passes `maxPending` operations or the outage `maxOutage` seconds, the
/// backlog is dropped and a gap recorded; once Redis answers again every key matching the repair patterns is flushed
/// and a repair completion (with `repairCause`) is reported, so that subscribers get a resync.
///
/// On graceful shutdown it flushes what is queued for at most `shutdownTimeout` seconds; what is left is logged as a gap.
public final class RedisWriter: Service, @unchecked Sendable {
    /// Completions in the order of the jobs, a batch at a time (a pipelined round trip's jobs together).
    public let completions: AsyncStream<[RedisCompletion]>
    private let completionSink: AsyncStream<[RedisCompletion]>.Continuation
    private let endpoint: RedisEndpoint
    private let timeout: Double
    private let maxPending: Int
    private let maxOutage: Double
    private let shutdownTimeout: Double
    private let logger: Logger
    private let observer: RedisWriterObserver?

    /// Guards everything below.
    private let condition = NSCondition()
    private var queue: [RedisJob] = []
    private var queueHead = 0
    /// Operations not yet acknowledged (queued or in the thread's backlog): the `freshet_redis_pending` gauge.
    private var pendingOperations = 0
    /// Operations in `queue`, not yet taken by the thread: what `submit` waits on.
    private var queuedOperations = 0
    private var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    private var stopping = false
    private var deadline: ContinuousClock.Instant?
    private var connected = false
    private var gapOpen = false
    private var repairPatterns: [String] = []
    private var flushOnGap = true

    /// Operations per pipelined round trip.
    static let batchLimit = 2048
    /// Keys per SCAN step and per UNLINK in a pattern flush.
    static let scanCount = 1000
    /// Seconds between PINGs while idle.
    static let idlePing = 2.0

    public init(
        endpoint: RedisEndpoint, timeout: Double, maxPending: Int, maxOutage: Double = 30, shutdownTimeout: Double,
        logger: Logger, observer: RedisWriterObserver? = nil
    ) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.maxPending = maxPending
        self.maxOutage = maxOutage
        self.shutdownTimeout = shutdownTimeout
        self.logger = logger
        self.observer = observer
        (completions, completionSink) = AsyncStream.makeStream(of: [RedisCompletion].self)
    }

    /// The patterns a gap repair flushes (every configured key template), and whether it flushes at all (`on_gap`).
    public func configureRepair(patterns: [String], flush: Bool) {
        condition.lock()
        repairPatterns = patterns
        flushOnGap = flush
        condition.unlock()
    }

    /// Whether Redis answers and no gap of the writer's own waits for repair.
    public var isConnected: Bool {
        condition.lock()
        defer { condition.unlock() }
        return connected && !gapOpen
    }

    /// Operations queued and not yet acknowledged.
    public var pending: Int {
        condition.lock()
        defer { condition.unlock() }
        return pendingOperations
    }

    /// Queues a job, waiting while the queue holds `maxPending` operations.
    public func submit(_ job: RedisJob) async {
        await submit([job])
    }

    /// Queues jobs in order (one statement's changes), waiting while the queue holds `maxPending` operations. The
    /// writer sees them together, so they share pipelined round trips.
    public func submit(_ jobs: [RedisJob]) async {
        while !tryEnqueue(jobs) {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if !waitForSpace(continuation) { continuation.resume() }
            }
        }
    }

    private func hasSpace() -> Bool {
        queuedOperations < maxPending || queue.count == queueHead || stopping
    }

    private func tryEnqueue(_ jobs: [RedisJob]) -> Bool {
        condition.lock()
        guard hasSpace() else {
            condition.unlock()
            return false
        }
        queue.append(contentsOf: jobs)
        var operations = 0
        for job in jobs { operations += job.operations.count }
        pendingOperations += operations
        queuedOperations += operations
        let pending = pendingOperations
        condition.signal()
        condition.unlock()
        observer?.pendingChanged(pending)
        return true
    }

    /// Parks the continuation until the thread frees space; false if there is space already.
    private func waitForSpace(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if hasSpace() { return false }
        spaceWaiters.append(continuation)
        return true
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            // Cancelled: stop twice, so the thread does not wait for the flush.
            await runOnDedicatedThread(name: "freshet-redis", body: { self.loop() }, stop: { self.stop() }, cancelStop: { self.stop() })
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Flushes what is queued (for at most `shutdownTimeout`), then ends the thread and `completions`.
    public func stop() {
        condition.lock()
        if !stopping {
            stopping = true
            deadline = .now + .seconds(shutdownTimeout)
        } else {
            deadline = .now  // a second stop: give up at once
        }
        condition.broadcast()
        condition.unlock()
    }

    private func setConnected(_ value: Bool) {
        condition.lock()
        let changed = connected != value
        connected = value
        condition.unlock()
        if changed { observer?.connectionChanged(connected: value) }
    }

    private func setGapOpen(_ value: Bool) {
        condition.lock()
        gapOpen = value
        condition.unlock()
    }

    /// Removes `count` operations from the pending count and wakes waiting submitters.
    private func release(operations count: Int) {
        condition.lock()
        pendingOperations -= count
        let pending = pendingOperations
        let waiters = spaceWaiters
        spaceWaiters.removeAll()
        condition.unlock()
        observer?.pendingChanged(pending)
        for waiter in waiters { waiter.resume() }
    }

    /// A job taken from the queue, and whether its completion was already reported (released during an outage).
    private struct Pending {
        var job: RedisJob
        var reported = false
    }

    // MARK: - The writer thread

    private func loop() {
        var connection: RedisConnection? = ping(nil)  // connect at once, so readiness is known without waiting for work
        var backoff = Backoff(base: 0.05, cap: 1)
        var backlog: [Pending] = []
        var backlogOperations = 0
        var outageSince: ContinuousClock.Instant? = connection == nil ? .now : nil
        var gapCause: String?
        var lastActivity = ContinuousClock.now
        var failedAttempt: RedisError?
        var outbox: [RedisCompletion] = []

        func report(_ pending: inout Pending, acknowledged: Bool, failures: Int = 0, keys: Int = 0) {
            guard !pending.reported else { return }
            pending.reported = true
            outbox.append(RedisCompletion(job: pending.job, failures: failures, acknowledged: acknowledged, keysFlushed: keys))
        }

        /// Hands the completions reported so far to `completions`, as one batch.
        func deliver() {
            guard !outbox.isEmpty else { return }
            completionSink.yield(outbox)
            outbox.removeAll(keepingCapacity: true)
        }

        func recordGap(_ cause: String, detail: String) {
            for i in backlog.indices { report(&backlog[i], acknowledged: false) }
            let dropped = backlogOperations
            backlog.removeAll()
            backlogOperations = 0
            release(operations: dropped)
            if gapCause == nil { gapCause = cause }
            setGapOpen(true)
            observer?.gapRecorded(cause: cause)
            logger.error("Redis operations dropped; keys will be repaired when Redis answers", metadata: [
                "gap": "\(cause)", "operations": "\(dropped)", "detail": "\(detail)",
            ])
        }

        /// Called after every failed attempt while Redis is away: release events past `timeout`, record a gap past
        /// `maxPending` operations or `maxOutage` seconds, back off. Returns false when shutting down past the deadline.
        func outage(_ error: RedisError, stopping isStopping: Bool, pastDeadline: Bool) -> Bool {
            setConnected(false)
            let since = outageSince ?? .now
            outageSince = since
            let down = ContinuousClock.now - since
            if isStopping && pastDeadline {
                recordGap("shutdown", detail: "Redis unreachable at shutdown: \(error.message)")
                return false
            }
            if down >= .seconds(timeout) {
                for i in backlog.indices { report(&backlog[i], acknowledged: false) }
            }
            if backlogOperations > maxPending {
                recordGap("redis_overflow", detail: "more than redis.max_pending (\(maxPending)) operations waiting")
            } else if down >= .seconds(maxOutage), !backlog.isEmpty {
                recordGap("redis_outage", detail: "Redis away for more than redis.max_outage (\(maxOutage)s)")
            }
            deliver()
            let delay = backoff.next()
            if backoff.attempt <= 1 || backoff.attempt % 20 == 0 {
                logger.warning("cannot reach Redis; retrying", metadata: [
                    "error": "\(error.message)", "waiting_operations": "\(backlogOperations)",
                ])
            }
            Thread.sleep(forTimeInterval: min(delay, 0.25))
            return true
        }

        while true {
            deliver()
            // 1. Take queued jobs: all of them while Redis is away (their events may have to be released), else a batch.
            condition.lock()
            if queue.count == queueHead && backlog.isEmpty && gapCause == nil && !stopping {
                _ = condition.wait(until: Date().addingTimeInterval(connection == nil ? 0.25 : Self.idlePing))
            }
            var limit = connection == nil ? Int.max : Self.batchLimit
            var taken = 0
            while queueHead < queue.count && limit > 0 {
                let job = queue[queueHead]
                backlog.append(Pending(job: job))
                backlogOperations += job.operations.count
                taken += job.operations.count
                limit -= max(job.operations.count, 1)
                queueHead += 1
            }
            if queueHead == queue.count {
                queue.removeAll(keepingCapacity: queue.count < 65_536)
                queueHead = 0
            }
            queuedOperations -= taken
            let isStopping = stopping
            let pastDeadline = deadline.map { ContinuousClock.now >= $0 } ?? false
            let waiters = taken > 0 ? spaceWaiters : []
            if taken > 0 { spaceWaiters.removeAll() }
            condition.unlock()
            for waiter in waiters { waiter.resume() }

            if backlog.isEmpty && gapCause == nil {
                if isStopping { break }
                if connection == nil || ContinuousClock.now - lastActivity >= .seconds(Self.idlePing) {
                    connection = ping(connection)
                    lastActivity = .now
                    if connection == nil { outageSince = outageSince ?? .now } else { outageSince = nil }
                }
                continue
            }

            // 2. A connection, or the outage rules.
            if connection == nil {
                do {
                    // Connected is not answering (a hung Redis still accepts connections): readiness waits for a reply.
                    connection = try RedisConnection.connect(endpoint, timeout: timeout)
                } catch {
                    if outage(error, stopping: isStopping, pastDeadline: pastDeadline) { continue } else { break }
                }
            }

            // 3. Repair a gap of the writer's own: flush every template pattern, then report it.
            if let cause = gapCause {
                condition.lock()
                let patterns = flushOnGap ? repairPatterns : []
                condition.unlock()
                do {
                    var keys = 0
                    for pattern in patterns { keys += try RedisWriter.unlinkMatching(pattern, on: connection!) }
                    observer?.keysFlushed(keys)
                    var repair = Pending(job: RedisJob(operations: [], event: nil, repairCause: cause))
                    report(&repair, acknowledged: true, keys: keys)
                    gapCause = nil
                    setConnected(true)
                    outageSince = nil
                    backoff.reset()
                    setGapOpen(false)
                    logger.warning("gap repaired", metadata: ["gap": "\(cause)", "keys_flushed": "\(keys)"])
                } catch {
                    connection = nil
                    if outage(error, stopping: isStopping, pastDeadline: pastDeadline) { continue } else { break }
                }
            }

            // 4. Run the backlog in order, a pipelined batch at a time.
            while !backlog.isEmpty {
                var count = 0
                var operations = 0
                while count < backlog.count && (operations < Self.batchLimit || count == 0) {
                    operations += backlog[count].job.operations.count
                    count += 1
                }
                let steps = RedisBatch.steps(for: backlog[0..<count].map(\.job))
                do {
                    let result = try execute(steps, on: connection!)
                    for i in 0..<count {
                        report(&backlog[i], acknowledged: true, failures: result.failures > 0 ? min(result.failures, backlog[i].job.operations.count) : 0,
                               keys: result.keysFlushed)
                    }
                    backlog.removeFirst(count)
                    deliver()
                    backlogOperations -= operations
                    release(operations: operations)
                    lastActivity = .now
                    setConnected(true)
                    if outageSince != nil {
                        logger.info("Redis answers again; waiting operations applied")
                        outageSince = nil
                        backoff.reset()
                    }
                } catch {
                    if outageSince == nil {
                        logger.error("Redis connection lost; the batch will be retried", metadata: ["error": "\(error.message)"])
                    }
                    connection = nil
                    failedAttempt = error
                    break
                }
            }
            if let error = failedAttempt {
                failedAttempt = nil
                if !outage(error, stopping: isStopping, pastDeadline: pastDeadline) { break }
            }
        }
        deliver()
        condition.lock()
        let waiters = spaceWaiters
        spaceWaiters.removeAll()
        condition.unlock()
        for waiter in waiters { waiter.resume() }
        completionSink.finish()
    }

    private func ping(_ connection: RedisConnection?) -> RedisConnection? {
        do {
            let live = try connection ?? RedisConnection.connect(endpoint, timeout: timeout)
            _ = try live.command(["PING"])
            setConnected(true)
            return live
        } catch {
            if isConnected { logger.warning("Redis does not answer PING", metadata: ["error": "\(error)"]) }
            setConnected(false)
            return nil
        }
    }

    /// Runs the steps; returns how many operations Redis refused and how many keys pattern flushes deleted.
    /// Throws when the connection is lost.
    private func execute(_ steps: [RedisBatch.Step], on connection: RedisConnection) throws(RedisError) -> (failures: Int, keysFlushed: Int) {
        var failures = 0
        var flushed = 0
        for step in steps {
            switch step {
            case .pipeline(let operations):
                for operation in operations {
                    try connection.append(operation.arguments!)
                }
                var ok: [String: Int] = [:]
                var failed: [String: Int] = [:]
                for operation in operations {
                    if case .error(let message) = try connection.reply() {
                        failed[operation.action, default: 0] += 1
                        failures += 1
                        logger.error("Redis refused a command", metadata: [
                            "action": "\(operation.action)", "key": "\(operation.key)", "error": "\(message)",
                        ])
                    } else {
                        ok[operation.action, default: 0] += 1
                    }
                }
                for action in Set(ok.keys).union(failed.keys) {
                    observer?.commandsCompleted(action: action, ok: ok[action] ?? 0, failed: failed[action] ?? 0)
                }
            case .flush(let pattern):
                let deleted = try RedisWriter.unlinkMatching(pattern, on: connection)
                flushed += deleted
                observer?.commandsCompleted(action: "flush", ok: 1, failed: 0)
                observer?.keysFlushed(deleted)
                logger.info("flushed keys by pattern", metadata: ["pattern": "\(pattern)", "keys": "\(deleted)"])
            }
        }
        return (failures, flushed)
    }

    /// SCAN + UNLINK every key matching `pattern`; returns how many were deleted. Never uses KEYS, and pauses briefly
    /// between full batches so that Redis stays responsive to the application.
    public static func unlinkMatching(_ pattern: String, on connection: RedisConnection) throws(RedisError) -> Int {
        var cursor = "0"
        var deleted = 0
        repeat {
            let reply = try connection.command(["SCAN", cursor, "MATCH", pattern, "COUNT", String(scanCount)])
            guard case .array(let parts) = reply, parts.count == 2, let next = parts[0].text, case .array(let keys) = parts[1] else {
                throw RedisError(code: .commandFailed, message: "unexpected SCAN reply: \(reply)")
            }
            cursor = next
            let names = keys.compactMap(\.text)
            if !names.isEmpty {
                if case .integer(let n) = try connection.command(["UNLINK"] + names) { deleted += Int(n) }
                if names.count >= scanCount / 2 { Thread.sleep(forTimeInterval: 0.001) }
            }
        } while cursor != "0"
        return deleted
    }
}
