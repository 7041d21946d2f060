import FreshetCore

/// Reads table definitions from the catalog.
package enum SchemaInspector {
    static let sql = """
        SELECT n.nspname, c.relname,
          (SELECT pg_catalog.json_agg(a.attname ORDER BY a.attnum)::text FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
          (SELECT pg_catalog.json_agg(a.attname ORDER BY pg_catalog.array_position(i.indkey::int2[], a.attnum))::text
            FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = c.oid AND i.indisprimary)
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p')
        """

    /// The catalog entry of `table`, or `nil` when there is no such table.
    package static func inspect(_ table: TableName, on connection: PGConnection) throws(PostgresError) -> TableSchema? {
        let rows = try connection.query(sql, parameters: [table.quoted])
        guard let row = rows.first, let schema = row[0], let name = row[1] else { return nil }
        return TableSchema(schema: schema, name: name, columns: names(row[2]), primaryKey: names(row[3]))
    }

    /// Inspects every configured table and checks the configuration against the catalog.
    package static func resolve(_ config: FreshetConfig, on connection: PGConnection) throws(PostgresError) -> Result<[ResolvedTable], ConfigError> {
        var schemas: [TableSchema?] = []
        for table in config.tables {
            schemas.append(try inspect(table.qualifiedName, on: connection))
        }
        let problems = SchemaValidator.validate(config, schemas: schemas)
        guard problems.isEmpty else { return .failure(ConfigError(problems: problems)) }
        return .success(zip(config.tables, schemas).map { ResolvedTable(config: $0, schema: $1!) })
    }

    /// Resolves the tables, then, for the replication source, checks each one's REPLICA IDENTITY
    /// (`ReplicaIdentityCheck`): the problems are configuration errors (exit 2) naming the table, the columns and the
    /// `ALTER TABLE … REPLICA IDENTITY FULL;` to run. Freshet never alters the application's tables.
    package static func resolveForReplication(_ config: FreshetConfig, on connection: PGConnection) throws(PostgresError) -> Result<[ResolvedTable], ConfigError> {
        let resolved = try resolve(config, on: connection)
        guard case .success(let tables) = resolved else { return resolved }
        var problems: [ConfigProblem] = []
        for (index, table) in tables.enumerated() {
            let (identity, columns) = try replicaIdentity(of: table.schema, on: connection)
            problems += ReplicaIdentityCheck.problems(table, index: index, identity: identity, identityColumns: columns)
        }
        return problems.isEmpty ? .success(tables) : .failure(ConfigError(problems: problems))
    }

    /// `pg_class.relreplident` and the identity's columns (the primary key for `d`, the index for `i`).
    package static func replicaIdentity(of table: TableSchema, on connection: PGConnection) throws(PostgresError) -> (String, [String]) {
        let rows = try connection.query("""
            SELECT c.relreplident::text,
              (SELECT pg_catalog.json_agg(a.attname)::text FROM pg_catalog.pg_index i
                JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)))
            FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)
            """, parameters: [table.quotedName])
        guard let row = rows.first else { return ("n", []) }
        return (row[0] ?? "n", names(row[1]))
    }

    private static func names(_ json: String?) -> [String] {
        guard let json, case .array(let items)? = try? JSONParser.parse(json) else { return [] }
        return items.compactMap(\.stringValue)
    }
}
