import Foundation
import FreshetCore
import Logging
import ServiceLifecycle

/// Applies change jobs to Redis, in order, many commands per round trip, on one connection owned by one thread.
///
/// `submit` queues a job (waiting while `maxPending` operations are queued); the thread takes everything queued,
/// pipelines it, and reports each job on `completions` once Redis acknowledged it. A lost connection is replaced
/// with capped backoff and the batch retried (UNLINK and SET are idempotent). On graceful shutdown it flushes what
/// is queued for at most `shutdownTimeout` seconds.
public final class RedisWriter: Service, @unchecked Sendable {
    public let completions: AsyncStream<RedisCompletion>
    private let completionSink: AsyncStream<RedisCompletion>.Continuation
    private let endpoint: RedisEndpoint
    private let timeout: Double
    private let maxPending: Int
    private let shutdownTimeout: Double
    private let logger: Logger
    private let observer: RedisWriterObserver?

    /// Guards everything below.
    private let condition = NSCondition()
    private var queue: [RedisJob] = []
    private var queueHead = 0
    private var pendingOperations = 0
    private var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    private var stopping = false
    private var deadline: ContinuousClock.Instant?
    private var connected = false

    /// Operations per pipelined round trip.
    static let batchLimit = 2048
    /// Keys per SCAN step and per UNLINK in a pattern flush.
    static let scanCount = 1000
    /// Seconds between PINGs while idle.
    static let idlePing = 5.0

    public init(
        endpoint: RedisEndpoint, timeout: Double, maxPending: Int, shutdownTimeout: Double, logger: Logger,
        observer: RedisWriterObserver? = nil
    ) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.maxPending = maxPending
        self.shutdownTimeout = shutdownTimeout
        self.logger = logger
        self.observer = observer
        (completions, completionSink) = AsyncStream.makeStream(of: RedisCompletion.self)
    }

    /// Whether the last command or PING succeeded.
    public var isConnected: Bool {
        condition.lock()
        defer { condition.unlock() }
        return connected
    }

    /// Operations queued and not yet acknowledged.
    public var pending: Int {
        condition.lock()
        defer { condition.unlock() }
        return pendingOperations
    }

    /// Queues a job, waiting while the queue holds `maxPending` operations.
    public func submit(_ job: RedisJob) async {
        while !tryEnqueue(job) {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if !waitForSpace(continuation) { continuation.resume() }
            }
        }
    }

    private func hasSpace() -> Bool {
        pendingOperations < maxPending || queue.count == queueHead || stopping
    }

    private func tryEnqueue(_ job: RedisJob) -> Bool {
        condition.lock()
        guard hasSpace() else {
            condition.unlock()
            return false
        }
        queue.append(job)
        pendingOperations += job.operations.count
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
            await withTaskCancellationHandler {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    let thread = Thread { [self] in
                        self.loop()
                        done.resume()
                    }
                    thread.name = "freshet-redis"
                    thread.start()
                }
            } onCancel: {
                self.stop()
                self.stop()  // cancelled: do not wait for the flush
            }
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

    private func pastDeadline() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if let deadline { return ContinuousClock.now >= deadline }
        return false
    }

    private func loop() {
        var connection: RedisConnection?
        var backoff = Backoff()
        var lastActivity = ContinuousClock.now
        connection = ping(nil)  // connect at once, so readiness is known without waiting for work
        while true {
            condition.lock()
            while queue.count == queueHead && !stopping {
                if !condition.wait(until: Date().addingTimeInterval(Self.idlePing)) { break }
            }
            if queue.count == queueHead {
                let done = stopping
                condition.unlock()
                if done { break }
                if ContinuousClock.now - lastActivity >= .seconds(Self.idlePing) {
                    connection = ping(connection)
                    lastActivity = .now
                }
                continue
            }
            var batch: [RedisJob] = []
            var operations = 0
            while queueHead < queue.count && operations < Self.batchLimit {
                batch.append(queue[queueHead])
                operations += queue[queueHead].operations.count
                queueHead += 1
            }
            if queueHead == queue.count {
                queue.removeAll(keepingCapacity: queue.count < 65_536)
                queueHead = 0
            }
            condition.unlock()

            var failures = 0
            let steps = RedisBatch.steps(for: batch)
            var finished = false
            while !finished {
                if connection == nil {
                    do {
                        connection = try RedisConnection.connect(endpoint, timeout: timeout)
                        setConnected(true)
                        if backoff.attempt > 0 { logger.info("Redis connection re-established") }
                        backoff.reset()
                    } catch {
                        setConnected(false)
                        if pastDeadline() {
                            failures = operations
                            logger.error("Redis unreachable at shutdown; operations not applied", metadata: [
                                "operations": "\(operations)", "error": "\(error.message)",
                            ])
                            break
                        }
                        let delay = backoff.next()
                        logger.warning("cannot connect to Redis; retrying", metadata: [
                            "error": "\(error.message)", "retry_in": "\(String(format: "%.2f", delay))s",
                        ])
                        Thread.sleep(forTimeInterval: delay)
                        continue
                    }
                }
                do {
                    failures = try execute(steps, on: connection!)
                    finished = true
                } catch {
                    logger.error("Redis connection lost; retrying the batch", metadata: ["error": "\(error.message)"])
                    connection = nil
                    setConnected(false)
                }
            }
            lastActivity = .now
            for job in batch {
                completionSink.yield(RedisCompletion(job: job, failures: failures > 0 ? min(failures, job.operations.count) : 0))
            }
            condition.lock()
            pendingOperations -= operations
            let pending = pendingOperations
            let waiters = spaceWaiters
            spaceWaiters.removeAll()
            condition.unlock()
            observer?.pendingChanged(pending)
            for waiter in waiters { waiter.resume() }
        }
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

    /// Runs the steps; returns how many operations Redis refused. Throws when the connection is lost.
    private func execute(_ steps: [RedisBatch.Step], on connection: RedisConnection) throws(RedisError) -> Int {
        var failures = 0
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
                observer?.commandsCompleted(action: "flush", ok: 1, failed: 0)
                observer?.keysFlushed(deleted)
                logger.info("flushed keys by pattern", metadata: ["pattern": "\(pattern)", "keys": "\(deleted)"])
            }
        }
        return failures
    }

    /// SCAN + UNLINK every key matching `pattern`; returns how many were deleted. Never uses KEYS.
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
            }
        } while cursor != "0"
        return deleted
    }
}
