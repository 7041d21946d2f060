/// What the catalog says about a configured table: where it lives, its columns in order, its primary key.
public struct TableSchema: Sendable, Equatable {
    public var schema: String
    public var name: String
    public var columns: [String]
    /// Primary key columns in key order; empty when the table has none.
    public var primaryKey: [String]

    public init(schema: String, name: String, columns: [String], primaryKey: [String]) {
        self.schema = schema
        self.name = name
        self.columns = columns
        self.primaryKey = primaryKey
    }

    /// The table quoted for SQL: `"public"."users"`.
    public var quotedName: String { TableName(schema: schema, name: name).quoted }
}

/// A configured table joined with its catalog entry: everything the planner and the trigger generator need.
public struct ResolvedTable: Sendable, Equatable {
    public var config: TableConfig
    public var schema: TableSchema
    /// The key columns: `key:` from the config, else the primary key.
    public var keyColumns: [String]
    /// The effective topic templates.
    public var topics: [KeyTemplate]

    public init(config: TableConfig, schema: TableSchema) {
        self.config = config
        self.schema = schema
        self.keyColumns = config.key ?? schema.primaryKey
        if let topics = config.sse.topics {
            self.topics = topics
        } else {
            var perRow: [KeyTemplate.Segment] = [.literal(config.name)]
            for column in keyColumns {
                perRow.append(.literal("/"))
                perRow.append(.column(column))
            }
            self.topics = [
                KeyTemplate(segments: [.literal(config.name)], source: config.name),
                KeyTemplate(segments: perRow, source: config.name + keyColumns.map { "/{\($0)}" }.joined()),
            ]
        }
    }

    /// The name as written in the config (the metric label and default topic).
    public var name: String { config.name }

    /// Columns a notification must always carry: the key and every column a Redis or topic template names.
    public var minimalColumns: [String] {
        var result = keyColumns
        for template in config.redis.map(\.key) + topics {
            for column in template.columns where !result.contains(column) { result.append(column) }
        }
        return result
    }

    /// Columns of row data a change needs: for `set` rules and `sse.columns`. `nil` means every column.
    public var rowColumns: [String]? {
        var result = minimalColumns
        for rule in config.redis where rule.action == .set {
            guard let columns = rule.columns else { return nil }
            for column in columns where !result.contains(column) { result.append(column) }
        }
        for column in sseColumns where !result.contains(column) { result.append(column) }
        return result
    }

    /// Columns sent to subscribers: `sse.columns`, or the key columns.
    public var sseColumns: [String] { config.sse.columns ?? keyColumns }

    /// Whether changes carry more than the minimal columns, so that an oversized payload needs a read-back.
    public var needsRowData: Bool {
        guard let row = rowColumns else { return true }
        return Set(row) != Set(minimalColumns) || config.redis.contains { $0.action == .set }
    }
}

/// What the replication source needs from a table's REPLICA IDENTITY, as a pure check (`run` and `check` exit 2
/// with its problems): the old row of an UPDATE or DELETE carries only the identity columns unless the identity is
/// FULL, so every column Freshet renders from the old row (key and topic templates, `ignore_columns`) must be in it.
public enum ReplicaIdentityCheck {
    /// The table's replica identity as `pg_class.relreplident` says (`d`, `n`, `f`, `i`) and its columns (the primary
    /// key's for `d`, the index's for `i`; empty when there is none).
    public static func problems(
        _ table: ResolvedTable, index: Int, identity: String, identityColumns: [String]
    ) -> [ConfigProblem] {
        let field = "tables[\(index)]"
        let alter = "ALTER TABLE \(table.schema.quotedName) REPLICA IDENTITY FULL;"
        if identity == "f" { return [] }
        if identity == "n" || identityColumns.isEmpty {
            return [ConfigProblem(field: field, message: """
                table \(table.name) has no replica identity (no primary key): PostgreSQL would refuse the application's \
                UPDATEs and DELETEs once it is published. Add a primary key, or run: \(alter)
                """)]
        }
        var needed = table.minimalColumns
        for column in table.config.ignoreColumns where !needed.contains(column) { needed.append(column) }
        let missing = needed.filter { !identityColumns.contains($0) }
        guard !missing.isEmpty else { return [] }
        return [ConfigProblem(field: field, message: """
            table \(table.name): column\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) of the old row \
            (used by a key or topic template or ignore_columns) \(missing.count == 1 ? "is" : "are") not in its replica \
            identity (\(identityColumns.joined(separator: ", "))). Run: \(alter)
            """)]
    }
}
