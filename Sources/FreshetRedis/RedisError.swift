/// An error talking to Redis, with the context a user needs. Messages never contain a password.
package struct RedisError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely.
    package struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        /// Could not connect, authenticate or select the database.
        package static let connectionFailed = Code(raw: "connection failed")
        /// The connection broke or timed out; the context is dead and must be replaced.
        package static let connectionLost = Code(raw: "connection lost")
        /// Redis answered with an error reply (the connection is still fine).
        package static let commandFailed = Code(raw: "command failed")
        package var description: String { raw }
    }

    package var code: Code
    package var message: String
    /// The error reply, for `commandFailed`.
    package var reply: RedisErrorReply?

    package init(code: Code, message: String, reply: RedisErrorReply? = nil) {
        self.code = code
        self.message = message
        self.reply = reply
    }

    /// A command answered with an error reply.
    package static func refused(_ command: String, _ reply: RedisErrorReply) -> RedisError {
        RedisError(code: .commandFailed, message: "\(command) refused: \(reply)", reply: reply)
    }

    package var description: String { "Redis \(code): \(message)" }
}

/// A reply from Redis.
package enum RedisReply: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case string([UInt8])
    case array([RedisReply])
    case null

    /// The reply as text, for bulk strings and status replies.
    package var text: String? {
        switch self {
        case .status(let s): return s
        case .string(let b): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }
}
