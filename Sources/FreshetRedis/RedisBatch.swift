import FreshetCore

/// Prepares a run of jobs for one pipelined round trip.
///
/// Within a run of single-key operations only the last operation on each key is sent: for UNLINK and SET the
/// last one alone decides what the key holds afterwards. A pattern flush (`unlinkMatching`) ends a run, so nothing
/// is reordered across it.
enum RedisBatch {
    /// One step of a batch: pipelined single-key commands, or one pattern flush.
    enum Step: Equatable {
        case pipeline([RedisOperation])
        case flush(pattern: String)
    }

    static func steps(for jobs: [RedisJob]) -> [Step] {
        var steps: [Step] = []
        var run: [RedisOperation] = []
        func endRun() {
            guard !run.isEmpty else { return }
            var lastIndex: [String: Int] = [:]
            for (i, op) in run.enumerated() { lastIndex[op.key] = i }
            steps.append(.pipeline(run.enumerated().filter { lastIndex[$0.element.key] == $0.offset }.map(\.element)))
            run.removeAll()
        }
        for job in jobs {
            for operation in job.operations {
                if case .unlinkMatching(let pattern) = operation {
                    endRun()
                    steps.append(.flush(pattern: pattern))
                } else {
                    run.append(operation)
                }
            }
        }
        endRun()
        return steps
    }
}
