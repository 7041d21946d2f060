/// Hides secrets in connection strings before they reach a log line, an error message or `--print-config`.
public enum Redaction {
    public static let mask = "***"

    /// A URL (`scheme://user:password@host…`, parsed by `ConnectionURL`, the parser the Redis connection uses) or a
    /// libpq `key=value` string with every secret replaced by `***`: the password (whatever characters it holds), a bare
    /// Redis password, `password=` and `sslpassword=` parameters. User, host, port and database stay visible.
    public static func connectionString(_ text: String) -> String {
        if let url = ConnectionURL(parsing: text) { return url.redacted(mask: mask) }
        return redactKeyValue(text)
    }

    /// `password=secret`, `sslpassword=secret` or `password='sec ret'` in a libpq key=value string.
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
            out += ConnectionURL.secretParameters.contains(key.lowercased()) ? mask : value
        }
        return out
    }
}
