extension KeyTemplate {
    /// Why a template cannot be parsed.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var template: String
        public var reason: String
        public var description: String { "malformed template \"\(template)\": \(reason)" }
    }

    /// Parses `text`; `{{` and `}}` are literal braces, `{name}` a column.
    public init(parsing text: String) throws(ParseError) {
        var segments: [Segment] = []
        var literal = ""
        var chars = Array(text)[...]
        func flushLiteral() {
            if !literal.isEmpty { segments.append(.literal(literal)); literal = "" }
        }
        while let ch = chars.popFirst() {
            switch ch {
            case "{":
                if chars.first == "{" {
                    chars.removeFirst()
                    literal.append("{")
                    continue
                }
                var name = ""
                var closed = false
                while let inner = chars.popFirst() {
                    if inner == "}" { closed = true; break }
                    if inner == "{" { throw ParseError(template: text, reason: "'{' inside a placeholder") }
                    name.append(inner)
                }
                guard closed else { throw ParseError(template: text, reason: "unclosed '{' (write '{{' for a literal brace)") }
                let trimmed = name.trimmingSpaces
                guard !trimmed.isEmpty else { throw ParseError(template: text, reason: "empty placeholder '{}'") }
                flushLiteral()
                segments.append(.column(trimmed))
            case "}":
                if chars.first == "}" {
                    chars.removeFirst()
                    literal.append("}")
                    continue
                }
                throw ParseError(template: text, reason: "stray '}' (write '}}' for a literal brace)")
            default:
                literal.append(ch)
            }
        }
        flushLiteral()
        guard !segments.isEmpty else { throw ParseError(template: text, reason: "template is empty") }
        self.init(segments: segments, source: text)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
