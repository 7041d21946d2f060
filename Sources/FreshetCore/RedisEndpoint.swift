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

    /// Why a Redis URL was refused.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    public init(address: Address, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.address = address
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]` or `unix:///path/redis.sock?db=N[&password=P]`.
    public init(parsing url: String) throws(ParseError) {
        if url.hasPrefix("unix://") {
            let rest = url.dropFirst("unix://".count)
            let (pathPart, query) = rest.splitOnce("?")
            guard pathPart.hasPrefix("/") else { throw ParseError(reason: "unix socket URL needs an absolute path: unix:///path/redis.sock") }
            var db = 0
            var password: String?
            for pair in (query ?? "").split(separator: "&") {
                let (k, v) = pair.splitOnce("=")
                switch k {
                case "db":
                    guard let n = v.flatMap({ Int($0) }), n >= 0 else { throw ParseError(reason: "db must be a number") }
                    db = n
                case "password": password = v.map { String($0).percentDecoded }
                default: throw ParseError(reason: "unknown parameter \"\(k)\" (allowed: db, password)")
                }
            }
            self.init(address: .unix(path: String(pathPart)), password: password, database: db)
            return
        }
        guard url.hasPrefix("redis://") else {
            throw ParseError(reason: "expected redis://host[:port][/db] or unix:///path/redis.sock (rediss:// TLS is not supported by hiredis 0.14)")
        }
        var rest = url.dropFirst("redis://".count)
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let (user, pass) = userinfo.splitOnce(":")
            username = user.isEmpty ? nil : String(user).percentDecoded
            password = pass.map { String($0).percentDecoded }
            if pass == nil { password = username; username = nil }  // redis://secret@host: a bare password
        }
        let (hostPort, pathPart) = rest.splitOnce("/")
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
        if let pathPart {
            let dbText = pathPart.splitOnce("?").0
            if !dbText.isEmpty {
                guard let n = Int(dbText), n >= 0 else { throw ParseError(reason: "database \"\(dbText)\" is not a number") }
                db = n
            }
        }
        self.init(address: .tcp(host: host, port: port), username: username, password: password, database: db)
    }
}

extension Substring {
    func splitOnce(_ separator: Character) -> (Substring, Substring?) {
        guard let index = firstIndex(of: separator) else { return (self, nil) }
        return (self[..<index], self[self.index(after: index)...])
    }
}

extension String {
    /// `%XX` sequences decoded; invalid ones left as they are.
    var percentDecoded: String {
        var bytes: [UInt8] = []
        var utf8 = Array(self.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "%"), utf8.count >= 2,
               let v = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
