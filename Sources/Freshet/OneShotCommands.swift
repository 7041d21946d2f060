import Foundation
import Glibc
import FreshetCore
import FreshetHTTP
import FreshetPostgres
import FreshetRedis
import Logging

/// The CLI's commands other than `run`: each connects, does one thing, and returns.
package enum OneShotCommands {
    /// Resolves the tables once (no retry): `ConfigError` for schema problems, `PostgresError` when unreachable.
    package static func resolve(_ config: FreshetConfig, queries: PostgresQueryConnection) throws -> [ResolvedTable] {
        let result = try queries.runBlocking { connection throws(PostgresError) in
            config.postgres.source == .replication
                ? try SchemaInspector.resolveForReplication(config, on: connection)
                : try SchemaInspector.resolve(config, on: connection)
        }
        return try result.get()
    }

    /// `freshet triggers sql`: the install DDL.
    package static func triggerSQL(_ config: FreshetConfig) throws -> String {
        let queries = PostgresQueryConnection(conninfo: config.postgres.url)
        defer { queries.close() }
        return TriggerSQL.install(tables: try resolve(config, queries: queries), channel: config.postgres.channel)
    }

    /// `freshet triggers install|uninstall`.
    package static func applyTriggers(_ config: FreshetConfig, install: Bool) throws -> [ResolvedTable] {
        let queries = PostgresQueryConnection(conninfo: config.postgres.url)
        defer { queries.close() }
        let tables = try resolve(config, queries: queries)
        try queries.runBlocking { connection throws(PostgresError) in
            if install {
                try TriggerInstaller.install(tables, channel: config.postgres.channel, on: connection)
            } else {
                try TriggerInstaller.uninstall(tables, on: connection)
            }
        }
        return tables
    }

    /// `freshet tail` in replication mode: a temporary slot of its own (never the one `run` reads), gone when tail ends.
    static func tailReplication(
        _ config: FreshetConfig, tables: [ResolvedTable], processor: ChangeProcessor, logger: Logger,
        print: @escaping @Sendable (String) -> Void
    ) async throws {
        let planner = TransactionPlanner(
            catalog: TableCatalog(tables), queries: processor.queries, logger: logger, metrics: processor.metrics, stats: PipelineStats()
        )
        let fatal = FatalProblem()
        var settings = ReplicationReader.Settings(
            conninfo: config.postgres.url, slot: "freshet_tail_\(getpid())", publication: config.postgres.replication.publication,
            manage: config.postgres.replication.manage, maxRetained: config.postgres.replication.maxRetained,
            tables: tables.map(\.schema.quotedName)
        )
        settings.temporary = true
        let reader = ReplicationReader(settings: settings, hooks: ReplicationHooks(
            streaming: { _, _, _ in }, disconnected: { _ in },
            transaction: { transaction, _, tick in
                for job in planner.jobs(for: transaction, tick: tick) {
                    guard let event = job.event else { continue }
                    var object = event.json
                    object["id"] = .string(event.id?.description ?? "")
                    object["operations"] = .array(job.operations.map { .object(["action": .string($0.action), "key": .string($0.key)]) })
                    print(JSONValue.object(object).jsonText)
                }
                return (false, nil)
            },
            canTakeMore: { true }, applied: { 0 }, storePosition: { _, _ in }, stored: { UInt64.max },
            notReady: { _ in }, positions: { _, _, _ in },
            fatal: { field, message in fatal.problem.withLock { $0 = ConfigProblem(field: field, message: message) } }
        ), logger: logger)
        await withTaskCancellationHandler {
            await reader.run()
        } onCancel: {
            reader.stop()
        }
        if let problem = fatal.problem.withLock({ $0 }) { throw ConfigError(problems: [problem]) }
    }

    /// `freshet check`: every line of the report, and whether everything passed. Config problems throw.
    package static func check(_ config: FreshetConfig) throws -> (lines: [String], ok: Bool) {
        var lines: [String] = []
        var ok = true
        if let auth = config.http.auth {
            do {
                _ = try Authenticator(auth)  // reads the key files, as run does
            } catch {
                throw ConfigError(problems: [ConfigProblem(field: error.field, message: error.message)])
            }
            let jwt = auth.jwt.map { jwt in
                [jwt.secret.map { _ in "HS256 secret" }, jwt.publicKeyPath.map { "key \($0)" }, jwt.jwksPath.map { "JWKS \($0)" }]
                    .compactMap { $0 }.joined(separator: ", ")
            }
            lines.append("ok    auth: \(auth.tokens.count) static token(s)" + (jwt.map { "; JWT: \($0)" } ?? ""))
        }
        let queries = PostgresQueryConnection(conninfo: config.postgres.url)
        defer { queries.close() }
        let tables: [ResolvedTable]
        do {
            tables = try resolve(config, queries: queries)
            lines.append("ok    PostgreSQL \(Redaction.connectionString(config.postgres.url))")
            if config.postgres.source == .replication {
                let report = try queries.runBlocking { connection throws(PostgresError) in
                    try ReplicationCheck.run(config.postgres.replication, conninfo: config.postgres.url, tables: tables, on: connection)
                }
                if !report.problems.isEmpty { throw ConfigError(problems: report.problems) }
                lines += report.lines
            }
            for table in tables {
                let installed = try queries.runBlocking { connection throws(PostgresError) in
                    try connection.query(
                        "SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid = pg_catalog.to_regclass($1) AND tgname = ANY ($2::text[])",
                        parameters: [table.schema.quotedName, "{" + TriggerSQL.triggerNames.joined(separator: ",") + "}"]
                    )
                }
                let hasTriggers = installed.first?.first.flatMap { $0 } == String(TriggerSQL.triggerNames.count)
                let state = config.postgres.source == .replication
                    ? (hasTriggers ? "NOTIFY triggers still installed: writes pay for them (freshet triggers uninstall)" : "no triggers")
                    : (hasTriggers ? "triggers installed" : "triggers not installed (freshet run installs them)")
                lines.append("ok    table \(table.name) (\(table.schema.schema).\(table.schema.name)), key \(table.keyColumns.joined(separator: ", ")); \(state)")
            }
        } catch let error as PostgresError {
            ok = false
            lines.append("FAIL  PostgreSQL \(Redaction.connectionString(config.postgres.url)): \(error.message)")
        }
        let redisName = RedisAccess.describe(config.redis)
        do {
            let target = try RedisAccess(config.redis).target(logger: Logger(label: "freshet.check"))
            try target.check()
            lines.append("ok    Redis \(redisName) (\(target.nodeCount) master\(target.nodeCount == 1 ? "" : "s") answered PING)")
        } catch let problem as RedisAccess.Problem {
            ok = false
            lines.append("FAIL  Redis \(problem.field): \(problem.message)")
        } catch {
            ok = false
            lines.append("FAIL  Redis \(redisName): \(error)")
        }
        return (lines, ok)
    }

    /// `freshet tail`: its own LISTEN connection; prints each change as the event JSON plus the Redis operations
    /// `run` would perform, one line each, until cancelled. Acts on nothing.
    package static func tail(_ config: FreshetConfig, logger: Logger, print: @escaping @Sendable (String) -> Void) async throws {
        let queries = PostgresQueryConnection(conninfo: config.postgres.url)
        let tables = try resolve(config, queries: queries)
        let processor = ChangeProcessor(catalog: TableCatalog(tables), queries: queries, logger: logger, metrics: FreshetMetrics())
        if config.postgres.source == .replication {
            try await tailReplication(config, tables: tables, processor: processor, logger: logger, print: print)
            return
        }
        let listener = PostgresListener(conninfo: config.postgres.url, channel: config.postgres.channel, logger: logger)
        // Planned and printed on the listener's thread, until cancelled.
        await listener.run { event in
            guard case .notification(let payload) = event else { return }
            for plan in processor.process(payload) {
                var object = plan.event.json
                object["operations"] = .array(plan.operations.map { op in
                    .object(["action": .string(op.action), "key": .string(op.key)])
                })
                print(JSONValue.object(object).jsonText)
            }
        }
    }
}
