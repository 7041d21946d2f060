import Glibc
import Logging
import NIOCore
import NIOPosix

/// Process-wide settings `freshet run` applies at start.
public enum ProcessTuning {
    /// The nice value of the HTTP event-loop threads: under CPU contention the listener, pipeline and Redis writer
    /// (nice 0) run first, so invalidation never waits behind SSE fan-out.
    static let eventLoopNice: Int32 = 5

    /// Raises the open-file limit to its hard limit (each SSE subscriber holds a socket) and lowers the HTTP
    /// event loops' scheduling priority below the invalidation path's.
    public static func apply(logger: Logger) {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            let before = limit.rlim_cur
            limit.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
                logger.debug("raised the open-file limit", metadata: ["from": "\(before)", "to": "\(limit.rlim_max)"])
            }
        }
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            loop.execute {
                let thread = currentThreadID()
                if thread > 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread), eventLoopNice) }
            }
        }
    }
}

/// The kernel thread id, from `/proc/thread-self` (a link to `PID/task/TID`); Swift cannot call the variadic
/// `syscall` and Glibc's `gettid` is not visible here. 0 (the whole process) if it cannot be read.
private func currentThreadID() -> Int {
    var buffer = [CChar](repeating: 0, count: 64)
    let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
    guard count > 0 else { return 0 }
    let text = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return Int(text.split(separator: "/").last ?? "") ?? 0
}
