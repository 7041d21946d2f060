import Synchronization
/// Parses the ISO 8601 timestamps the trigger sends (`2026-11-25T12:04:47.538506+00:00`), for lag metrics.
public enum Timestamp {
    /// Seconds since the Unix epoch, or `nil` when the text is not such a timestamp.
    public static func secondsSinceEpoch(_ text: String) -> Double? {
        let b = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var value = 0
            for i in from..<(from + count) {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                value = value * 10 + Int(b[i] - 48)
            }
            return value
        }
        guard b.count >= 19, let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "),
              (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var index = 19
        var fraction = 0.0
        if index < b.count, b[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            while index < b.count, b[index] >= 48, b[index] <= 57 {
                fraction += Double(b[index] - 48) * scale
                scale /= 10
                index += 1
            }
        }
        var offset = 0
        if index < b.count {
            switch b[index] {
            case UInt8(ascii: "Z"): break
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                guard let oh = number(index + 1, 2) else { return nil }
                var om = 0
                if index + 3 < b.count { om = number(index + (b[index + 3] == UInt8(ascii: ":") ? 4 : 3), 2) ?? 0 }
                offset = (oh * 3600 + om * 60) * (b[index] == UInt8(ascii: "-") ? -1 : 1)
            default: return nil
            }
        }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86_400 + hour * 3600 + minute * 60 + second - offset) + fraction
    }
}

/// Remembers the last timestamp parsed: the changes of one statement share their `at`, so a lag metric parses it
/// once per statement instead of once per change.
public final class TimestampCache: Sendable {
    private let last = Mutex<(text: String, seconds: Double?)?>(nil)

    public init() {}

    /// `Timestamp.secondsSinceEpoch(text)`, from the cache when `text` is the last one asked for.
    public func seconds(_ text: String) -> Double? {
        if let hit = last.withLock({ $0 }), hit.text == text { return hit.seconds }
        let seconds = Timestamp.secondsSinceEpoch(text)
        last.withLock { $0 = (text, seconds) }
        return seconds
    }
}
