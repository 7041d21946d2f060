/// Where Redis is, parsed from `redis.url`.
public struct RedisEndpoint: Sendable, Equatable {
    /// TCP host and port, or a unix socket path.
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var address: Address
    /// ACL user name (Redis 6+); `nil` uses the default user.
    public var username: String?
    public var password: String?
    public var database: Int
    /// `rediss://`: the connection uses TLS (`redis.tls`).
    public var tls: Bool

    /// Why a Redis URL was refused.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    public init(address: Address, username: String? = nil, password: String? = nil, database: Int = 0, tls: Bool = false) {
        self.address = address
        self.tls = tls
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis[s]://[[user]:password@]host[:port][/db]` or `unix:///path/redis.sock?db=N[&password=P]`, with
    /// `ConnectionURL` (the parser redaction uses too). Percent-escapes in the user and password are decoded.
    public init(parsing url: String) throws(ParseError) {
        guard let parts = ConnectionURL(parsing: url) else {
            throw ParseError(reason: "expected redis://host[:port][/db], rediss://host[:port][/db] or unix:///path/redis.sock")
        }
        var username = parts.user.map(ConnectionURL.decoded)
        var password = parts.password.map(ConnectionURL.decoded)
        if password == nil, username != nil {  // redis://secret@host: a bare password
            password = username
            username = nil
        }
        if username?.isEmpty == true { username = nil }
        switch parts.scheme {
        case "unix":
            guard parts.location.hasPrefix("/") else { throw ParseError(reason: "unix socket URL needs an absolute path: unix:///path/redis.sock") }
            var db = 0
            for item in parts.query {
                switch item.name {
                case "db":
                    guard let n = item.value.flatMap({ Int($0) }), n >= 0 else { throw ParseError(reason: "db must be a number") }
                    db = n
                case "password": password = item.value.map(ConnectionURL.decoded)
                default: throw ParseError(reason: "unknown parameter \"\(item.name)\" (allowed: db, password)")
                }
            }
            self.init(address: .unix(path: parts.location), username: username, password: password, database: db)
        case "redis", "rediss":
            let (hostPort, pathPart) = Substring(parts.location).splitOnce("/")
            var host = String(hostPort)
            var port = 6379
            if host.hasPrefix("[") {
                guard let close = host.firstIndex(of: "]") else { throw ParseError(reason: "unclosed '[' in host") }
                let after = host[host.index(after: close)...]
                let inner = String(host[host.index(after: host.startIndex)..<close])
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw ParseError(reason: "bad port") }
                    port = p
                }
                host = inner
            } else if let colon = host.lastIndex(of: ":") {
                guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else {
                    throw ParseError(reason: "bad port in \"\(hostPort)\"")
                }
                port = p
                host = String(host[..<colon])
            }
            guard !host.isEmpty else { throw ParseError(reason: "missing host") }
            var db = 0
            if let dbText = pathPart, !dbText.isEmpty {
                guard let n = Int(dbText), n >= 0 else { throw ParseError(reason: "database \"\(dbText)\" is not a number") }
                db = n
            }
            self.init(address: .tcp(host: host, port: port), username: username, password: password, database: db, tls: parts.scheme == "rediss")
        default:
            throw ParseError(reason: "expected redis://host[:port][/db], rediss://host[:port][/db] or unix:///path/redis.sock, not \(parts.scheme)://")
        }
    }
}

extension Substring {
    func splitOnce(_ separator: Character) -> (Substring, Substring?) {
        guard let index = firstIndex(of: separator) else { return (self, nil) }
        return (self[..<index], self[self.index(after: index)...])
    }
}
