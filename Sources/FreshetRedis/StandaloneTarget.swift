import FreshetCore

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
