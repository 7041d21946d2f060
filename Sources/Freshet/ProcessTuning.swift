import FreshetCore
import FreshetSystem
import Glibc
import Logging

/// Process-wide settings `freshet run` applies at start.
///
/// The HTTP event loops keep the process's priority. They ran at nice 5 until session 6 so that invalidation would go
/// first under CPU contention; measured with the subscribers' readers at normal priority, that made both worse at
/// 10,000 subscribers (commit → Redis p99 14.9 against 6.2 ms, SSE p99 330 against 160 ms, same minutes;
/// docs/benchmarks.md): the starved loops took longer to finish each event's fan-out, and the invalidation path
/// waited behind the readers' work it caused, not behind the loops.
public enum ProcessTuning {
    /// Raises the open-file limit to its hard limit (each SSE subscriber holds a socket).
    public static func apply(logger: Logger) {
        let files = OpenFileLimit.raiseToHard()
        if files.now > files.before {
            logger.debug("raised the open-file limit", metadata: ["from": "\(files.before)", "to": "\(files.now)"])
        }
    }
}
