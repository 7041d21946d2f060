import Foundation
import FreshetCore
import Logging

/// One single-key command of a batch (`UNLINK k`, `SET k v`), with the key that routes it.
package struct RedisCommand: Sendable, Equatable {
    package var key: String
    package var arguments: [String]

    package init(key: String, arguments: [String]) {
        self.key = key
        self.arguments = arguments
    }
}

/// Where the writer's commands go: one server (`StandaloneTarget`), the master Redis Sentinel names
/// (`SentinelTarget`), or the masters of a Redis Cluster by hash slot (`ClusterTarget`).
///
/// Used by one thread only (the writer's, or a one-shot command's); every call blocks. A target connects on demand and
/// reconnects after `reset()`. Error messages name the node they are about (for the log and `/readyz`).
package protocol RedisTarget: AnyObject {
    /// Sends the commands pipelined, each to the node that serves its key, and returns each command's final reply (an
    /// error reply included) in the commands' order. Returns only when every command has its final reply: redirected
    /// commands (`MOVED`, `ASK`) are resent first, so nothing sent later can overtake them. A lost connection is thrown.
    func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply]

    /// Deletes every key matching `pattern` (SCAN + UNLINK) on every master; returns how many. An error reply is
    /// thrown (`commandFailed` with the reply).
    func unlinkMatching(_ pattern: String) throws(RedisError) -> Int

    /// Checks that Redis answers and takes commands (PING on every master). An error reply is thrown as
    /// `commandFailed` with the reply.
    func check() throws(RedisError)

    /// Drops the connections after a fault: the next call reconnects (and asks the sentinels, or for the slot map).
    func reset()

    /// Set when a master changed since it was last cleared (a failover): its description, `old → new`. The writer
    /// then applies its recent operations again (`redis.replay_after_failover`) and clears it.
    var masterChange: String? { get set }

    /// Masters in use: 1, or the cluster's masters.
    var nodeCount: Int { get }
}

extension RedisTarget {
    /// Sends one command to the node that serves `key`.
    package func command(_ arguments: [String], key: String) throws(RedisError) -> RedisReply {
        try pipeline([RedisCommand(key: key, arguments: arguments)])[0]
    }
}

/// Makes the target of a topology.
package func makeRedisTarget(
    _ topology: RedisTopology, tls: RedisTLSContext?, timeout: Double, logger: Logger, observer: RedisWriterObserver? = nil
) -> RedisTarget {
    switch topology {
    case .standalone(let endpoint): return StandaloneTarget(endpoint: endpoint, tls: tls, timeout: timeout)
    case .cluster(let seeds): return ClusterTarget(seeds: seeds, tls: tls, timeout: timeout, logger: logger, observer: observer)
    case .sentinel(let sentinel): return SentinelTarget(sentinel, tls: tls, timeout: timeout, logger: logger, observer: observer)
    }
}

/// One Redis server at one address.
package final class StandaloneTarget: RedisTarget {
    private let endpoint: RedisEndpoint
    private let tls: RedisTLSContext?
    private let timeout: Double
    private var connection: RedisConnection?
    package var masterChange: String?
    package var nodeCount: Int { 1 }

    package init(endpoint: RedisEndpoint, tls: RedisTLSContext?, timeout: Double) {
        self.endpoint = endpoint
        self.tls = tls
        self.timeout = timeout
    }

    private func live() throws(RedisError) -> RedisConnection {
        if let connection { return connection }
        let made = try RedisConnection.connect(endpoint, tls: tls, timeout: timeout)
        connection = made
        return made
    }

    package func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        do {
            return try live().pipeline(commands.map(\.arguments))
        } catch {
            connection = nil
            throw error
        }
    }

    package func unlinkMatching(_ pattern: String) throws(RedisError) -> Int {
        do {
            return try live().unlinkMatching(pattern)
        } catch {
            if error.code != .commandFailed { connection = nil }
            throw error
        }
    }

    package func check() throws(RedisError) {
        let reply: RedisReply
        do {
            reply = try live().command(["PING"])
        } catch {
            connection = nil
            throw error
        }
        if case .error(let text) = reply { throw RedisError.refused("PING", RedisErrorReply(text)) }
    }

    package func reset() { connection = nil }
}

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
