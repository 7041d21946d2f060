import CLibPQ
import Foundation
import FreshetCore

/// Owns one libpq connection (`PGconn*`) and frees it exactly once.
///
/// Not thread-safe: every method blocks, and one thread alone uses an instance (the listener's thread, or the
/// serial queue of `PostgresQueryConnection`). It is `@unchecked Sendable` only so that it can be handed to that owner.
package final class PGConnection: @unchecked Sendable {
    private let handle: OpaquePointer

    private init(handle: OpaquePointer) { self.handle = handle }

    /// The libpq handle, for this module's other files (the replication stream).
    var pgconn: OpaquePointer { handle }

    deinit { PQfinish(handle) }

    /// Connects (blocking) with TCP keepalives on (first probe after 10 s idle, then every 5 s, dead after 3 misses),
    /// `tcp_user_timeout` 10 s (sent data unacknowledged that long ends the connection: a silent partition is noticed
    /// in seconds, not after the kernel's ~15 minutes of retransmissions), a 10 s connect timeout and
    /// `application_name=freshet`, unless the connection string says otherwise.
    package static func connect(
        _ conninfo: String, applicationName: String = "freshet", forced: [(String, String)] = []
    ) throws(PostgresError) -> PGConnection {
        let defaults: [(String, String)] = [
            ("connect_timeout", "10"),
            ("keepalives", "1"),
            ("keepalives_idle", "10"),
            ("keepalives_interval", "5"),
            ("keepalives_count", "3"),
            ("tcp_user_timeout", "10000"),
            ("application_name", applicationName),
            ("dbname", Self.normalized(conninfo)),
        ] + forced  // after the connection string: these win over it
        let keywords = defaults.map { strdup($0.0) }
        let values = defaults.map { strdup($0.1) }
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let kw: [UnsafePointer<CChar>?] = keywords.map { UnsafePointer($0) } + [nil]
        let vs: [UnsafePointer<CChar>?] = values.map { UnsafePointer($0) } + [nil]
        guard let handle = PQconnectdbParams(kw, vs, 1) else {
            throw PostgresError(code: .connectionFailed, message: "out of memory")
        }
        let connection = PGConnection(handle: handle)
        guard PQstatus(handle) == CONNECTION_OK else {
            throw PostgresError(code: .connectionFailed, message: connection.errorMessage)
        }
        return connection
    }

    /// A `postgresql://` URL with its password escaped as libpq needs (see `ConnectionURL.normalized`); other
    /// strings as they are.
    static func normalized(_ conninfo: String) -> String {
        guard let url = ConnectionURL(parsing: conninfo), url.scheme.hasPrefix("postgres") else { return conninfo }
        return url.normalized
    }

    var errorMessage: String {
        Redaction.connectionString(String(cString: PQerrorMessage(handle)))
    }

    /// Whether the connection is still usable as far as libpq knows.
    package var isConnected: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The server process id of this session (for `pg_terminate_backend` in tests and logs).
    package var backendPID: Int32 { PQbackendPID(handle) }

    /// The socket, for `poll()`.
    package var socket: Int32 { PQsocket(handle) }

    /// Runs SQL (several statements allowed) and returns the last statement's rows as text.
    @discardableResult
    package func execute(_ sql: String) throws(PostgresError) -> [[String?]] {
        try query(sql, parameters: nil)
    }

    /// Runs one statement with text parameters (`$1`, `$2`, …) and returns its rows as text.
    @discardableResult
    package func query(_ sql: String, parameters: [String?]?) throws(PostgresError) -> [[String?]] {
        let result: OpaquePointer?
        if let parameters {
            let cStrings = parameters.map { $0.map { strdup($0) } ?? nil }
            defer { cStrings.forEach { free($0) } }
            let pointers: [UnsafePointer<CChar>?] = cStrings.map { $0.map { UnsafePointer($0) } }
            result = PQexecParams(handle, sql, Int32(parameters.count), nil, pointers, nil, nil, 0)
        } else {
            result = PQexec(handle, sql)
        }
        guard let result else {
            throw PostgresError(code: isConnected ? .queryFailed : .connectionLost, message: errorMessage)
        }
        defer { PQclear(result) }
        return try rows(of: result)
    }

    /// Runs SQL, waiting for the answer at most `timeout` seconds (`poll()` on the socket, never a blocking read):
    /// past it the connection counts as lost and must be dropped. Returns the last statement's rows.
    @discardableResult
    package func execute(_ sql: String, timeout: Double) throws(PostgresError) -> [[String?]] {
        guard PQsendQuery(handle, sql) == 1 else {
            throw PostgresError(code: isConnected ? .queryFailed : .connectionLost, message: errorMessage)
        }
        let deadline = ContinuousClock.now + .seconds(timeout)
        while PQisBusy(handle) == 1 {
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                throw PostgresError(code: .connectionLost, message: "no answer from PostgreSQL within \(timeout) s")
            }
            var fd = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(1, min(Double(Int32.max), (Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18) * 1000)))
            if poll(&fd, 1, ms) < 0 && errno != EINTR {
                throw PostgresError(code: .connectionLost, message: "poll failed: errno \(errno)")
            }
            try consumeInput()
        }
        var rows: [[String?]] = []
        var failure: PostgresError?
        while let result = PQgetResult(handle) {
            do { rows = try self.rows(of: result) } catch { failure = failure ?? error }
            PQclear(result)
        }
        if let failure { throw failure }
        return rows
    }

    /// A result's rows as text, or its error.
    private func rows(of result: OpaquePointer) throws(PostgresError) -> [[String?]] {
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return []
        case PGRES_TUPLES_OK:
            var rows: [[String?]] = []
            let rowCount = PQntuples(result)
            let columnCount = PQnfields(result)
            rows.reserveCapacity(Int(rowCount))
            for r in 0..<rowCount {
                var row: [String?] = []
                for c in 0..<columnCount {
                    if PQgetisnull(result, r, c) == 1 {
                        row.append(nil)
                    } else {
                        row.append(String(cString: PQgetvalue(result, r, c)))
                    }
                }
                rows.append(row)
            }
            return rows
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = String(cString: PQresultErrorMessage(result))
            throw PostgresError(code: isConnected ? .queryFailed : .connectionLost, message: message, sqlState: state)
        }
    }

    /// Reads whatever the server sent without blocking; throws when the connection is gone.
    package func consumeInput() throws(PostgresError) {
        guard PQconsumeInput(handle) == 1 else {
            throw PostgresError(code: .connectionLost, message: errorMessage)
        }
    }

    /// Takes every notification libpq has buffered.
    package func drainNotifications() -> [Notification] {
        var out: [Notification] = []
        while let notify = PQnotifies(handle) {
            let n = notify.pointee
            out.append(Notification(
                channel: String(cString: n.relname),
                payload: String(cString: n.extra),
                backendPID: n.be_pid
            ))
            PQfreemem(notify)
        }
        return out
    }

    /// One `NOTIFY` as libpq delivered it.
    package struct Notification: Sendable, Equatable {
        package var channel: String
        package var payload: String
        package var backendPID: Int32
    }
}
