import Foundation
import FreshetCore

extension RedisConnection {
    /// Sends the commands in one round trip and reads every reply.
    package func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisReply] {
        for command in commands { try append(command) }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands { replies.append(try reply()) }
        return replies
    }

    /// Keys per SCAN step and per UNLINK in a pattern flush.
    static let scanCount = 1000

    /// SCAN + UNLINK every key matching `pattern` on this server; returns how many were deleted. Never uses KEYS, and
    /// pauses briefly between full batches so that Redis stays responsive to the application. An error reply to SCAN
    /// or UNLINK is thrown (`commandFailed` with the reply): the flush is not done.
    package func unlinkMatching(_ pattern: String) throws(RedisError) -> Int {
        var cursor = "0"
        var deleted = 0
        repeat {
            let names: [String]
            (cursor, names) = try scan(cursor, pattern)
            if !names.isEmpty {
                switch try command(["UNLINK"] + names) {
                case .integer(let n): deleted += Int(n)
                case .error(let text): throw RedisError.refused("UNLINK", RedisErrorReply(text))
                default: break
                }
                if names.count >= Self.scanCount / 2 { Thread.sleep(forTimeInterval: 0.001) }
            }
        } while cursor != "0"
        return deleted
    }

    /// One SCAN step: the next cursor and the keys found.
    func scan(_ cursor: String, _ pattern: String) throws(RedisError) -> (String, [String]) {
        let reply = try command(["SCAN", cursor, "MATCH", pattern, "COUNT", String(Self.scanCount)])
        if case .error(let text) = reply { throw RedisError.refused("SCAN", RedisErrorReply(text)) }
        guard case .array(let parts) = reply, parts.count == 2, let next = parts[0].text, case .array(let keys) = parts[1] else {
            throw RedisError(code: .connectionLost, message: "unexpected SCAN reply")
        }
        return (next, keys.compactMap(\.text))
    }
}
