import Glibc

/// A pipe that wakes a thread blocked in `poll()`, for shutdown. Once signalled it stays readable, so every later
/// wait returns at once, which is what a stopping thread wants.
final class WakeSignal: @unchecked Sendable {
    private var fds: [Int32] = [-1, -1]

    init() {
        let result = pipe(&fds)
        precondition(result == 0, "pipe failed: errno \(errno)")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
    }

    deinit {
        close(fds[0])
        close(fds[1])
    }

    /// The end to poll for `POLLIN`.
    var fd: Int32 { fds[0] }

    func signal() {
        var one: UInt8 = 1
        _ = write(fds[1], &one, 1)
    }

    /// Waits up to `seconds` for a signal; returns true if signalled.
    func wait(seconds: Double) -> Bool {
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, Int32(seconds * 1000)) > 0
    }
}
