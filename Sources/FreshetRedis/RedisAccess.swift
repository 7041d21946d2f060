import FreshetCore
import Logging

/// How to reach Redis: the topology of `redis:` and its TLS context (certificate files read once), shared by the
/// writer and by one-shot reads (`check`, the replication source's stored position).
package struct RedisAccess: Sendable {
    package let topology: RedisTopology
    package let tls: RedisTLSContext?
    package let timeout: Double

    /// The field and reason when `redis:` cannot be used (a URL that does not parse, a TLS file that cannot be read).
    package struct Problem: Error, Sendable {
        package var field: String
        package var message: String
    }

    package init(_ settings: RedisSettings) throws(Problem) {
        do {
            topology = try RedisTopology(settings)
        } catch {
            let field = settings.cluster != nil ? "redis.cluster" : settings.sentinel != nil ? "redis.sentinel.nodes" : "redis.url"
            throw Problem(field: field, message: error.description)
        }
        if topology.usesTLS {
            do {
                tls = try RedisTLSContext(settings.tls)
            } catch {
                throw Problem(field: "redis.tls", message: error.message)
            }
        } else {
            tls = nil
        }
        timeout = settings.timeout
    }

    /// A new target (its own connections) for the calling thread.
    package func target(logger: Logger, observer: RedisWriterObserver? = nil) -> RedisTarget {
        makeRedisTarget(topology, tls: tls, timeout: timeout, logger: logger, observer: observer)
    }

    /// Where Redis is, for messages (passwords redacted).
    package static func describe(_ settings: RedisSettings) -> String {
        if let nodes = settings.cluster { return "cluster " + nodes.map(Redaction.connectionString).joined(separator: ", ") }
        if let sentinel = settings.sentinel {
            return "sentinel master \"\(sentinel.master)\" via " + sentinel.nodes.map(Redaction.connectionString).joined(separator: ", ")
        }
        return Redaction.connectionString(settings.url)
    }
}
