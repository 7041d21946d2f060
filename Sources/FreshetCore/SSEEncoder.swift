/// Encodes Server-Sent Events messages. Each event is encoded once and the same bytes go to every subscriber.
///
/// CR and LF in `id` and `event` would inject fields, so they are removed; `data` is split on line breaks into one
/// `data:` line each, as the SSE spec requires.
public enum SSEEncoder {
    public static func message(id: String?, event: String?, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 64)
        if let id {
            out.append(contentsOf: "id: ".utf8)
            out.append(contentsOf: singleLine(id).utf8)
            out.append(0x0A)
        }
        if let event {
            out.append(contentsOf: "event: ".utf8)
            out.append(contentsOf: singleLine(event).utf8)
            out.append(0x0A)
        }
        if !data.contains(0x0A) && !data.contains(0x0D) {  // the usual case: JSON from JSONWriter is one line
            out.append(contentsOf: "data: ".utf8)
            out.append(contentsOf: data)
            out.append(0x0A)
            out.append(0x0A)
            return out
        }
        var line: [UInt8] = []
        var lines: [[UInt8]] = []
        var previousCR = false
        for byte in data {
            if byte == 0x0A && previousCR { previousCR = false; continue }
            previousCR = byte == 0x0D
            if byte == 0x0A || byte == 0x0D {
                lines.append(line)
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(byte)
            }
        }
        lines.append(line)
        for l in lines {
            out.append(contentsOf: "data: ".utf8)
            out.append(contentsOf: l)
            out.append(0x0A)
        }
        out.append(0x0A)
        return out
    }

    /// A comment line (`: text`), used for heartbeats.
    public static func comment(_ text: String) -> [UInt8] {
        Array((": " + singleLine(text) + "\n\n").utf8)
    }

    /// The reconnection hint (`retry: ms`).
    public static func retry(milliseconds: Int) -> [UInt8] {
        Array("retry: \(milliseconds)\n\n".utf8)
    }

    static func singleLine(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else { return text }
        return String(text.unicodeScalars.filter { $0 != "\r" && $0 != "\n" && $0 != "\0" })
    }
}

/// An event id, `EPOCH-SEQ`: EPOCH identifies the process start, SEQ counts the events it emitted.
public struct EventID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var epoch: UInt64
    public var sequence: UInt64

    public init(epoch: UInt64, sequence: UInt64) {
        self.epoch = epoch
        self.sequence = sequence
    }

    /// Parses `EPOCH-SEQ`; `nil` for anything else.
    public init?(parsing text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let epoch = UInt64(parts[0]), let sequence = UInt64(parts[1]) else { return nil }
        self.init(epoch: epoch, sequence: sequence)
    }

    public var description: String { "\(epoch)-\(sequence)" }

    public static func < (lhs: EventID, rhs: EventID) -> Bool {
        (lhs.epoch, lhs.sequence) < (rhs.epoch, rhs.sequence)
    }
}
