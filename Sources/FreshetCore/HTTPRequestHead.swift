/// The head of an HTTP/1.x request (request line and header fields), as Freshet's own `/events` path reads it.
///
/// The parser is deliberately narrow: it accepts the plain requests an `EventSource` sends and answers nil for
/// anything else (obsolete line folding, a bare LF, a field without a colon, a control character), and the connection
/// is then handed to the full HTTP server, which parses it again and answers as the standard requires. It never has
/// to reject a request itself.
public struct HTTPRequestHead: Sendable, Equatable {
    /// One header field, its name as sent.
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var method: String
    /// The request target as sent (`/events?topic=a`).
    public var target: String
    /// `HTTP/1.1` or `HTTP/1.0`.
    public var version: String
    public var fields: [Field]

    public init(method: String, target: String, version: String, fields: [Field]) {
        self.method = method
        self.target = target
        self.version = version
        self.fields = fields
    }

    /// The first field named `name` (case-insensitive).
    public func field(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name }?.value
    }

    /// Every field named `name` (case-insensitive), in order.
    public func fields(_ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name }.map(\.value)
    }

    /// The target's path (before `?`).
    public var path: Substring { target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0] }

    /// Whether the request has a body or asks for more than one response (a body length, a transfer coding, an
    /// upgrade, an expectation): such a request is not a plain stream request.
    public var mayCarryMore: Bool {
        if let length = field("content-length"), length != "0" { return true }
        return field("transfer-encoding") != nil || field("upgrade") != nil || field("expect") != nil
    }

    /// The head in `bytes` when `bytes` is exactly one plain stream request for `path`: `GET` over HTTP/1.1, no body,
    /// no upgrade, nothing pipelined after it. Anything else is nil (the full HTTP server answers it).
    public static func plainGet(_ path: String, in bytes: some BidirectionalCollection<UInt8>) -> HTTPRequestHead? {
        guard length(in: bytes) == bytes.count, let head = parse(bytes), head.method == "GET", head.path == path,
              head.version == "HTTP/1.1", !head.mayCarryMore else { return nil }
        return head
    }

    /// The number of bytes up to and including the blank line that ends the head, or nil when `bytes` does not hold
    /// it yet.
    public static func length(in bytes: some BidirectionalCollection<UInt8>) -> Int? {
        var matched = 0
        var count = 0
        for byte in bytes {
            count += 1
            switch (matched, byte) {
            case (0, 0x0D), (2, 0x0D): matched += 1
            case (1, 0x0A), (3, 0x0A): matched += 1
            case (_, 0x0D): matched = 1
            default: matched = 0
            }
            if matched == 4 { return count }
        }
        return nil
    }

    /// Parses a whole head (ending with CRLF CRLF); nil when it is not one this parser accepts.
    public static func parse(_ bytes: some Collection<UInt8>) -> HTTPRequestHead? {
        var lines: [ArraySlice<UInt8>] = []
        let all = Array(bytes)
        var start = 0
        var i = 0
        while i < all.count {
            let byte = all[i]
            if byte == 0x0A { return nil }  // a bare LF
            if byte == 0x0D {
                guard i + 1 < all.count, all[i + 1] == 0x0A else { return nil }
                lines.append(all[start..<i])
                i += 2
                start = i
                continue
            }
            if byte < 0x20 && byte != 0x09 || byte == 0x7F { return nil }
            i += 1
        }
        guard start == all.count, lines.count >= 2, lines.last!.isEmpty else { return nil }
        let requestLine = lines[0].split(separator: 0x20, omittingEmptySubsequences: false)
        guard requestLine.count == 3, !requestLine[0].isEmpty, requestLine[0].allSatisfy(isTokenByte),
              requestLine[1].first == UInt8(ascii: "/") else { return nil }
        let version = String(decoding: requestLine[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return nil }
        var fields: [Field] = []
        for line in lines[1..<(lines.count - 1)] {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                  line[line.startIndex..<colon].allSatisfy(isTokenByte) else { return nil }
            let value = line[(colon + 1)...].drop { $0 == 0x20 || $0 == 0x09 }
            var end = value.endIndex
            while end > value.startIndex, value[end - 1] == 0x20 || value[end - 1] == 0x09 { end -= 1 }
            fields.append(Field(
                name: String(decoding: line[line.startIndex..<colon], as: UTF8.self),
                value: String(decoding: value[value.startIndex..<end], as: UTF8.self)
            ))
        }
        return HTTPRequestHead(
            method: String(decoding: requestLine[0], as: UTF8.self), target: String(decoding: requestLine[1], as: UTF8.self),
            version: version, fields: fields
        )
    }

    /// RFC 9110 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
