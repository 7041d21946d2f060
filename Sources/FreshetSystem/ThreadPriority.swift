import Glibc

/// The calling thread's scheduling priority (Linux lets each thread have its own nice value).
package enum ThreadPriority {
    /// Sets the calling thread's nice value (raising it needs no privilege). Does nothing if the thread id cannot be
    /// read.
    package static func lowerCurrent(to nice: Int32) {
        guard let thread = currentThreadID() else { return }
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread), nice)
    }

    /// The kernel thread id, from `/proc/thread-self` (a link to `PID/task/TID`); Swift cannot call the variadic
    /// `syscall`, and Glibc's `gettid` is not visible here.
    static func currentThreadID() -> Int32? {
        var buffer = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Int32(text.split(separator: "/").last ?? "")
    }
}
