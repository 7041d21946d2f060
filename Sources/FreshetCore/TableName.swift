/// A table name split into schema and relation, folded the way PostgreSQL folds identifiers: unquoted parts to lower
/// case, `"Quoted"` parts kept as written.
public struct TableName: Sendable, Hashable, CustomStringConvertible {
    /// The schema, or `nil` to resolve through the connection's `search_path`.
    public var schema: String?
    public var name: String

    public init(schema: String?, name: String) {
        self.schema = schema
        self.name = name
    }

    /// The name quoted for SQL: `"billing"."invoices"`.
    public var quoted: String {
        if let schema { return SQL.quoteIdentifier(schema) + "." + SQL.quoteIdentifier(name) }
        return SQL.quoteIdentifier(name)
    }

    public var description: String { quoted }

    /// Parses `table`, `schema.table`, or either part double-quoted (`"My Table"`, `"a""b"`).
    public init?(parsing text: String) {
        var parts: [String] = []
        var current = ""
        var inQuotes = false
        var wasQuoted = false
        var chars = Array(text)[...]
        while let ch = chars.popFirst() {
            if inQuotes {
                if ch == "\"" {
                    if chars.first == "\"" { chars.removeFirst(); current.append("\"") } else { inQuotes = false }
                } else {
                    current.append(ch)
                }
            } else if ch == "\"" {
                guard current.isEmpty else { return nil }
                inQuotes = true
                wasQuoted = true
            } else if ch == "." {
                guard !current.isEmpty else { return nil }
                parts.append(wasQuoted ? current : current.lowercased())
                current = ""
                wasQuoted = false
            } else {
                guard !wasQuoted else { return nil }
                guard ch.isLetter || ch.isNumber || ch == "_" || ch == "$" else { return nil }
                current.append(ch)
            }
        }
        guard !inQuotes, !current.isEmpty else { return nil }
        parts.append(wasQuoted ? current : current.lowercased())
        switch parts.count {
        case 1: self.init(schema: nil, name: parts[0])
        case 2: self.init(schema: parts[0], name: parts[1])
        default: return nil
        }
    }
}

/// Quoting for generated SQL. Every identifier and literal Freshet writes into SQL goes through here.
public enum SQL {
    /// `"name"` with embedded quotes doubled.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingAll("\"", with: "\"\"") + "\""
    }

    /// `'text'` with embedded quotes doubled (standard_conforming_strings is on since PostgreSQL 9.1).
    public static func quoteLiteral(_ text: String) -> String {
        "'" + text.replacingAll("'", with: "''") + "'"
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(count)
        for ch in self {
            if ch == target { out += replacement } else { out.append(ch) }
        }
        return out
    }
}
