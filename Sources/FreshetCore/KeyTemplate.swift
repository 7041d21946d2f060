/// A Redis key or SSE topic template such as `org:{org_id}:members`.
///
/// `{column}` names a column of the table; `{{` and `}}` are literal braces. A template renders to nothing when one of
/// its columns is NULL or missing (the key is skipped), and to a Redis glob pattern (placeholders as `*`) for truncate.
public struct KeyTemplate: Sendable, Hashable, CustomStringConvertible {
    /// One piece of a template.
    public enum Segment: Sendable, Hashable {
        case literal(String)
        case column(String)
    }

    /// The template as the user wrote it.
    public let source: String
    /// The parsed pieces, adjacent literals merged.
    public let segments: [Segment]

    public var description: String { source }

    /// The columns the template names, in order of first use.
    public var columns: [String] {
        var seen: [String] = []
        for case .column(let name) in segments where !seen.contains(name) { seen.append(name) }
        return seen
    }

    /// Builds a template from already parsed segments (used for the default topics).
    public init(segments: [Segment], source: String) {
        self.segments = segments
        self.source = source
    }

    /// Renders the template from a row; `nil` when a named column is NULL or absent.
    public func render(_ row: JSONObject) -> String? {
        var out = ""
        for segment in segments {
            switch segment {
            case .literal(let text): out += text
            case .column(let name):
                guard let value = row[name], let text = value.templateText else { return nil }
                out += text
            }
        }
        return out
    }

    /// The Redis `SCAN MATCH` pattern that covers every key this template can render.
    ///
    /// Placeholders become `*`; glob characters in the literal parts are escaped so they match only themselves.
    public var globPattern: String {
        var out = ""
        for segment in segments {
            switch segment {
            case .literal(let text):
                for ch in text {
                    if "*?[]\\".contains(ch) { out.append("\\") }
                    out.append(ch)
                }
            case .column:
                if !out.hasSuffix("*") { out += "*" }
            }
        }
        return out
    }
}
