import Glibc

/// Monotonic nanoseconds, comparable across the bench's threads (writers, key watcher, SSE clients).
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Sleeps until the monotonic clock reaches `nanos` (returns at once if it is past).
func sleep(untilNanos nanos: UInt64) {
    let now = monotonicNanos()
    guard nanos > now else { return }
    var request = timespec(tv_sec: Int((nanos - now) / 1_000_000_000), tv_nsec: Int((nanos - now) % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 { request = remaining }
}
