/// How Freshet reaches Redis, from `redis:`: one server, a Redis Cluster (seed nodes), or the master named by Redis
/// Sentinel. Built from a validated configuration with `init(_:)`.
public enum RedisTopology: Sendable, Equatable {
    case standalone(RedisEndpoint)
    /// Seed nodes; the masters are discovered with `CLUSTER SLOTS`. Every node uses the seeds' credentials and TLS.
    case cluster(seeds: [RedisEndpoint])
    case sentinel(RedisSentinelTopology)

    /// The topology of a configuration that passed `problems(_:)`.
    public init(_ settings: RedisSettings) throws(RedisEndpoint.ParseError) {
        if let nodes = settings.cluster {
            self = .cluster(seeds: try nodes.map { (url) throws(RedisEndpoint.ParseError) in try RedisEndpoint(parsing: url) })
        } else if let sentinel = settings.sentinel {
            let nodes = try sentinel.nodes.map { (url) throws(RedisEndpoint.ParseError) in try RedisEndpoint(parsing: url) }
            self = .sentinel(RedisSentinelTopology(
                sentinels: nodes, master: sentinel.master, username: sentinel.username, password: sentinel.password,
                database: sentinel.database, tls: nodes.contains { $0.tls }
            ))
        } else {
            self = .standalone(try RedisEndpoint(parsing: settings.url))
        }
    }

    /// Whether any connection of the topology uses TLS.
    public var usesTLS: Bool {
        switch self {
        case .standalone(let endpoint): return endpoint.tls
        case .cluster(let seeds): return seeds.contains { $0.tls }
        case .sentinel(let sentinel): return sentinel.tls
        }
    }

    /// What is wrong with `redis:` (each problem names its field).
    public static func problems(_ settings: RedisSettings) -> [ConfigProblem] {
        var problems: [ConfigProblem] = []
        func endpoints(_ urls: [String], _ field: String) -> [RedisEndpoint] {
            urls.enumerated().compactMap { i, url in
                do {
                    return try RedisEndpoint(parsing: url)
                } catch {
                    problems.append(.init(field: "\(field)[\(i)]", message: "\(error)"))
                    return nil
                }
            }
        }
        var tls = false
        if let nodes = settings.cluster {
            let seeds = endpoints(nodes, "redis.cluster")
            for (i, seed) in seeds.enumerated() {
                if case .unix = seed.address { problems.append(.init(field: "redis.cluster[\(i)]", message: "a cluster node needs host:port, not a unix socket")) }
                if seed.database != 0 { problems.append(.init(field: "redis.cluster[\(i)]", message: "a Redis Cluster has only database 0")) }
            }
            if Set(seeds.map(\.tls)).count > 1 { problems.append(.init(field: "redis.cluster", message: "use rediss:// for every seed or for none")) }
            tls = seeds.contains { $0.tls }
        } else if let sentinel = settings.sentinel {
            let nodes = endpoints(sentinel.nodes, "redis.sentinel.nodes")
            for (i, node) in nodes.enumerated() {
                if case .unix = node.address { problems.append(.init(field: "redis.sentinel.nodes[\(i)]", message: "a sentinel needs host:port, not a unix socket")) }
            }
            if Set(nodes.map(\.tls)).count > 1 { problems.append(.init(field: "redis.sentinel.nodes", message: "use rediss:// for every sentinel or for none")) }
            tls = nodes.contains { $0.tls }
        } else {
            do {
                tls = try RedisEndpoint(parsing: settings.url).tls
            } catch {
                problems.append(.init(field: "redis.url", message: "\(error)"))
            }
        }
        if settings.tls.isConfigured && !tls && problems.isEmpty {
            problems.append(.init(field: "redis.tls", message: "is set, but no Redis URL uses rediss:// (TLS)"))
        }
        return problems
    }
}

/// The sentinels to ask, the master's name, and how to log in to the master they name.
public struct RedisSentinelTopology: Sendable, Equatable {
    public var sentinels: [RedisEndpoint]
    public var master: String
    public var username: String?
    public var password: String?
    public var database: Int
    /// The master is reached over TLS (the sentinels are given as `rediss://`).
    public var tls: Bool

    public init(sentinels: [RedisEndpoint], master: String, username: String?, password: String?, database: Int, tls: Bool) {
        self.sentinels = sentinels
        self.master = master
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// The master at `address`, with the configured login.
    public func masterEndpoint(_ address: RedisNodeAddress) -> RedisEndpoint {
        RedisEndpoint(address: .tcp(host: address.host, port: address.port), username: username, password: password, database: database, tls: tls)
    }
}
