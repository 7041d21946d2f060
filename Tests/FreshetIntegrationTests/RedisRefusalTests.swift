import Foundation
import FreshetCore
import FreshetPostgres
import FreshetRedis
import Testing

/// Redis that answers "no": every error reply is a failure, never "done". Each test runs a redis-server of its own,
/// makes it refuse (ACL, maxmemory, REPLICAOF), changes rows, lifts the fault, and checks that no key of a changed
/// row is left with its old value, that `/readyz` said 503 (with the reply) during the fault and 200 after, and that
/// the metrics counted it.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct RedisRefusalTests {
    /// `user:N` is deleted on change, `name:N` rewritten (SET) with the row's name.
    static let tables = """
          - name: users
            redis:
              - key: "{prefix}:user:{id}"
              - key: "{prefix}:name:{id}"
                action: set
                columns: [name]
        """

    struct Context {
        let fixture: FreshetFixture
        let client: SSEClient
        let keys: TestKeys
        let redis: OwnRedis

        func names(_ ids: some Sequence<Int>) throws -> [Int: String?] {
            var out: [Int: String?] = [:]
            for id in ids { out[id] = try redis.connection().command(["GET", "\(fixture.prefix):name:\(id)"]).text }
            return out
        }

        func readyz() async throws -> (status: Int, body: String) {
            let r = try await httpGet(port: fixture.port, path: "/readyz")
            return (r.status, r.body)
        }

        func metrics() async throws -> String { try await httpGet(port: fixture.port, path: "/metrics").body }
    }

    /// Users 1…10, a Freshet on `redis` (as `redisURL` when given), keys `user:N` and `name:N` = "old".
    func scenario(
        redis: OwnRedis, redisURL: String? = nil, redisLines: String = "  timeout: 0.5",
        _ body: (Context) async throws -> Void
    ) async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("""
                CREATE TABLE users (id int PRIMARY KEY, name text);
                INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 10) g;
                """)
            let fixture = try FreshetFixture(
                databaseURL: url, tablesYAML: Self.tables, redisURL: redisURL ?? redis.url, redis: redisLines, metrics: true
            )
            try await fixture.running { f in
                let keys = TestKeys(prefix: f.prefix, connection: try redis.connection())
                try keys.fill(1...10)
                for id in 1...10 { try redis.run("SET", "\(f.prefix):name:\(id)", "old") }
                let client = try await f.subscribe()
                try await body(Context(fixture: f, client: client, keys: keys, redis: redis))
            }
        }
    }

    @Test func aUserWithoutUnlinkAndSetIsAGapRepairedOnceTheACLIsLifted() async throws {
        let redis = try await OwnRedis()
        try redis.run("ACL", "SETUSER", "freshet", "on", ">pw", "~*", "&*", "+@all")
        try await scenario(redis: redis, redisURL: "redis://freshet:pw@127.0.0.1:\(redis.port)/0") { c in
            let before = try await c.metrics()
            try redis.run("ACL", "SETUSER", "freshet", "-unlink", "-set")
            try await c.fixture.sql("UPDATE users SET name = 'new' WHERE id IN (1, 2)")
            try await eventually("/readyz 503 naming NOPERM") {
                let r = try await c.readyz()
                return r.status == 503 && r.body.contains("NOPERM")
            }
            try await eventually("events released while Redis refuses") { c.client.changes.count == 2 }
            #expect(try c.keys.stale([1, 2]) == [1, 2])  // the fault bites: nothing could be deleted
            #expect(!c.client.messages.contains { $0.event == "resync" })  // no resync before the repair is done
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await c.readyz().status == 503)  // the failing repair keeps it unready

            try redis.run("ACL", "SETUSER", "freshet", "+unlink", "+set")
            try await eventually("resync once the repair is done") { c.client.messages.contains { $0.event == "resync" } }
            #expect(try c.keys.stale(1...10).isEmpty)
            #expect(try c.names(1...10).values.allSatisfy { $0 != "old" })
            try await eventually("/readyz 200 after") { try await c.readyz().status == 200 }
            let after = try await c.metrics()
            #expect(promDelta(before, after, #"freshet_redis_errors_total{reply="NOPERM"}"#) >= 2)
            #expect(promDelta(before, after, #"freshet_redis_commands_total{action="delete",result="error"}"#) >= 1)
            #expect(promDelta(before, after, #"freshet_gaps_total{cause="redis_refused"}"#) >= 1)
        }
    }

    @Test func aSetRefusedForMemoryDeletesTheKeyInstead() async throws {
        let redis = try await OwnRedis(["--maxmemory-policy", "noeviction"])
        try await scenario(redis: redis) { c in
            let before = try await c.metrics()
            try redis.run("CONFIG", "SET", "maxmemory", "1")  // every write that may grow memory is refused (OOM)
            try await c.fixture.sql("UPDATE users SET name = 'new' WHERE id = 3")
            try await eventually("the refused SET's old value is gone") { try c.names([3])[3]! == nil }
            #expect(try c.keys.stale([3]).isEmpty)
            try await eventually("/readyz 503 naming OOM") {
                let r = try await c.readyz()
                return r.status == 503 && r.body.contains("OOM")
            }
            #expect(!c.client.messages.contains { $0.event == "resync" })  // the fallback worked: no gap

            try redis.run("CONFIG", "SET", "maxmemory", "0")
            try await c.fixture.sql("UPDATE users SET name = 'newer' WHERE id = 4")
            try await eventually("SET works again") { try c.names([4])[4]!.map { $0.contains("newer") } == true }
            try await eventually("/readyz 200 after a clean batch") { try await c.readyz().status == 200 }
            #expect(try c.keys.stale([3, 4]).isEmpty)
            #expect(try c.keys.present(5...10) == 6)  // untouched rows keep their cache
            let after = try await c.metrics()
            #expect(promDelta(before, after, #"freshet_redis_errors_total{reply="OOM"}"#) >= 1)
            #expect(promDelta(before, after, #"freshet_redis_commands_total{action="set",result="error"}"#) >= 1)
        }
    }

    @Test func aServerTurnedReplicaIsAnOutageRetriedUntilItIsMasterAgain() async throws {
        let master = try await OwnRedis()
        let redis = try await OwnRedis()
        // Without the failover replay: Freshet's start-up flush is inside its window, and replaying it would delete
        // the untouched rows' keys this test checks are kept (the replay is tested with Sentinel and Cluster).
        try await scenario(redis: redis, redisLines: "  timeout: 0.5\n  replay_after_failover: 0") { c in
            // The master holds the same old values, so the replica keeps them after its full sync.
            let masterKeys = TestKeys(prefix: c.fixture.prefix, connection: try master.connection())
            try masterKeys.fill(1...10)
            let before = try await c.metrics()
            try redis.run("REPLICAOF", "127.0.0.1", String(master.port))
            try await eventually("replica in sync") {
                (try redis.run("INFO", "replication").text ?? "").contains("master_link_status:up")
            }
            try await c.fixture.sql("UPDATE users SET name = 'new' WHERE id IN (5, 6)")
            try await eventually("/readyz 503 naming READONLY") {
                let r = try await c.readyz()
                return r.status == 503 && r.body.contains("READONLY")
            }
            try await eventually("events released after redis.timeout") { c.client.changes.count == 2 }
            #expect(try c.keys.stale([5, 6]) == [5, 6])  // nothing went through

            try redis.run("REPLICAOF", "NO", "ONE")  // promoted (a failover behind the same address)
            try await eventually("changed rows' keys gone") { try c.keys.stale([5, 6]).isEmpty }
            try await eventually("/readyz 200 after") { try await c.readyz().status == 200 }
            #expect(try c.keys.present([1, 2, 3, 4, 7, 8, 9, 10]) == 8)  // kept in order, no flush
            #expect(!c.client.messages.contains { $0.event == "resync" })
            let after = try await c.metrics()
            #expect(promDelta(before, after, #"freshet_redis_errors_total{reply="READONLY"}"#) >= 1)
        }
    }

    /// The new user's try from the hardening issue: Redis paused, `max_pending: 10`, 50 single-row updates. The
    /// listener keeps draining (the events arrive while Redis is still paused), the queue overflows into a gap, and
    /// the repair (flush + resync) runs when Redis is back.
    @Test func fiftyUpdatesPastMaxPendingWhileRedisIsPausedAreAGapNotABlockedListener() async throws {
        let redis = try await OwnRedis()
        try await scenario(redis: redis, redisLines: "  timeout: 2\n  max_pending: 10") { c in
            let before = try await c.metrics()
            redis.pause()
            defer { redis.resume() }
            let db = try PGConnection.connect(c.fixture.databaseURL)
            for i in 0..<50 { try db.execute("UPDATE users SET name = 'n\(i)' WHERE id = \(i % 10 + 1)") }
            try await eventually("all 50 events while Redis is still paused") { c.client.changes.count == 50 }
            redis.resume()
            try await eventually("resync after the repair", timeout: 20) { c.client.messages.contains { $0.event == "resync" } }
            #expect(try c.keys.stale(1...10).isEmpty)
            #expect(try c.names(1...10).values.allSatisfy { $0 != "old" })
            try await eventually("/readyz 200 after") { try await c.readyz().status == 200 }
            let after = try await c.metrics()
            #expect(promDelta(before, after, #"freshet_gaps_total{cause="redis_overflow"}"#) >= 1)
            #expect(after.contains("freshet_postgres_notify_queue_usage"))
        }
    }
}

/// The value of one series in Prometheus text (`name{labels} value`), 0 when absent.
func promSample(_ text: String, _ series: String) -> Double {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.split(separator: " ").last ?? "") ?? 0
    }
    return 0
}

func promDelta(_ before: String, _ after: String, _ series: String) -> Double {
    promSample(after, series) - promSample(before, series)
}
