import Synchronization

/// `http.relay: redis`: whether this process may apply Redis operations now — it holds the writer lock. The Redis
/// writer checks it before each batch; the writer role opens it once the lock is taken and closes it the moment the
/// lock's session is seen to break, so that a writer that lost its lock (its PostgreSQL went away with it) applies
/// nothing more while another process takes over.
package final class WriterFence: Sendable {
    private let state = Atomic<Bool>(false)

    package init() {}

    package var isOpen: Bool { state.load(ordering: .acquiring) }

    package func open() { state.store(true, ordering: .releasing) }

    package func close() { state.store(false, ordering: .releasing) }
}
