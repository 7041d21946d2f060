/// An error talking to Redis, with the context a user needs. Messages never contain a password.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        /// Could not connect, authenticate or select the database.
        public static let connectionFailed = Code(raw: "connection failed")
        /// The connection broke or timed out; the context is dead and must be replaced.
        public static let connectionLost = Code(raw: "connection lost")
        /// Redis answered with an error reply (the connection is still fine).
        public static let commandFailed = Code(raw: "command failed")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    /// The error reply, for `commandFailed`.
    public var reply: RedisErrorReply?

    public init(code: Code, message: String, reply: RedisErrorReply? = nil) {
        self.code = code
        self.message = message
        self.reply = reply
    }

    /// A command answered with an error reply.
    public static func refused(_ command: String, _ reply: RedisErrorReply) -> RedisError {
        RedisError(code: .commandFailed, message: "\(command) refused: \(reply)", reply: reply)
    }

    public var description: String { "Redis \(code): \(message)" }
}

/// A reply from Redis.
public enum RedisReply: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case string([UInt8])
    case array([RedisReply])
    case null

    /// The reply as text, for bulk strings and status replies.
    public var text: String? {
        switch self {
        case .status(let s): return s
        case .string(let b): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }
}
