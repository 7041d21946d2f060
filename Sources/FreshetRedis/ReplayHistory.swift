import DequeModule
import FreshetCore

/// The operations the writer applied in the last `window` seconds, oldest first, for a failover replay (a value,
/// tested without a server).
///
/// Redis replicates asynchronously: a master that fails over may have acknowledged writes its replica never received.
/// UNLINK and SET of a row's latest state are idempotent, so applying them again on the new master, in their order and
/// before anything newer, puts every key right. At most `limit` operations are kept; when older ones inside the window
/// had to be dropped, the history is incomplete until the window has passed (the writer then flushes instead).
struct ReplayHistory {
    let window: Double
    let limit: Int
    private var entries: Deque<(at: ContinuousClock.Instant, operations: [RedisOperation])> = []
    private var count = 0
    /// When operations younger than the window were dropped for the limit.
    private var truncatedAt: ContinuousClock.Instant?

    init(window: Double, limit: Int) {
        self.window = window
        self.limit = limit
    }

    mutating func record(_ operations: [RedisOperation], now: ContinuousClock.Instant) {
        guard window > 0, !operations.isEmpty else { return }
        entries.append((now, operations))
        count += operations.count
        trim(now: now)
    }

    private mutating func trim(now: ContinuousClock.Instant) {
        while let first = entries.first, now - first.at > .seconds(window) {
            count -= first.operations.count
            entries.removeFirst()
        }
        while count > limit, let first = entries.first {
            count -= first.operations.count
            entries.removeFirst()
            truncatedAt = now
        }
    }

    /// Whether every operation of the last `window` seconds is still held.
    func complete(now: ContinuousClock.Instant) -> Bool {
        guard let truncatedAt else { return true }
        return now - truncatedAt > .seconds(window)
    }

    /// The operations of the `window` seconds before the last one recorded, oldest first: the window before a
    /// failover, however long the outage that followed it lasted.
    var operations: [RedisOperation] { entries.flatMap(\.operations) }

    var operationCount: Int { count }
}
