import Foundation

/// The jobs waiting for the Redis writer's thread, between the pipeline (any task) and that thread.
///
/// `submit` never waits: the PostgreSQL side must keep draining its connection whatever Redis does (a listener that
/// stops reading lets PostgreSQL's shared NOTIFY queue fill, and then the application's commits fail). The bound is
/// `maxPending` operations not yet acknowledged (queued here or in the thread's backlog): a submission past it
/// **overflows**: the operations waiting here are dropped (their events are kept, so subscribers still hear of the
/// changes, in order), and the thread is told to drop its backlog too and record a `redis_overflow` gap, whose repair
/// flushes every template pattern. Gap repair jobs keep their operations.
final class RedisJobQueue: @unchecked Sendable {
    /// What the thread takes in one go.
    struct Taken {
        var jobs: [RedisJob] = []
        var operations = 0
        /// The queue overflowed since the last take: drop the backlog and record a `redis_overflow` gap.
        var overflowed = false
        var droppedOperations = 0
        var stopping = false
        var deadline: ContinuousClock.Instant?
    }

    let maxPending: Int
    private let condition = NSCondition()
    private var jobs: [RedisJob] = []
    private var head = 0
    /// Operations not yet acknowledged: queued here or in the thread's backlog (the `freshet_redis_pending` gauge).
    private(set) var pending = 0
    private var queuedOperations = 0
    private var overflowed = false
    private var droppedOperations = 0
    private var stopping = false
    private var deadline: ContinuousClock.Instant?

    init(maxPending: Int) { self.maxPending = maxPending }

    /// Queues jobs in order. Returns the pending count after it, and how many operations an overflow dropped (0 when
    /// none).
    func submit(_ new: [RedisJob]) -> (pending: Int, dropped: Int) {
        var added = 0
        for job in new { added += job.operations.count }
        condition.lock()
        defer { condition.unlock() }
        var dropped = 0
        if pending + added > maxPending && added > 0 {
            // Overflow: drop what waits here and the new jobs' operations; the thread drops its backlog.
            for i in head..<jobs.count where jobs[i].repairCause == nil && !jobs[i].operations.isEmpty {
                jobs[i].operations = []
                jobs[i].dropped = true
            }
            dropped = queuedOperations
            pending -= queuedOperations
            queuedOperations = 0
            for var job in new {
                if job.repairCause == nil {
                    dropped += job.operations.count
                    job.dropped = !job.operations.isEmpty
                    job.operations = []
                } else {
                    pending += job.operations.count
                    queuedOperations += job.operations.count
                }
                jobs.append(job)
            }
            overflowed = true
            droppedOperations += dropped
        } else {
            jobs.append(contentsOf: new)
            pending += added
            queuedOperations += added
        }
        condition.signal()
        return (pending, dropped)
    }

    /// Takes up to `limit` operations' worth of jobs (at least one job), waiting up to `idle` seconds when there is
    /// nothing to do and `wait` is true.
    func take(limit: Int, wait: Bool, idle: Double) -> Taken {
        condition.lock()
        defer { condition.unlock() }
        if wait && head == jobs.count && !overflowed && !stopping {
            _ = condition.wait(until: Date().addingTimeInterval(idle))
        }
        var taken = Taken()
        var budget = limit
        while head < jobs.count && budget > 0 {
            let job = jobs[head]
            taken.jobs.append(job)
            taken.operations += job.operations.count
            budget -= max(job.operations.count, 1)
            head += 1
        }
        if head == jobs.count {
            jobs.removeAll(keepingCapacity: jobs.count < 65_536)
            head = 0
        }
        queuedOperations -= taken.operations
        taken.overflowed = overflowed
        taken.droppedOperations = droppedOperations
        overflowed = false
        droppedOperations = 0
        taken.stopping = stopping
        taken.deadline = deadline
        return taken
    }

    /// Operations acknowledged or dropped by the thread. Returns the pending count after it.
    func release(_ operations: Int) -> Int {
        condition.lock()
        defer { condition.unlock() }
        pending -= operations
        return pending
    }

    var pendingOperations: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending
    }

    /// Starts the shutdown flush (`timeout` seconds at most); a second call gives up at once.
    func stop(timeout: Double) {
        condition.lock()
        if !stopping {
            stopping = true
            deadline = .now + .seconds(timeout)
        } else {
            deadline = .now
        }
        condition.broadcast()
        condition.unlock()
    }
}
