import Foundation
import FreshetCore
import Logging

/// A Redis Cluster: each key goes to the master that serves its hash slot, over one connection per master.
///
/// - The slot map comes from `CLUSTER SLOTS` (any master or seed that answers) and is refreshed on `MOVED`, after a
///   connection error, on `CLUSTERDOWN`, and every `refreshInterval` seconds.
/// - A batch is written to every node before the first reply is read (about one round trip for N nodes). Replies
///   `MOVED` (the map is updated and the command resent), `ASK` (`ASKING` then the command, on the named node, map
///   unchanged) and `TRYAGAIN`/`CLUSTERDOWN`/`LOADING` (resent after a short backoff) are handled before `pipeline`
///   returns, in the batch's order: nothing of a later batch can overtake a redirected command. After
///   `maxAttempts` the last reply is returned (the writer then retries the whole batch as an outage).
/// - A pattern flush runs SCAN on every master and UNLINKs what it finds through the same routing; when the slot map
///   changes during the sweep, the sweep starts again.
/// - A slot served by another master after a connection error is a failover: `masterChange` is set, so the writer
///   applies its recent operations again (the old master may have acknowledged writes its replica never got).
package final class ClusterTarget: RedisTarget {
    private let seeds: [RedisEndpoint]
    private let tls: RedisTLSContext?
    private let timeout: Double
    private let logger: Logger
    private let observer: RedisWriterObserver?

    private var map = ClusterSlotMap()
    private var mapKnown = false
    private var refreshDue = true
    private var lastRefresh = ContinuousClock.now
    /// Masters whose connection failed since they last answered: when the map no longer lists one of them as a
    /// master, its replica was promoted (a failover).
    private var failedNodes: Set<RedisNodeAddress> = []
    /// Counts changes of the map (a sweep restarts when it moves).
    private var mapVersion = 0
    private var connections: [RedisNodeAddress: RedisConnection] = [:]

    package var masterChange: String?
    package var nodeCount: Int { map.masters.count }

    /// Sends of one command before its last reply is returned as it is.
    static let maxAttempts = 8
    /// Seconds between periodic refreshes of the slot map.
    static let refreshInterval = 30.0

    package init(seeds: [RedisEndpoint], tls: RedisTLSContext?, timeout: Double, logger: Logger, observer: RedisWriterObserver?) {
        self.seeds = seeds
        self.tls = tls
        self.timeout = timeout
        self.logger = logger
        self.observer = observer
    }

    package func reset() {
        connections.removeAll()
        refreshDue = true
    }

    // MARK: Connections and the slot map

    /// The endpoint of a node: its address with the seeds' credentials and TLS.
    private func endpoint(_ node: RedisNodeAddress) -> RedisEndpoint {
        let seed = seeds[0]
        return RedisEndpoint(address: .tcp(host: node.host, port: node.port), username: seed.username, password: seed.password, tls: seed.tls)
    }

    private func connection(_ node: RedisNodeAddress) throws(RedisError) -> RedisConnection {
        if let existing = connections[node] { return existing }
        let made = try RedisConnection.connect(endpoint(node), tls: tls, timeout: timeout)
        connections[node] = made
        return made
    }

    /// What an error talking to `node` becomes: a failed connection is `lost`; an error reply (`commandFailed`)
    /// leaves the connections as they are. Either way the message names the node (for the log and `/readyz`).
    private func failure(_ node: RedisNodeAddress, _ error: RedisError) -> RedisError {
        if error.code != .commandFailed { lost(node) }
        return RedisError(code: error.code, message: "cluster node \(node): \(error.message)", reply: error.reply)
    }

    /// A connection failed: every connection may hold unread replies, so all are dropped; the map is asked again.
    private func lost(_ node: RedisNodeAddress) {
        connections.removeAll()
        refreshDue = true
        failedNodes.insert(node)
    }

    /// Asks the known masters, then the seeds, for `CLUSTER SLOTS` until one answers.
    private func refresh() throws(RedisError) {
        var candidates = map.masters
        for seed in seeds {
            if case .tcp(let host, let port) = seed.address {
                let address = RedisNodeAddress(host: host, port: port)
                if !candidates.contains(address) { candidates.append(address) }
            }
        }
        var errors: [String] = []
        for node in candidates {
            let reply: RedisReply
            do {
                reply = try connection(node).command(["CLUSTER", "SLOTS"])
            } catch {
                errors.append(failure(node, error).message)
                continue
            }
            guard let ranges = ClusterSlotsReply.ranges(reply, askedHost: node.host), !ranges.isEmpty else {
                errors.append("cluster node \(node): no slot map (\(reply.errorText ?? "empty CLUSTER SLOTS"))")
                continue
            }
            apply(ClusterSlotMap(ranges: ranges))
            return
        }
        throw RedisError(code: .connectionFailed, message: "no cluster node answers CLUSTER SLOTS: " + errors.joined(separator: "; "))
    }

    private func apply(_ fresh: ClusterSlotMap) {
        refreshDue = false
        lastRefresh = .now
        if fresh != map {
            let demoted = failedNodes.subtracting(fresh.masters)
            if mapKnown && !demoted.isEmpty {
                let failed = demoted.map(\.description).sorted().joined(separator: ", ")
                let masters = fresh.masters.map(\.description).joined(separator: ", ")
                masterChange = "\(failed) → \(masters)"
                logger.warning("Redis Cluster master replaced after a connection failure (a failover)", metadata: [
                    "failed": "\(failed)", "masters": "\(masters)",
                ])
                failedNodes.subtract(demoted)
            }
            map = fresh
            mapVersion += 1
            let masters = Set(fresh.masters)
            connections = connections.filter { masters.contains($0.key) }
        }
        mapKnown = true
        observer?.nodesChanged(map.masters.count)
    }

    private func refreshIfDue() throws(RedisError) {
        if refreshDue || !mapKnown || ContinuousClock.now - lastRefresh >= .seconds(Self.refreshInterval) { try refresh() }
    }

    // MARK: Commands

    package func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        var replies = [RedisReply](repeating: .null, count: commands.count)
        var pending = Array(commands.indices)
        var asking: [Int: RedisNodeAddress] = [:]
        var attempt = 0
        while true {
            try refreshIfDue()
            var destinations: [(index: Int, node: RedisNodeAddress)] = []
            var unserved: [Int] = []
            for i in pending {
                if let node = asking[i] ?? map.master(forKey: commands[i].key) {
                    destinations.append((i, node))
                } else {
                    unserved.append(i)
                    replies[i] = .error("CLUSTERDOWN Hash slot not served")
                }
            }
            let groups = groupByNode(destinations)
            var sent: [(node: RedisNodeAddress, indices: [Int], connection: RedisConnection)] = []
            for (node, indices) in groups {
                do {
                    let c = try connection(node)
                    for i in indices {
                        if asking[i] != nil { try c.append(["ASKING"]) }
                        try c.append(commands[i].arguments)
                    }
                    try c.flush()
                    sent.append((node, indices, c))
                } catch {
                    throw failure(node, error)
                }
            }
            var retry = unserved
            var backoff = !unserved.isEmpty
            for (node, indices, c) in sent {
                for i in indices {
                    let reply: RedisReply
                    do {
                        if asking[i] != nil { _ = try c.reply() }
                        reply = try c.reply()
                    } catch {
                        throw failure(node, error)
                    }
                    replies[i] = reply
                    guard case .error(let text) = reply else {
                        asking[i] = nil
                        failedNodes.remove(node)  // it answers: nothing to detect there
                        continue
                    }
                    if let redirect = RedisRedirect(reply: text, askedHost: node.host) {
                        observer?.redirected(kind: redirect.kind.rawValue)
                        switch redirect.kind {
                        case .moved:
                            asking[i] = nil
                            if let old = map.master(forSlot: redirect.slot), failedNodes.contains(old) {
                                masterChange = "\(old) → \(redirect.address)"
                            }
                            map.assign(slot: redirect.slot, to: redirect.address)
                            mapVersion += 1
                            refreshDue = true
                        case .ask:
                            asking[i] = redirect.address
                        }
                        retry.append(i)
                    } else if case let word = RedisErrorReply(text).word, ["TRYAGAIN", "CLUSTERDOWN", "LOADING"].contains(word) {
                        observer?.redirected(kind: word.lowercased())
                        asking[i] = nil
                        if word == "CLUSTERDOWN" { refreshDue = true }
                        retry.append(i)
                        backoff = true
                    }
                }
            }
            if retry.isEmpty { return replies }
            attempt += 1
            if attempt >= Self.maxAttempts { return replies }
            pending = retry.sorted()
            if backoff { Thread.sleep(forTimeInterval: min(0.01 * Double(1 << attempt), 0.5)) }
        }
    }

    package func unlinkMatching(_ pattern: String) throws(RedisError) -> Int {
        var deleted = 0
        for _ in 0..<5 {
            try refreshIfDue()
            let version = mapVersion
            for master in map.masters {
                var cursor = "0"
                repeat {
                    let names: [String]
                    do {
                        (cursor, names) = try connection(master).scan(cursor, pattern)
                    } catch {
                        throw failure(master, error)
                    }
                    guard !names.isEmpty else { continue }
                    // One key per UNLINK: keys of one node may be in different slots (CROSSSLOT), or moving.
                    for reply in try pipeline(names.map { RedisCommand(key: $0, arguments: ["UNLINK", $0]) }) {
                        switch reply {
                        case .integer(let n): deleted += Int(n)
                        case .error(let text): throw RedisError.refused("UNLINK", RedisErrorReply(text))
                        default: break
                        }
                    }
                } while cursor != "0"
            }
            if mapVersion == version { return deleted }
            logger.info("Redis Cluster slot map changed during a pattern flush; sweeping the masters again", metadata: ["pattern": "\(pattern)"])
        }
        return deleted
    }

    package func check() throws(RedisError) {
        try refreshIfDue()
        for master in map.masters {
            let reply: RedisReply
            do {
                reply = try connection(master).command(["PING"])
            } catch {
                throw failure(master, error)
            }
            failedNodes.remove(master)
            if case .error(let text) = reply {
                throw RedisError(code: .commandFailed, message: "cluster node \(master): PING refused: \(text)", reply: RedisErrorReply(text))
            }
        }
        if map.unservedSlots > 0 {
            refreshDue = true
            throw RedisError(code: .commandFailed, message: "\(map.unservedSlots) hash slots have no master", reply: RedisErrorReply("CLUSTERDOWN Hash slot not served"))
        }
    }
}

/// Reads a `CLUSTER SLOTS` reply: `[[first, last, [host, port, id, …], replicas…], …]`.
package enum ClusterSlotsReply {
    /// The ranges and their masters; nil when the reply is not a slot map. An empty host means `askedHost`.
    package static func ranges(_ reply: RedisReply, askedHost: String) -> [(first: Int, last: Int, master: RedisNodeAddress)]? {
        guard case .array(let entries) = reply else { return nil }
        var ranges: [(first: Int, last: Int, master: RedisNodeAddress)] = []
        for entry in entries {
            guard case .array(let parts) = entry, parts.count >= 3,
                  case .integer(let first) = parts[0], case .integer(let last) = parts[1],
                  case .array(let master) = parts[2], master.count >= 2, case .integer(let port) = master[1] else { return nil }
            var host = master[0].text ?? ""
            if host.isEmpty || host == "?" { host = askedHost }
            ranges.append((Int(first), Int(last), RedisNodeAddress(host: host, port: Int(port))))
        }
        return ranges
    }
}

extension RedisReply {
    /// An error reply's text.
    package var errorText: String? {
        if case .error(let text) = self { return text }
        return nil
    }
}
