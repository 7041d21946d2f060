/// Checks a configuration that parsed cleanly for problems between fields, without touching any server.
public enum ConfigValidator {
    public static func validate(_ config: FreshetConfig) -> [ConfigProblem] {
        var problems: [ConfigProblem] = []
        let slot = config.postgres.replication.slot
        if slot.isEmpty || slot.utf8.count > 63 || !slot.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }) {
            problems.append(.init(field: "postgres.replication.slot", message: "must be 1 to 63 lower-case letters, digits or _ (a replication slot name)"))
        }
        let publication = config.postgres.replication.publication
        if publication.isEmpty || publication.utf8.count > 63 {
            problems.append(.init(field: "postgres.replication.publication", message: "must be 1 to 63 bytes long (a PostgreSQL identifier)"))
        }
        let channel = config.postgres.channel
        if channel.isEmpty || channel.utf8.count > 63 {
            problems.append(.init(field: "postgres.channel", message: "must be 1 to 63 bytes long (a PostgreSQL identifier)"))
        }
        problems += RedisTopology.problems(config.redis)
        if ListenAddress(parsing: config.http.listen) == nil {
            problems.append(.init(field: "http.listen", message: "\"\(config.http.listen)\" is not host:port (e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080)"))
        }
        var seen: [TableName: Int] = [:]
        for (i, table) in config.tables.enumerated() {
            let field = "tables[\(i)]"
            if let first = seen[table.qualifiedName] {
                problems.append(.init(field: "\(field).name", message: "table \"\(table.name)\" is already configured at tables[\(first)]"))
            }
            seen[table.qualifiedName] = seen[table.qualifiedName] ?? i
            if let key = table.key, key.isEmpty {
                problems.append(.init(field: "\(field).key", message: "must name at least one column (or be left out to use the primary key)"))
            }
            if let key = table.key {
                for column in key where table.ignoreColumns.contains(column) {
                    problems.append(.init(field: "\(field).ignore_columns", message: "key column \"\(column)\" cannot be ignored"))
                }
            }
            var rendered: Set<String> = []
            for (j, rule) in table.redis.enumerated() where !rendered.insert(rule.key.source).inserted {
                problems.append(.init(field: "\(field).redis[\(j)].key", message: "template \"\(rule.key.source)\" is listed twice"))
            }
        }
        return problems
    }
}

/// `http.listen` split into host and port.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `[v6]:port`, or `:port` (loopback).
    public init?(parsing text: String) {
        var hostPart: Substring
        var portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") { return nil }
        }
        if hostPart.isEmpty { hostPart = "127.0.0.1" }
        guard let port = Int(portPart), (0...65535).contains(port) else { return nil }
        self.init(host: String(hostPart), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
