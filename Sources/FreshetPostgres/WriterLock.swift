import Foundation
import FreshetCore
import Glibc
import Logging

/// The writer election of `http.relay: redis`: a PostgreSQL session advisory lock, taken with
/// `pg_try_advisory_lock(hashtext(name))` on a connection of its own. The process holding it is the writer; the lock
/// is released when its session ends, so a writer that dies (kill -9, a lost host) hands over once PostgreSQL notices:
/// the connection uses TCP keepalives every second and `tcp_user_timeout` of the takeover bound, so that a dead peer
/// is noticed on both sides within it.
///
/// Blocking; used from one thread at a time (the role's). Not a fence on its own: the role closes the writer's
/// `WriterFence` as soon as `watch` sees the session break, and the process exits.
package final class WriterLock: @unchecked Sendable {
    private let conninfo: String
    private let name: String
    private let takeover: Double
    private let logger: Logger
    private var connection: PGConnection?

    package init(conninfo: String, name: String, takeover: Double, logger: Logger) {
        self.conninfo = conninfo
        self.name = name
        self.takeover = takeover
        self.logger = logger
    }

    /// Seconds between attempts while another process holds the lock.
    var pollInterval: Double { min(1, max(0.2, takeover / 5)) }

    private func connect() throws(PostgresError) -> PGConnection {
        let timeout = max(1, Int(takeover.rounded(.down)))
        let connection = try PGConnection.connect(conninfo, applicationName: "freshet-writer-lock", forced: [
            ("keepalives", "1"), ("keepalives_idle", "1"), ("keepalives_interval", "1"),
            ("keepalives_count", String(max(1, timeout - 1))), ("tcp_user_timeout", String(timeout * 1000)),
            ("connect_timeout", String(max(2, timeout))),
        ])
        try Self.refuseTransactionPooling(connection)
        return connection
    }

    /// A session advisory lock needs a session: refuses a connection through a pooler (PgBouncer), which in
    /// transaction mode hands the lock's server session to other clients between statements. A pooler answers the
    /// client with a process id of its own making (the cancel key it needs to route cancellations), so it differs from
    /// the server's `pg_backend_pid()`; statements landing on different server sessions show it too. A session-mode
    /// pool cannot be told apart from a transaction-mode one from the client side, so any pooler is refused.
    static func refuseTransactionPooling(_ connection: PGConnection) throws(PostgresError) {
        var pids: Set<String> = []
        for _ in 0..<3 {
            if let pid = try connection.execute("SELECT pg_backend_pid()").first?.first ?? nil { pids.insert(pid) }
        }
        if pids.count > 1 || pids.first != String(connection.backendPID) {
            throw PostgresError(
                code: .connectionFailed,
                message: "postgres.url goes through a connection pooler (PgBouncer?): the server session is not this connection's own. "
                    + "The writer election of http.relay: redis needs a session advisory lock, which transaction pooling breaks: "
                    + "connect Freshet to PostgreSQL directly"
            )
        }
    }

    /// Tries until the lock is held (true) or `stopped()` says to give up (false). A pooler in transaction mode is
    /// thrown; other connection errors are logged and retried.
    package func acquire(stopped: () -> Bool) throws(PostgresError) -> Bool {
        var logged = false
        while !stopped() {
            do {
                let live: PGConnection
                if let connection { live = connection } else {
                    live = try connect()
                    connection = live
                }
                if try live.query("SELECT pg_try_advisory_lock(hashtext($1))", parameters: [name]).first?.first == "t" {
                    return true
                }
                if !logged {
                    logger.info("another Freshet process is the writer; standing by", metadata: ["lock": "\(name)"])
                    logged = true
                }
            } catch {
                if error.message.contains("connection pooler") { throw error }
                connection = nil
                logger.warning("cannot reach PostgreSQL for the writer election; retrying", metadata: ["error": "\(error.message)"])
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
        return false
    }

    /// Whether the lock's session is still alive (a `SELECT 1`). False when it broke: the lock is gone.
    package func stillHeld() -> Bool {
        guard let connection else { return false }
        do {
            _ = try connection.execute("SELECT 1")
            return true
        } catch {
            self.connection = nil
            return false
        }
    }

    /// Blocks until the lock's session breaks (true) or `stopped()` says to give up (false). Watches the connection's
    /// socket every 100 ms — a server that crashed, restarted or ended the session closes it, noticed at once — and
    /// asks `SELECT 1` every second (a silent peer is noticed through the keepalives and `tcp_user_timeout`).
    package func watch(stopped: () -> Bool) -> Bool {
        var asked = ContinuousClock.now
        while !stopped() {
            guard let connection else { return true }
            var socket = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
            if poll(&socket, 1, 100) != 0 {  // input, an error, or a hang-up
                do {
                    try connection.consumeInput()
                } catch {
                    self.connection = nil
                    return true
                }
                if !connection.isConnected {
                    self.connection = nil
                    return true
                }
            }
            if ContinuousClock.now - asked >= .seconds(1) {
                if !stillHeld() { return true }
                asked = .now
            }
        }
        return false
    }

    /// Ends the session (and so the lock).
    package func release() {
        connection = nil
    }
}
