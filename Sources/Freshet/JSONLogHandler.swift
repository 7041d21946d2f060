import Foundation
import FreshetCore
import Logging

/// A swift-log handler that writes one JSON object per line to stderr: `time`, `level`, `message`, then every
/// metadata field as a key of its own (`table`, `op`, `gap`, …).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        write(line(level: event.level, message: event.message, metadata: event.metadata))
    }

    func line(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?) -> String {
        var object: JSONObject = [
            "time": .string(Self.timestamp()),
            "level": .string(level.rawValue),
            "message": .string(message.description),
        ]
        let merged = metadata.merging(explicit ?? [:]) { _, new in new }
        for key in merged.keys.sorted() where object[key] == nil {
            object[key] = Self.json(merged[key]!)
        }
        return JSONValue.object(object).jsonText + "\n"
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let items): return .array(items.map(json))
        case .dictionary(let dict): return .object(JSONObject(dict.keys.sorted().map { ($0, json(dict[$0]!)) }))
        }
    }

    /// One format style for every line (a formatter per line was the costliest part of logging).
    static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func timestamp() -> String { timeFormat.format(Date()) }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }
}
