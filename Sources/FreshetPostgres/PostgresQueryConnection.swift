import Dispatch
import FreshetCore
import Logging

/// A connection for ordinary queries (schema inspection, trigger install, row read-back), owned by one serial
/// dispatch queue so that its blocking calls never run on the cooperative pool. Connects lazily and reconnects once
/// on a lost connection.
package final class PostgresQueryConnection: @unchecked Sendable {
    private let queue = DispatchQueue(label: "freshet.postgres.query")
    private let conninfo: String
    /// Touched only on `queue`.
    private var connection: PGConnection?

    package init(conninfo: String) {
        self.conninfo = conninfo
    }

    /// Runs `body` with the connection on the owning queue.
    package func run<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws(PostgresError) -> T) async throws(PostgresError) -> T {
        let result: Result<T, PostgresError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: self.runOnQueue(body))
            }
        }
        return try result.get()
    }

    /// The blocking form, for the CLI's one-shot commands.
    package func runBlocking<T>(_ body: (PGConnection) throws(PostgresError) -> T) throws(PostgresError) -> T {
        try queue.sync { runOnQueue(body) }.get()
    }

    private func runOnQueue<T>(_ body: (PGConnection) throws(PostgresError) -> T) -> Result<T, PostgresError> {
        for attempt in 0..<2 {
            do {
                let connection: PGConnection
                if let existing = self.connection, existing.isConnected {
                    connection = existing
                } else {
                    connection = try PGConnection.connect(conninfo)
                    self.connection = connection
                }
                return .success(try body(connection))
            } catch {
                if error.code == .connectionLost || !(self.connection?.isConnected ?? false) {
                    self.connection = nil
                    if attempt == 0 && error.code == .connectionLost { continue }
                }
                return .failure(error)
            }
        }
        return .failure(PostgresError(code: .connectionLost, message: "connection lost twice"))
    }

    /// Closes the connection.
    package func close() {
        queue.sync { connection = nil }
    }
}
