import Foundation
import FreshetCore
import Logging

/// The master that Redis Sentinel names, as the Sentinel client guidelines describe: ask the sentinels in turn
/// (`SENTINEL get-master-addr-by-name`; the one that answers moves to the front), connect, and check `ROLE` says
/// `master`. On a lost connection or a "not now" reply (`READONLY` from a demoted master) the writer calls `reset()`
/// and the sentinels are asked again.
///
/// A failover is also noticed while commands still go through: the sentinels are asked again at most every
/// `verifyInterval` seconds while there is work, and on every idle check, because a demoted master may go on
/// accepting writes for a while. A new master sets `masterChange`, so the writer re-applies its recent operations
/// (writes the old master acknowledged may never have reached the new one: replication is asynchronous).
package final class SentinelTarget: RedisTarget {
    private let topology: RedisSentinelTopology
    private var sentinels: [RedisEndpoint]
    private let tls: RedisTLSContext?
    private let timeout: Double
    private let logger: Logger
    private let observer: RedisWriterObserver?

    private var sentinelConnection: RedisConnection?
    private var master: (address: RedisNodeAddress, connection: RedisConnection)?
    private var lastMaster: RedisNodeAddress?
    private var verifiedAt = ContinuousClock.now

    package var masterChange: String?
    package var nodeCount: Int { master == nil ? 0 : 1 }

    /// Seconds between asking the sentinels again while commands go through.
    static let verifyInterval = 1.0

    package init(_ topology: RedisSentinelTopology, tls: RedisTLSContext?, timeout: Double, logger: Logger, observer: RedisWriterObserver?) {
        self.topology = topology
        self.sentinels = topology.sentinels
        self.tls = tls
        self.timeout = timeout
        self.logger = logger
        self.observer = observer
    }

    package func reset() { master = nil }

    /// Asks the sentinels for the master's address; the first that answers moves to the front.
    private func askSentinels() throws(RedisError) -> RedisNodeAddress {
        var errors: [String] = []
        for (i, sentinel) in sentinels.enumerated() {
            let name = Self.describe(sentinel)
            do {
                let connection: RedisConnection
                if i == 0, let existing = sentinelConnection { connection = existing } else {
                    connection = try RedisConnection.connect(sentinel, tls: tls, timeout: min(timeout, 1))
                }
                let reply = try connection.command(["SENTINEL", "get-master-addr-by-name", topology.master])
                guard case .array(let parts) = reply, parts.count == 2, let host = parts[0].text,
                      let port = parts[1].text.flatMap({ Int($0) }) else {
                    if i == 0 { sentinelConnection = nil }
                    errors.append("sentinel \(name): \(reply.errorText ?? "does not know master \"\(topology.master)\"")")
                    continue
                }
                if i != 0 { sentinels.insert(sentinels.remove(at: i), at: 0) }
                sentinelConnection = connection
                return RedisNodeAddress(host: host, port: port)
            } catch {
                if i == 0 { sentinelConnection = nil }
                errors.append("sentinel \(name): \(error.message)")
            }
        }
        throw RedisError(code: .connectionFailed, message: "no sentinel names a master for \"\(topology.master)\": " + errors.joined(separator: "; "))
    }

    private static func describe(_ endpoint: RedisEndpoint) -> String {
        if case .tcp(let host, let port) = endpoint.address { return RedisNodeAddress(host: host, port: port).description }
        return "?"
    }

    /// The master's connection: asked again of the sentinels when there is none, or every `verifyInterval`.
    private func live(verify: Bool) throws(RedisError) -> RedisConnection {
        if let master, !verify && ContinuousClock.now - verifiedAt < .seconds(Self.verifyInterval) { return master.connection }
        let address = try askSentinels()
        verifiedAt = .now
        if let master, master.address == address { return master.connection }
        master = nil
        let connection: RedisConnection
        let role: RedisReply
        do {
            connection = try RedisConnection.connect(topology.masterEndpoint(address), tls: tls, timeout: timeout)
            role = try connection.command(["ROLE"])
        } catch {
            throw RedisError(code: error.code, message: "master \(address) (from the sentinels): \(error.message)")
        }
        guard case .array(let parts) = role, parts.first?.text == "master" else {
            // The sentinels named a server that is not (yet) a master: a failover is under way.
            throw RedisError(
                code: .commandFailed, message: "\(address) is not a master yet (ROLE \(role.text ?? "?"))",
                reply: RedisErrorReply("READONLY \(address) named by the sentinels is not a master yet")
            )
        }
        if let lastMaster, lastMaster != address {
            masterChange = "\(lastMaster) → \(address)"
            logger.warning("Redis Sentinel names a new master (a failover)", metadata: ["from": "\(lastMaster)", "to": "\(address)"])
        }
        lastMaster = address
        master = (address, connection)
        observer?.nodesChanged(1)
        return connection
    }

    private func onMaster<T>(verify: Bool = false, _ body: (RedisConnection) throws(RedisError) -> T) throws(RedisError) -> T {
        let connection = try live(verify: verify)
        do {
            return try body(connection)
        } catch {
            if error.code != .commandFailed { master = nil }
            throw RedisError(code: error.code, message: "master \(lastMaster.map(\.description) ?? "?"): \(error.message)", reply: error.reply)
        }
    }

    package func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisReply] {
        try onMaster { (c) throws(RedisError) in try c.pipeline(commands.map(\.arguments)) }
    }

    package func unlinkMatching(_ pattern: String) throws(RedisError) -> Int {
        try onMaster { (c) throws(RedisError) in try c.unlinkMatching(pattern) }
    }

    package func check() throws(RedisError) {
        let reply = try onMaster(verify: true) { (c) throws(RedisError) in try c.command(["PING"]) }
        if case .error(let text) = reply { throw RedisError.refused("PING", RedisErrorReply(text)) }
    }
}
