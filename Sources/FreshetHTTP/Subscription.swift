import FreshetCore

/// What a subscriber asked for: topic patterns (empty means every topic), and where to resume.
package struct SubscriptionRequest: Sendable {
    package var patterns: [TopicPattern]
    /// The `Last-Event-ID` (or `lastEventId`) the client sent, as text.
    package var lastEventID: String?

    package init(patterns: [TopicPattern], lastEventID: String? = nil) {
        self.patterns = patterns
        self.lastEventID = lastEventID
    }

    /// Whether an event with these topics (and, for whole-table events, these topic shapes) is wanted.
    func wants(topics: [String], wholeTableShapes: [TopicPattern]?) -> Bool {
        if patterns.isEmpty { return true }
        if let shapes = wholeTableShapes {
            return patterns.contains { pattern in shapes.contains { pattern.overlaps($0) } }
        }
        return patterns.contains { pattern in topics.contains { pattern.matches($0) } }
    }
}
