import FreshetCore

/// `freshet check` for the replication source: the server, the role, a real replication connection, the publication
/// and the slot. Each problem says how to fix it; problems only the operator can fix are configuration errors (exit 2).
package enum ReplicationCheck {
    /// The report's lines, and the problems (configuration errors).
    package static func run(
        _ settings: ReplicationSettings, conninfo: String, tables: [ResolvedTable], on db: PGConnection
    ) throws(PostgresError) -> (lines: [String], problems: [ConfigProblem]) {
        var lines: [String] = []
        var problems: [ConfigProblem] = []
        let level = try db.execute("SHOW wal_level").first?.first ?? nil
        if level == "logical" {
            lines.append("ok    wal_level = logical")
        } else {
            problems.append(ConfigProblem(field: "postgres.source", message: """
                the replication source needs wal_level = logical (it is \(level ?? "unknown")): ALTER SYSTEM SET wal_level = logical; \
                and restart PostgreSQL (RDS: rds.logical_replication = 1; Cloud SQL: cloudsql.logical_decoding = on)
                """))
        }
        let role = try db.execute("SELECT current_user, rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").first
        if role?[1] == "t" {
            lines.append("ok    role \(role?[0] ?? "?") may replicate")
        } else {
            let name = role?[0] ?? "the role"
            problems.append(ConfigProblem(field: "postgres.url", message: "role \(name) needs the REPLICATION attribute: ALTER ROLE \(SQL.quoteIdentifier(name)) REPLICATION;"))
        }
        do {
            let stream = try PGConnection.connectReplication(conninfo)
            let system = try stream.command("IDENTIFY_SYSTEM").first
            lines.append("ok    replication connection (system \(system?[0] ?? "?"), timeline \(system?[1] ?? "?"))")
        } catch {
            problems.append(ConfigProblem(field: "postgres.url", message: """
                a replication connection (replication=database) failed: \(error.message). Connect to the primary directly \
                (not through PgBouncer or a pooled URL); pg_hba.conf must allow the role on this database
                """))
        }
        // The publication: all four operations, exactly the configured tables, no row filter or column list.
        let wanted = Set(tables.map { "\($0.schema.schema).\($0.schema.name)" })
        let publication = try db.query(
            "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate FROM pg_catalog.pg_publication WHERE pubname = $1",
            parameters: [settings.publication]
        )
        let createSQL = "CREATE PUBLICATION \(SQL.quoteIdentifier(settings.publication)) FOR TABLE \(tables.map(\.schema.quotedName).joined(separator: ", ")) WITH (publish = 'insert, update, delete, truncate');"
        if let row = publication.first {
            let published = try db.query(
                "SELECT schemaname || '.' || tablename, attnames IS NOT NULL AND cardinality(attnames) < (SELECT count(*) FROM pg_catalog.pg_attribute a WHERE a.attrelid = (quote_ident(schemaname) || '.' || quote_ident(tablename))::regclass AND a.attnum > 0 AND NOT a.attisdropped), rowfilter IS NOT NULL FROM pg_catalog.pg_publication_tables WHERE pubname = $1",
                parameters: [settings.publication]
            )
            let have = Set(published.compactMap { $0[0] })
            let filtered = published.filter { $0[1] == "t" || $0[2] == "t" }.compactMap { $0[0] }
            if settings.manage {
                lines.append("ok    publication \(settings.publication) (freshet run keeps it equal to the tables)")
            } else if row[0] != "t" || have != wanted || !filtered.isEmpty {
                problems.append(ConfigProblem(field: "postgres.replication.publication", message: """
                    publication \(settings.publication) must publish insert, update, delete and truncate of exactly \
                    \(wanted.sorted().joined(separator: ", ")) with no column list or row filter (it has \
                    \(have.sorted().joined(separator: ", "))\(filtered.isEmpty ? "" : "; filtered: " + filtered.joined(separator: ", "))); \
                    recreate it: DROP PUBLICATION \(SQL.quoteIdentifier(settings.publication)); \(createSQL)
                    """))
            } else {
                lines.append("ok    publication \(settings.publication)")
            }
        } else if settings.manage {
            lines.append("ok    publication \(settings.publication) does not exist yet; freshet run creates it")
        } else {
            problems.append(ConfigProblem(field: "postgres.replication.publication", message: "publication \(settings.publication) does not exist (manage is false): \(createSQL)"))
        }
        // The slot.
        let slot = try db.query("""
            SELECT plugin, database = current_database(), coalesce(wal_status, ''), temporary,
              coalesce((pg_catalog.pg_current_wal_lsn() - restart_lsn)::bigint, 0)
            FROM pg_catalog.pg_replication_slots WHERE slot_name = $1
            """, parameters: [settings.slot])
        if let row = slot.first {
            if row[0] != "pgoutput" || row[1] != "t" || row[3] != "f" {
                problems.append(ConfigProblem(field: "postgres.replication.slot", message: """
                    slot \(settings.slot) is not a permanent pgoutput slot of this database; choose another name or \
                    drop it: SELECT pg_drop_replication_slot('\(settings.slot)');
                    """))
            } else {
                let lost = row[2] == "lost"
                lines.append("\(lost ? "warn" : "ok  ")  slot \(settings.slot): wal_status \(row[2] ?? "?"), retains \(row[4] ?? "0") bytes of WAL\(lost ? " (invalidated: freshet run recreates it and flushes every key)" : "")")
            }
        } else {
            lines.append("ok    slot \(settings.slot) does not exist yet; freshet run creates it (its first start flushes every key)")
        }
        return (lines, problems)
    }
}
