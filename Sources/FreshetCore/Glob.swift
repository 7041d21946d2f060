/// Redis's glob patterns (`SCAN MATCH`), as far as Freshet writes them: `*`, `?` and `\`-escapes.
///
/// Used to name the key template behind a key in a log line (the pattern, never the key's values).
public enum Glob {
    /// Whether `text` matches `pattern` (`*` any run, `?` one character, `\x` the character x).
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.utf8)
        let t = Array(text.utf8)
        var pi = 0, ti = 0
        var starP = -1, starT = 0
        while ti < t.count {
            if pi < p.count {
                switch p[pi] {
                case UInt8(ascii: "*"):
                    starP = pi
                    starT = ti
                    pi += 1
                    continue
                case UInt8(ascii: "?"):
                    pi += 1
                    ti += 1
                    continue
                case UInt8(ascii: "\\") where pi + 1 < p.count:
                    if p[pi + 1] == t[ti] {
                        pi += 2
                        ti += 1
                        continue
                    }
                default:
                    if p[pi] == t[ti] {
                        pi += 1
                        ti += 1
                        continue
                    }
                }
            }
            guard starP >= 0 else { return false }
            pi = starP + 1
            starT += 1
            ti = starT
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
