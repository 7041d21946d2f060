import FreshetCore
import FreshetPostgres
import Logging

/// The resolved tables, looked up by their catalog name as notifications carry it.
public struct TableCatalog: Sendable {
    public let tables: [ResolvedTable]
    private let byName: [String: Int]

    public init(_ tables: [ResolvedTable]) {
        self.tables = tables
        var byName: [String: Int] = [:]
        for (i, table) in tables.enumerated() { byName[Self.key(table.schema.schema, table.schema.name)] = i }
        self.byName = byName
    }

    public func table(schema: String, name: String) -> ResolvedTable? {
        byName[Self.key(schema, name)].map { tables[$0] }
    }

    private static func key(_ schema: String, _ name: String) -> String { schema + "\u{0}" + name }

    /// Resolves the configured tables, retrying while PostgreSQL is unreachable or refuses the login.
    ///
    /// Throws `ConfigError` when a table or column does not exist (exit 2), or `CancellationError` when stopped.
    static func resolve(
        _ config: FreshetConfig, using connection: PostgresQueryConnection, logger: Logger, replication: Bool = false,
        onWaiting: @Sendable (String) -> Void = { _ in }
    ) async throws -> TableCatalog {
        var backoff = Backoff(base: 0.2, cap: 5)
        while true {
            try Task.checkCancellation()
            do {
                let result = try await connection.run { connection throws(PostgresError) in
                    replication
                        ? try SchemaInspector.resolveForReplication(config, on: connection)
                        : try SchemaInspector.resolve(config, on: connection)
                }
                switch result {
                case .success(let tables): return TableCatalog(tables)
                case .failure(let error): throw error
                }
            } catch let error as PostgresError {
                let delay = backoff.next()
                let message = "PostgreSQL not reachable: \(error.message)"
                onWaiting(message)
                logger.warning("cannot read table definitions from PostgreSQL; retrying", metadata: [
                    "postgres": "\(Redaction.connectionString(config.postgres.url))", "error": "\(error.message)",
                    "retry_in": "\(String(format: "%.2f", delay))s",
                ])
                try await Task.sleep(for: .seconds(delay))
            }
        }
    }
}
