import FreshetCore

/// The Redis operations of one change, and the event to publish once Redis has acknowledged them; or a gap repair.
public struct RedisJob: Sendable {
    public var operations: [RedisOperation]
    public var event: ChangeEvent?
    /// Set on a gap repair job (its operations flush every template pattern): the cause, for the log and the resync.
    public var repairCause: String?

    public init(operations: [RedisOperation], event: ChangeEvent?, repairCause: String? = nil) {
        self.operations = operations
        self.event = event
        self.repairCause = repairCause
    }
}

/// A job the writer has finished, in submission order.
public struct RedisCompletion: Sendable {
    public var job: RedisJob
    /// Operations Redis refused with an error reply (e.g. `WRONGTYPE`).
    public var failures: Int
    /// False when the job's event was released while Redis was away (its operations are still queued, or were
    /// dropped with a gap recorded): subscribers are not held back beyond `redis.timeout`.
    public var acknowledged: Bool
    /// Keys deleted by the job's pattern flushes.
    public var keysFlushed: Int
}

/// Counts what the writer does, for metrics and tests. Called on the writer's thread.
public protocol RedisWriterObserver: Sendable {
    func commandsCompleted(action: String, ok: Int, failed: Int)
    func pendingChanged(_ pending: Int)
    func connectionChanged(connected: Bool)
    /// Keys deleted by a pattern flush (truncate, gap repair).
    func keysFlushed(_ count: Int)
    /// The writer dropped its queue: `redis_overflow`, `redis_outage` or `shutdown`.
    func gapRecorded(cause: String)
}
