import Glibc

/// The process's open-file limit: each SSE subscriber (and each of the bench's clients) holds a socket.
package enum OpenFileLimit {
    /// Raises the soft limit to the hard limit; returns the limit before and the limit now in force.
    @discardableResult
    package static func raiseToHard() -> (before: Int, now: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        let before = Int(limit.rlim_cur)
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return (before, Int(limit.rlim_cur))
    }

    /// The soft limit in force.
    package static func current() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        return Int(limit.rlim_cur)
    }
}
