import FreshetCore

/// Reads a row back by key, for changes whose payload was too large to carry it.
package enum RowReader {
    /// The row as `to_jsonb` gives it, or `nil` if no row has that key any more.
    package static func read(_ table: ResolvedTable, key: JSONObject, on connection: PGConnection) throws(PostgresError) -> JSONObject? {
        var conditions: [String] = []
        var parameters: [String?] = []
        for column in table.keyColumns {
            parameters.append(key[column]?.templateText)
            conditions.append("t.\(SQL.quoteIdentifier(column)) = $\(parameters.count)")
        }
        let sql = "SELECT pg_catalog.to_jsonb(t)::text FROM \(table.schema.quotedName) t WHERE \(conditions.joined(separator: " AND ")) LIMIT 1"
        let rows = try connection.query(sql, parameters: parameters)
        guard let text = rows.first?[0], case .object(let row)? = try? JSONParser.parse(text) else { return nil }
        return row
    }
}
