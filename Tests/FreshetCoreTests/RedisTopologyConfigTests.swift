import FreshetCore
import Testing

/// `redis.url`, `redis.cluster`, `redis.sentinel` and `redis.tls`: parsing, the exclusive choice, redaction.
struct RedisTopologyConfigTests {
    static let tables = """
        tables:
          - name: users
            redis:
              - key: "user:{id}"
        """

    func parse(_ redis: String, environment: [String: String] = [:]) throws(ConfigError) -> FreshetConfig {
        try FreshetConfig.parse(yaml: "postgres:\n  url: postgresql://127.0.0.1/app\nredis:\n\(redis)\n\(Self.tables)", environment: environment)
    }

    func problems(_ redis: String, environment: [String: String] = [:]) -> [ConfigProblem] {
        do {
            _ = try parse(redis, environment: environment)
            return []
        } catch {
            return error.problems
        }
    }

    @Test func aClusterOfSeedsWithCredentialsAndTLS() throws {
        let config = try parse("""
              cluster: ["rediss://:pw@10.0.0.1:6379", "rediss://:pw@10.0.0.2:6379"]
              tls:
                ca: /etc/freshet/ca.pem
                server_name: redis.internal
            """)
        let topology = try RedisTopology(config.redis)
        guard case .cluster(let seeds) = topology else { Issue.record("not a cluster: \(topology)"); return }
        #expect(seeds.count == 2 && seeds.allSatisfy(\.tls) && seeds[0].password == "pw")
        #expect(topology.usesTLS)
        #expect(config.redis.tls.serverName == "redis.internal")
        #expect(config.redis.replayAfterFailover == 15)
    }

    @Test func aSentinelSetWithTheMastersLogin() throws {
        let config = try parse("""
              sentinel:
                nodes: [redis://127.0.0.1:26379, "redis://:sentinel-pw@127.0.0.1:26380"]
                master: mymaster
                password: master-pw
                database: 2
              replay_after_failover: 5
            """)
        guard case .sentinel(let sentinel) = try RedisTopology(config.redis) else { Issue.record("not sentinel"); return }
        #expect(sentinel.master == "mymaster" && sentinel.sentinels.count == 2 && !sentinel.tls)
        let master = sentinel.masterEndpoint(RedisNodeAddress(host: "127.0.0.1", port: 6380))
        #expect(master.password == "master-pw" && master.database == 2)
        #expect(config.redis.replayAfterFailover == 5)
        let printed = ConfigPrinter.yaml(config)
        #expect(!printed.contains("sentinel-pw") && !printed.contains("master-pw"))
        #expect(printed.contains("master: \"mymaster\""))
    }

    @Test func exactlyOneOfUrlClusterAndSentinel() {
        let both = problems("""
              url: redis://127.0.0.1:6379
              cluster: [redis://127.0.0.1:30001]
            """)
        #expect(both.contains { $0.field == "redis" && $0.message.contains("exactly one of url, cluster and sentinel") })
        let envToo = problems("  cluster: [redis://127.0.0.1:30001]", environment: ["REDIS_URL": "redis://127.0.0.1:6379"])
        #expect(envToo.contains { $0.message.contains("REDIS_URL") })
        #expect(problems("  cluster: []").contains { $0.field == "redis.cluster" })
        #expect(problems("  sentinel:\n    nodes: [redis://127.0.0.1:26379]").contains { $0.field == "redis.sentinel.master" })
        #expect(problems("  cluster: [redis://127.0.0.1:30001/3]").contains { $0.field == "redis.cluster[0]" && $0.message.contains("database 0") })
        #expect(problems("  cluster: [\"redis://127.0.0.1:30001\", \"rediss://127.0.0.1:30002\"]").contains { $0.field == "redis.cluster" })
        #expect(problems("  cluster: [\"http://x\"]").contains { $0.field == "redis.cluster[0]" })
    }

    @Test func tlsNeedsARedissURL() {
        #expect(problems("  url: redis://127.0.0.1:6379\n  tls:\n    ca: /x.pem").contains { $0.field == "redis.tls" })
        #expect(problems("  url: rediss://127.0.0.1:6379\n  tls:\n    ca: /x.pem").isEmpty)
        #expect(problems("  url: rediss://127.0.0.1:6379\n  tls:\n    key: /k.pem").contains { $0.field == "redis.tls.key" })
        #expect(problems("  url: rediss://127.0.0.1:6379\n  tls:\n    verify: false").contains { $0.field == "redis.tls.verify" })
    }

    @Test func printConfigRedactsEveryNodePassword() throws {
        let config = try parse("  cluster: [\"redis://:n0de-pw@10.0.0.1:6379\", \"redis://user:n0de-pw@10.0.0.2:6379\"]")
        let printed = ConfigPrinter.yaml(config)
        #expect(!printed.contains("n0de-pw"))
        #expect(printed.contains("10.0.0.2:6379"))
        let again = try FreshetConfig.parse(yaml: printed.replacingOccurrences(of: "***", with: "x"))
        #expect(again.redis.cluster?.count == 2)
    }

    @Test func redissParsesWithTLS() throws {
        let endpoint = try RedisEndpoint(parsing: "rediss://u:p@cache.example.com:6380/1")
        #expect(endpoint.tls && endpoint.address == .tcp(host: "cache.example.com", port: 6380) && endpoint.database == 1)
        #expect(try !RedisEndpoint(parsing: "redis://127.0.0.1").tls)
    }
}
