import Synchronization

/// Process-local counts that tests and diagnostics read without a metrics backend.
public final class PipelineStats: Sendable {
    private let rejectedCount = Atomic<Int>(0)

    public init() {}

    /// Notifications skipped because they were malformed or for an unknown table.
    public var rejected: Int { rejectedCount.load(ordering: .relaxed) }

    func countRejected() { rejectedCount.add(1, ordering: .relaxed) }
}
