/// Checks the configuration against the catalog: every table exists and every column it names is a column of it.
public enum SchemaValidator {
    /// Returns every problem; `schemas` maps each table's index to its catalog entry, or `nil` if it does not exist.
    public static func validate(_ config: FreshetConfig, schemas: [TableSchema?]) -> [ConfigProblem] {
        var problems: [ConfigProblem] = []
        for (i, table) in config.tables.enumerated() {
            let field = "tables[\(i)]"
            guard i < schemas.count, let schema = schemas[i] else {
                problems.append(.init(field: "\(field).name", message: "table \"\(table.name)\" does not exist (or is not visible to this role)"))
                continue
            }
            func check(_ columns: [String], _ path: String) {
                for column in columns where !schema.columns.contains(column) {
                    problems.append(.init(
                        field: path,
                        message: "table \"\(table.name)\" has no column \"\(column)\" (columns: \(schema.columns.joined(separator: ", ")))"
                    ))
                }
            }
            if let key = table.key {
                check(key, "\(field).key")
            } else if schema.primaryKey.isEmpty {
                problems.append(.init(field: "\(field).key", message: "table \"\(table.name)\" has no primary key; list its key columns in key:"))
            }
            check(table.ignoreColumns, "\(field).ignore_columns")
            for (j, rule) in table.redis.enumerated() {
                check(rule.key.columns, "\(field).redis[\(j)].key")
                check(rule.columns ?? [], "\(field).redis[\(j)].columns")
            }
            for (j, topic) in (table.sse.topics ?? []).enumerated() {
                check(topic.columns, "\(field).sse.topics[\(j)]")
            }
            check(table.sse.columns ?? [], "\(field).sse.columns")
        }
        return problems
    }
}
