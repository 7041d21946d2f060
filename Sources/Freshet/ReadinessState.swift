import Synchronization

/// What `/readyz` reports: each part Freshet needs, and whether it is up.
final class ReadinessState: Sendable {
    private let state = Mutex(Parts())

    struct Parts {
        var tablesResolved = false
        var listening = false
        var startError: String?
        /// Gap repairs submitted and not yet done (the start-up repair among them).
        var repairsPending = 0
        /// The replication source: creating the slot, the slot in use, or too much WAL retained.
        var slotProblem: String?
        /// Replication source instead of LISTEN (the "down" reason names it).
        var replication = false
        /// `http.relay: redis` and another process is the writer: only the relay stream matters here.
        var standby = false
        /// `http.relay: redis`: the relay stream cannot be read.
        var relayProblem: String?
    }

    func update(_ body: (inout Parts) -> Void) { state.withLock { body(&$0) } }

    /// `http.relay: redis` and another process is the writer.
    var isStandby: Bool { state.withLock { $0.standby } }

    /// - Parameter redis: the Redis writer's reasons (`RedisWriter.notReadyReasons`); not counted on a standby.
    func reasons(redis: [String]) -> [String] {
        state.withLock { parts in
            var reasons: [String] = []
            if let error = parts.startError { reasons.append(error) }
            if let problem = parts.relayProblem { reasons.append(problem) }
            if parts.standby { return reasons }
            if !parts.tablesResolved { reasons.append("tables not yet resolved in PostgreSQL") }
            if !parts.listening {
                reasons.append(parts.replication ? "replication stream from PostgreSQL is down" : "LISTEN connection to PostgreSQL is down")
            }
            if let problem = parts.slotProblem { reasons.append(problem) }
            reasons.append(contentsOf: redis)
            if parts.repairsPending > 0 { reasons.append("gap repair in progress") }
            return reasons
        }
    }
}
