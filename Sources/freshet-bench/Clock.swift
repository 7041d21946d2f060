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

/// Raises this process's open-file limit to its hard limit (10,000 subscribers need 10,000 sockets); the child
/// processes it starts inherit it. Returns the limit now in force.
@discardableResult
func raiseFileLimit() -> Int {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    return Int(limit.rlim_cur)
}

/// Lowers the calling thread's scheduling priority (nice). The subscribers stand in for browsers on other machines:
/// on this one they should not take CPU from the server side they measure (their own latency only gets worse).
func lowerThreadPriority(to nice: Int32) {
    var buffer = [CChar](repeating: 0, count: 64)
    let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
    guard count > 0 else { return }
    let text = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let thread = Int32(text.split(separator: "/").last ?? "") else { return }
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread), nice)
}
