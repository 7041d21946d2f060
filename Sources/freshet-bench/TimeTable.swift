import Synchronization

/// One monotonic timestamp per change (0 = not yet), preallocated so that recording costs no allocation or lock.
///
/// Each slot is written by one thread only (the writer that made change `i`, or the one thread watching Redis) and read
/// after that thread has finished, so plain stores are enough; `@unchecked Sendable` rests on that discipline.
final class TimeTable: @unchecked Sendable {
    let count: Int
    private let slots: UnsafeMutablePointer<UInt64>
    /// How many slots were written twice (a doubled delivery).
    let duplicates = Atomic<Int>(0)

    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: max(count, 1))
        slots.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { slots.deallocate() }

    func record(_ index: Int, at nanos: UInt64) {
        guard index >= 0, index < count else { return }
        if slots[index] != 0 { duplicates.add(1, ordering: .relaxed) } else { slots[index] = nanos }
    }

    subscript(index: Int) -> UInt64 { slots[index] }

    /// How many slots were written.
    var filled: Int { (0..<count).reduce(0) { $0 + (slots[$1] != 0 ? 1 : 0) } }

    /// The latest timestamp written (0 when none).
    var latest: UInt64 { (0..<count).reduce(0) { max($0, slots[$1]) } }

    /// `self[i] - start[i]` for every slot written in both, clamped at 0 (a notification can be seen a few
    /// microseconds before the writer's COMMIT returns).
    func latencies(from start: TimeTable) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(count)
        for i in 0..<count where slots[i] != 0 && start[i] != 0 {
            out.append(slots[i] > start[i] ? slots[i] - start[i] : 0)
        }
        return out
    }
}
