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
