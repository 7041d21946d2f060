/// A connection URL (`redis://`, `rediss://`, `unix://`, `postgresql://`, `postgres://`) split into its parts: the
/// one parser behind connecting to Redis and behind every redaction, so that what is a password when connecting is
/// exactly what is hidden when printing.
///
/// Lenient where users are: the userinfo ends at the **last** `@` of the URL, so a password with `/`, `:`, `#`, `?`
/// or `@` left unescaped is still read (and hidden) whole. The parts are kept as written (percent-escapes and all);
/// `decoded(_:)` decodes one.
public struct ConnectionURL: Sendable, Equatable {
    /// `redis`, `postgresql`, …, lower-cased.
    public var scheme: String
    /// The user name as written, when the URL has a userinfo.
    public var user: String?
    /// The password as written, when the userinfo has a `:`.
    public var password: String?
    /// Host, port and path: what follows the userinfo, up to the query.
    public var location: String
    /// The query's `name=value` pairs as written, in order.
    public var query: [QueryItem]

    /// One `name=value` pair of the query.
    public struct QueryItem: Sendable, Equatable {
        public var name: String
        public var value: String?
    }

    /// Query parameters that carry secrets.
    public static let secretParameters: Set<String> = ["password", "sslpassword"]

    /// Splits `text`; nil when it is not `scheme://…`.
    public init?(parsing text: String) {
        guard let separator = text.range(of: "://"),
              !text[..<separator.lowerBound].isEmpty,
              text[..<separator.lowerBound].allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) })
        else { return nil }
        scheme = text[..<separator.lowerBound].lowercased()
        var rest = text[separator.upperBound...]
        var at = rest.lastIndex(of: "@")
        if let found = at, let q = rest[..<found].firstIndex(of: "?"), rest[q..<found].contains("=") {
            // That `@` is inside a query value: a userinfo, if any, ends before the query.
            at = rest[..<q].lastIndex(of: "@")
        }
        if let at {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                user = String(userinfo[..<colon])
                password = String(userinfo[userinfo.index(after: colon)...])
            } else {
                user = String(userinfo)
            }
        }
        let queryStart = rest.firstIndex(of: "?")
        location = String(rest[..<(queryStart ?? rest.endIndex)])
        query = []
        if let queryStart {
            for pair in rest[rest.index(after: queryStart)...].split(separator: "&", omittingEmptySubsequences: false) {
                if let equals = pair.firstIndex(of: "=") {
                    query.append(QueryItem(name: String(pair[..<equals]), value: String(pair[pair.index(after: equals)...])))
                } else {
                    query.append(QueryItem(name: String(pair), value: nil))
                }
            }
        }
    }

    /// Redis reads `redis://secret@host` (a userinfo without `:`) as a bare password.
    public var bareUserIsPassword: Bool { scheme.hasPrefix("redis") || scheme == "unix" }

    /// The URL with every secret replaced by `mask`: the password, a bare Redis password, and the `password` and
    /// `sslpassword` query parameters. User, host, port, path and other parameters stay as written.
    public func redacted(mask: String = Redaction.mask) -> String {
        var out = scheme + "://"
        if let user {
            if password != nil {
                out += user + ":" + mask + "@"
            } else {
                out += (bareUserIsPassword ? mask : user) + "@"
            }
        }
        out += location
        if !query.isEmpty {
            out += "?" + query.map { item in
                guard let value = item.value else { return item.name }
                return item.name + "=" + (Self.secretParameters.contains(item.name.lowercased()) ? mask : value)
            }.joined(separator: "&")
        }
        return out
    }

    /// The URL with its user and password percent-escaped where RFC 3986 wants it, so that libpq (whose userinfo
    /// ends at the first `/`) reads a password with `/`, `@`, `#`, `?` or `:` as this parser does. Escapes already
    /// there are kept.
    public var normalized: String {
        var out = scheme + "://"
        if let user {
            out += Self.escaped(user)
            if let password { out += ":" + Self.escaped(password) }
            out += "@"
        }
        out += location
        if !query.isEmpty {
            out += "?" + query.map { item in item.value.map { item.name + "=" + $0 } ?? item.name }.joined(separator: "&")
        }
        return out
    }

    private static func escaped(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out = ""
        var i = 0
        func isHex(_ b: UInt8) -> Bool { (b >= 48 && b <= 57) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102) }
        while i < bytes.count {
            let b = bytes[i]
            let unreserved = (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == 45 || b == 46 || b == 95 || b == 126
            if unreserved || (b == 37 && i + 2 < bytes.count && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "%" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
            i += 1
        }
        return out
    }

    /// `%XX` sequences decoded; invalid ones left as they are.
    public static func decoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
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

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
