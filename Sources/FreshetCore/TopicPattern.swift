/// A subscriber's topic pattern: `/`-separated segments, where `*` matches any one segment (`users/*`).
public struct TopicPattern: Sendable, Hashable, CustomStringConvertible {
    /// The segments; `nil` is a `*` wildcard.
    public let segments: [String?]
    public let source: String

    /// Whether a segment is `*` (else the pattern is one exact topic).
    let hasWildcard: Bool

    public init(_ text: String) {
        source = text
        segments = text.split(separator: "/", omittingEmptySubsequences: false).map { $0 == "*" ? nil : String($0) }
        hasWildcard = segments.contains(nil)
    }

    public var description: String { source }

    /// Whether `topic` (a concrete topic such as `users/42`) matches.
    public func matches(_ topic: String) -> Bool {
        if !hasWildcard { return topic == source }
        // Byte-wise, without allocating: this runs for every subscriber on every event.
        let bytes = topic.utf8
        var index = 0
        var start = bytes.startIndex
        while true {
            guard index < segments.count else { return false }
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "/")) ?? bytes.endIndex
            if let literal = segments[index], !literal.utf8.elementsEqual(bytes[start..<end]) { return false }
            index += 1
            if end == bytes.endIndex { return index == segments.count }
            start = bytes.index(after: end)
        }
    }

    /// Whether some topic could match both this pattern and `shape` (a topic template with its placeholders as
    /// wildcards). Used to send a whole-table event to every subscriber of any of the table's topics.
    public func overlaps(_ shape: TopicPattern) -> Bool {
        guard segments.count == shape.segments.count else { return false }
        return zip(segments, shape.segments).allSatisfy { a, b in a == nil || b == nil || a == b }
    }

    /// Whether every topic this pattern can match is also matched by `other` (for JWT topic claims).
    public func isCovered(by other: TopicPattern) -> Bool {
        guard segments.count == other.segments.count else { return false }
        return zip(segments, other.segments).allSatisfy { mine, theirs in theirs == nil || (mine != nil && mine == theirs) }
    }
}

extension KeyTemplate {
    /// The template as a topic shape: any segment with a placeholder becomes `*`.
    public var topicShape: TopicPattern {
        var text = ""
        var segmentHasPlaceholder = false
        var segment = ""
        func endSegment() {
            text += segmentHasPlaceholder ? "*" : segment
            segment = ""
            segmentHasPlaceholder = false
        }
        for piece in segments {
            switch piece {
            case .column: segmentHasPlaceholder = true
            case .literal(let literal):
                for ch in literal {
                    if ch == "/" {
                        endSegment()
                        text += "/"
                    } else {
                        segment.append(ch)
                    }
                }
            }
        }
        endSegment()
        return TopicPattern(text)
    }
}
