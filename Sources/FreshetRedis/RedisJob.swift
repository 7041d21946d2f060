import FreshetCore

/// The Redis operations of one change, and the event to publish once Redis has acknowledged them.
public struct RedisJob: Sendable {
    public var operations: [RedisOperation]
    public var event: ChangeEvent?

    public init(operations: [RedisOperation], event: ChangeEvent?) {
        self.operations = operations
        self.event = event
    }
}

/// A job the writer has finished, in submission order.
public struct RedisCompletion: Sendable {
    public var job: RedisJob
    /// Operations Redis refused with an error reply (e.g. `WRONGTYPE`), or that could not be flushed before shutdown.
    public var failures: Int
}

/// Counts what the writer does, for metrics and tests. Called on the writer's thread.
public protocol RedisWriterObserver: Sendable {
    func commandsCompleted(action: String, ok: Int, failed: Int)
    func pendingChanged(_ pending: Int)
    func connectionChanged(connected: Bool)
    /// Keys deleted by a pattern flush (truncate, gap repair).
    func keysFlushed(_ count: Int)
}
