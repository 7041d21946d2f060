import FreshetCore
import FreshetSystem
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
        let files = OpenFileLimit.raiseToHard()
        if files.now > files.before {
            logger.debug("raised the open-file limit", metadata: ["from": "\(files.before)", "to": "\(files.now)"])
        }
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            loop.execute { ThreadPriority.lowerCurrent(to: eventLoopNice) }
        }
    }
}
