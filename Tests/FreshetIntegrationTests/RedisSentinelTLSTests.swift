import Foundation
import FreshetCore
import FreshetPostgres
import FreshetRedis
import Testing

/// `user:N` deleted on change, `name:N` rewritten with the row's name.
private let tables = RedisRefusalTests.tables

/// Rows whose `user:N` is still there or whose `name:N` is not the row's name, on one server.
private func staleRows(_ redis: RedisConnection, prefix: String, databaseURL: String, rows: ClosedRange<Int>) async throws -> [Int] {
    let names = try await offThePool { () -> [Int: String] in
        var out: [Int: String] = [:]
        for row in try PGConnection.connect(databaseURL).query("SELECT id, name FROM users", parameters: nil) { out[Int(row[0]!)!] = row[1]! }
        return out
    }
    let users = try redis.pipeline(rows.map { ["EXISTS", "\(prefix):user:\($0)"] })
    let values = try redis.pipeline(rows.map { ["GET", "\(prefix):name:\($0)"] })
    return zip(rows, zip(users, values)).filter { id, replies in
        replies.0 != .integer(0) || !(replies.1.text ?? "").contains("\"\(names[id] ?? "?")\"")
    }.map(\.0)
}

private func fill(_ redis: RedisConnection, prefix: String, rows: ClosedRange<Int>) throws {
    let replies = try redis.pipeline(rows.flatMap { [["SET", "\(prefix):user:\($0)", "cached"], ["SET", "\(prefix):name:\($0)", "old"]] })
    #expect(replies.allSatisfy { $0 == .status("OK") })
}

/// Freshet behind Redis Sentinel: a `SENTINEL FAILOVER` while writes run leaves no stale key on the new master.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct RedisSentinelTests {
    @Test func aFailoverDuringWritesLeavesNoStaleKeyOnTheNewMaster() async throws {
        let sentinel = try await OwnRedisSentinel()
        let rows = 1...200
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("""
                CREATE TABLE users (id int PRIMARY KEY, name text);
                INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 200) g;
                """)
            let fixture = try FreshetFixture(
                databaseURL: url, tablesYAML: tables, redis: "  timeout: 1", metrics: true, redisTopology: sentinel.configLines
            )
            try await fixture.running { f in
                try fill(try sentinel.node(sentinel.masterPort), prefix: f.prefix, rows: rows)
                let before = try await httpGet(port: f.port, path: "/metrics").body
                let done = ManagedAtomicFlag()
                let load = RedisClusterIntegrationTests.writeLoad(url, rows: rows, until: { done.isSet })
                try await Task.sleep(for: .milliseconds(300))
                #expect(try sentinel.node(sentinel.sentinelPorts[0]).command(["SENTINEL", "FAILOVER", "mymaster"]) == .status("OK"))
                try await eventually("the sentinels name the replica", timeout: 30) { try sentinel.currentMasterPort() == sentinel.replicaPort }
                try await Task.sleep(for: .milliseconds(1500))  // writes go on against the new master
                done.set()
                _ = try await load.value
                var stale: [Int] = []
                try await eventually("no stale key on the new master (stale: \(stale.prefix(10)))", timeout: 30) {
                    stale = try await staleRows(try sentinel.node(sentinel.replicaPort), prefix: f.prefix, databaseURL: url, rows: rows)
                    return stale.isEmpty
                }
                let after = try await httpGet(port: f.port, path: "/metrics").body
                #expect(promDelta(before, after, "freshet_redis_failover_replays_total") >= 1)
                try await eventually("/readyz 200") { try await httpGet(port: f.port, path: "/readyz").status == 200 }
            }
        }
    }
}

/// Freshet over TLS: verified, with a client certificate; and refused when the certificate does not verify.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct RedisTLSTests {
    @Test func aVerifiedConnectionWithAClientCertificateInvalidates() async throws {
        let redis = try await OwnTLSRedis()
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("""
                CREATE TABLE users (id int PRIMARY KEY, name text);
                INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 10) g;
                """)
            let topology = """
                  url: rediss://127.0.0.1:\(redis.port)/0
                  tls:
                    ca: \(redis.caFile)
                    cert: \(redis.clientCert)
                    key: \(redis.clientKey)
                """
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: tables, redisTopology: topology)
            try await fixture.running { f in
                try fill(try redis.connection(), prefix: f.prefix, rows: 1...10)
                try await f.sql("UPDATE users SET name = 'new' || id WHERE id <= 5")
                var stale: [Int] = []
                try await eventually("changed rows' keys right over TLS (stale: \(stale))") {
                    stale = try await staleRows(try redis.connection(), prefix: f.prefix, databaseURL: url, rows: 1...5)
                    return stale.isEmpty
                }
                #expect(try redis.connection().command(["EXISTS", "\(f.prefix):user:6"]) == .integer(1))
            }
        }
    }

    @Test(arguments: ["wrong-ca", "wrong-name"])
    func aCertificateThatDoesNotVerifyIsRefused(_ case_: String) async throws {
        let redis = try await OwnTLSRedis()
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
            let topology = """
                  url: rediss://127.0.0.1:\(redis.port)/0
                  tls:
                    ca: \(case_ == "wrong-ca" ? redis.otherCAFile : redis.caFile)
                    cert: \(redis.clientCert)
                    key: \(redis.clientKey)
                \(case_ == "wrong-name" ? "    server_name: cache.example.com" : "")
                """
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: tables, redisTopology: topology)
            try await fixture.launch()
            var body = ""
            try await eventually("/readyz 503 naming the certificate (\(body))") {
                let r = try await httpGet(port: fixture.port, path: "/readyz")
                body = r.body
                return r.status == 503 && r.body.contains("certificate verify failed")
            }
            // OpenSSL's reason: the chain ends at a CA not trusted here, or the name is not in the certificate.
            #expect(case_ == "wrong-ca" ? !body.contains("hostname mismatch") : body.contains("hostname mismatch"))
            await fixture.stop()
        }
    }
}
