/// Hides secrets in connection strings before they reach a log line, an error message or `--print-config`.
public enum Redaction {
    public static let mask = "***"

    /// A URL (`scheme://user:password@host…`) or libpq `key=value` string with its password replaced by `***`.
    /// User, host, port and database stay visible.
    public static func connectionString(_ text: String) -> String {
        if let schemeEnd = text.range(of: "://") {
            let afterScheme = text[schemeEnd.upperBound...]
            let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
            let authority = afterScheme[..<authorityEnd]
            var result = String(text[..<schemeEnd.upperBound])
            if let at = authority.lastIndex(of: "@") {
                let userinfo = authority[..<at]
                if let colon = userinfo.firstIndex(of: ":") {
                    result += userinfo[..<colon] + ":" + mask
                } else if text.hasPrefix("redis") {
                    result += mask  // redis://secret@host: the userinfo is the password
                } else {
                    result += userinfo
                }
                result += authority[at...]
            } else {
                result += authority
            }
            var rest = String(afterScheme[authorityEnd...])
            rest = redactQueryParameter(rest, name: "password")
            return result + rest
        }
        return redactKeyValue(text)
    }

    private static func redactQueryParameter(_ text: String, name: String) -> String {
        guard let q = text.firstIndex(of: "?") else { return text }
        let parts = text[text.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false).map { part -> String in
            part.hasPrefix(name + "=") ? name + "=" + mask : String(part)
        }
        return text[...q] + parts.joined(separator: "&")
    }

    /// `password=secret` or `password='sec ret'` in a libpq key=value string.
    private static func redactKeyValue(_ text: String) -> String {
        var out = ""
        var chars = Array(text)[...]
        while !chars.isEmpty {
            // copy whitespace
            while let c = chars.first, c == " " { out.append(c); chars.removeFirst() }
            // read key
            var key = ""
            while let c = chars.first, c != "=", c != " " { key.append(c); chars.removeFirst() }
            out += key
            while let c = chars.first, c == " " { out.append(c); chars.removeFirst() }
            guard chars.first == "=" else { continue }
            out.append("="); chars.removeFirst()
            while let c = chars.first, c == " " { out.append(c); chars.removeFirst() }
            var value = ""
            if chars.first == "'" {
                value.append(chars.removeFirst())
                while let c = chars.popFirst() {
                    value.append(c)
                    if c == "\\", let next = chars.popFirst() { value.append(next); continue }
                    if c == "'" { break }
                }
            } else {
                while let c = chars.first, c != " " { value.append(c); chars.removeFirst() }
            }
            out += key.lowercased() == "password" ? mask : value
        }
        return out
    }
}
