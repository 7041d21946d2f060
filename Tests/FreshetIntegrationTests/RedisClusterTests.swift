import Foundation
import FreshetCore
import FreshetPostgres
import FreshetRedis
import Testing

/// Freshet on a real Redis Cluster (3 masters, 3 replicas, started once for the suite): keys over every slot,
/// TRUNCATE on every master, a resharding and a scripted ASK while writes run, and a master killed mid-stream —
/// each ending with zero stale keys (every `user:N` of a changed row gone, every `name:N` equal to the row's name).
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"), .serialized, .redisCluster)
struct RedisClusterIntegrationTests {
    /// `user:N` is deleted on change, `name:N` rewritten (SET) with the row's name. No hash tags: keys spread.
    static let tables = RedisRefusalTests.tables

    struct Context {
        let fixture: FreshetFixture
        let cluster: OwnRedisCluster
        let client: SSEClient
        let rows: ClosedRange<Int>
        var prefix: String { fixture.prefix }

        func userKey(_ id: Int) -> String { "\(prefix):user:\(id)" }
        func nameKey(_ id: Int) -> String { "\(prefix):name:\(id)" }

        /// Rows whose `user:N` key is still there.
        func presentUserKeys(_ ids: some Sequence<Int>) throws -> [Int] {
            let ids = Array(ids)
            let replies = try cluster.client().pipeline(ids.map { RedisCommand(key: userKey($0), arguments: ["EXISTS", userKey($0)]) })
            return zip(ids, replies).filter { $0.1 == .integer(1) }.map(\.0)
        }

        /// Rows whose `name:N` does not hold the row's current name.
        func wrongNames() async throws -> [Int] {
            let url = fixture.databaseURL
            let names = try await offThePool { () -> [Int: String] in
                var out: [Int: String] = [:]
                for row in try PGConnection.connect(url).query("SELECT id, name FROM users", parameters: nil) { out[Int(row[0]!)!] = row[1]! }
                return out
            }
            let ids = Array(rows)
            let replies = try cluster.client().pipeline(ids.map { RedisCommand(key: nameKey($0), arguments: ["GET", nameKey($0)]) })
            return zip(ids, replies).filter { id, reply in !(reply.text ?? "").contains("\"\(names[id] ?? "?")\"") }.map(\.0)
        }

        func eventuallyAllNamesRight(of ids: Set<Int>? = nil, timeout: Double = 20) async throws {
            var wrong: [Int] = []
            try await eventually("every name equal to its row's (wrong: \(wrong.prefix(10)))", timeout: timeout) {
                wrong = try await wrongNames().filter { ids?.contains($0) ?? true }
                return wrong.isEmpty
            }
        }

        func metrics() async throws -> String { try await httpGet(port: fixture.port, path: "/metrics").body }
    }

    /// Users in `rows`, a Freshet on the suite's cluster, keys `user:N` = "cached" and `name:N` = "old".
    func scenario(rows: ClosedRange<Int> = 1...300, _ body: (Context) async throws -> Void) async throws {
        let cluster = try #require(OwnRedisCluster.current)
        try await cluster.waitHealthy()
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("""
                CREATE TABLE users (id int PRIMARY KEY, name text);
                INSERT INTO users SELECT g, 'u' || g FROM generate_series(\(rows.lowerBound), \(rows.upperBound)) g;
                """)
            let fixture = try FreshetFixture(
                databaseURL: url, tablesYAML: Self.tables, redis: "  timeout: 1", metrics: true, redisTopology: cluster.configLines
            )
            try await fixture.running { f in
                let client = try await f.subscribe()
                let context = Context(fixture: f, cluster: cluster, client: client, rows: rows)
                var fill: [RedisCommand] = []
                for id in rows {
                    fill.append(RedisCommand(key: context.userKey(id), arguments: ["SET", context.userKey(id), "cached"]))
                    fill.append(RedisCommand(key: context.nameKey(id), arguments: ["SET", context.nameKey(id), "old"]))
                }
                let replies = try cluster.client().pipeline(fill)
                #expect(replies.allSatisfy { $0 == .status("OK") })
                try await body(context)
            }
        }
    }

    /// Updates rows in rounds (each round a statement over a tenth of the rows, names `vROUND`) until `until` says
    /// stop; returns the rounds run.
    static func writeLoad(_ url: String, rows: ClosedRange<Int>, until stop: @escaping @Sendable () -> Bool) -> Task<Int, Error> {
        Task.detached {
            let db = try PGConnection.connect(url)
            var round = 0
            while !stop() || round < 10 {
                round += 1
                try db.execute("UPDATE users SET name = 'v\(round)' WHERE id % 10 = \(round % 10)")
                try await Task.sleep(for: .milliseconds(20))
            }
            // One last pass over every row, after the topology settled.
            try db.execute("UPDATE users SET name = 'final-' || id")
            return round
        }
    }

    @Test func keysOverEverySlotAreInvalidatedAndTheEventComesAfter() async throws {
        try await scenario { c in
            let masters = try Set(c.rows.map { try c.cluster.masterPort(for: c.userKey($0)) })
            #expect(masters.count == 3, "the keys live on every master")

            // One row: its event arrives only after both its keys were written on their masters.
            try await c.fixture.sql("UPDATE users SET name = 'first' WHERE id = 7")
            try await eventually("the event of row 7") { c.client.changes.count == 1 }
            #expect(try c.presentUserKeys([7]).isEmpty)
            #expect(try await c.wrongNames().filter { $0 == 7 }.isEmpty)

            try await c.fixture.sql("UPDATE users SET name = 'n' || id")
            try await eventually("every row's key gone") { try c.presentUserKeys(c.rows).isEmpty }
            try await c.eventuallyAllNamesRight()
            try await eventually("every event") { c.client.changes.count == 1 + c.rows.count }
            let metrics = try await c.metrics()
            #expect(promSample(metrics, "freshet_redis_nodes") == 3)
            #expect(!c.client.messages.contains { $0.event == "resync" })
        }
    }

    @Test func truncateFlushesTheKeysOfEveryMaster() async throws {
        try await scenario { c in
            let other = "\(c.prefix):other"
            _ = try c.cluster.client().command(["SET", other, "keep"], key: other)
            try await c.fixture.sql("TRUNCATE users")
            try await eventually("every user and name key gone, on every master") {
                let names = try c.cluster.client().pipeline(c.rows.map { RedisCommand(key: c.nameKey($0), arguments: ["EXISTS", c.nameKey($0)]) })
                return try c.presentUserKeys(c.rows).isEmpty && names.allSatisfy { $0 == .integer(0) }
            }
            #expect(try c.cluster.client().command(["GET", other], key: other).text == "keep")
        }
    }

    @Test func aReshardingWhileWritesRunLeavesNoStaleKey() async throws {
        try await scenario { c in
            let before = try await c.metrics()
            let masters = try c.cluster.masters().sorted { $0.port < $1.port }
            let done = ManagedAtomicFlag()
            let load = Self.writeLoad(c.fixture.databaseURL, rows: c.rows, until: { done.isSet })
            let reshard = try await shell("redis-cli", [
                "--cluster", "reshard", "127.0.0.1:\(masters[0].port)", "--cluster-from", masters[0].id,
                "--cluster-to", masters[1].id, "--cluster-slots", "1000", "--cluster-yes", "--cluster-pipeline", "100",
            ])
            done.set()
            let rounds = try await load.value
            #expect(reshard.status == 0, "\(reshard.output.suffix(400))")
            #expect(rounds >= 10)
            try await eventually("every row's key gone", timeout: 30) { try c.presentUserKeys(c.rows).isEmpty }
            try await c.eventuallyAllNamesRight(timeout: 30)
            let after = try await c.metrics()
            let redirects = promDelta(before, after, #"freshet_redis_redirects_total{kind="moved"}"#)
                + promDelta(before, after, #"freshet_redis_redirects_total{kind="ask"}"#)
            #expect(redirects >= 1, "MOVED/ASK followed")
            #expect(!c.client.messages.contains { $0.event == "resync" })
        }
    }

    @Test func anAskFromAMigratingSlotIsFollowedAndTheMapKept() async throws {
        try await scenario { c in
            let before = try await c.metrics()
            let masters = try c.cluster.masters()
            let key = c.userKey(42)
            let slot = HashSlot.of(key)
            let sourcePort = try c.cluster.masterPort(for: key)
            let source = try #require(masters.first { $0.port == sourcePort })
            let target = try #require(masters.first { $0.port != sourcePort })
            // Slot `slot` half-way from source to target, with the row's key already moved: the source answers ASK.
            #expect(try c.cluster.node(target.port).command(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", source.id]) == .status("OK"))
            #expect(try c.cluster.node(source.port).command(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", target.id]) == .status("OK"))
            #expect(try c.cluster.node(source.port).command(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "5000", "KEYS", key]) == .status("OK"))
            #expect(try c.cluster.node(source.port).command(["EXISTS", key]).errorText?.hasPrefix("ASK") == true)

            try await c.fixture.sql("UPDATE users SET name = 'asked' WHERE id = 42")
            try await eventually("the event of row 42") { c.client.changes.count == 1 }
            let onTarget = try c.cluster.node(target.port)
            _ = try onTarget.command(["ASKING"])
            #expect(try onTarget.command(["EXISTS", key]) == .integer(0), "deleted where the key lives now")
            let after = try await c.metrics()
            #expect(promDelta(before, after, #"freshet_redis_redirects_total{kind="ask"}"#) >= 1)

            // Finish the migration (any other key of the slot first), then the key stays gone.
            let source2 = try c.cluster.node(source.port)
            if case .array(let rest) = try source2.command(["CLUSTER", "GETKEYSINSLOT", String(slot), "1000"]), !rest.isEmpty {
                _ = try source2.command(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "5000", "KEYS"] + rest.compactMap(\.text))
            }
            for master in masters {
                _ = try c.cluster.node(master.port).command(["CLUSTER", "SETSLOT", String(slot), "NODE", target.id])
            }
            try await eventually("slot \(slot) served by its new master") { try c.cluster.masterPort(for: key) == target.port }
            try await c.fixture.sql("UPDATE users SET name = 'moved' WHERE id = 42")
            try await c.eventuallyAllNamesRight(of: [42])
            #expect(try c.presentUserKeys([42]).isEmpty)
        }
    }

    /// `http.relay: redis` on the cluster: the stream (one hash-tagged key) on one node, the keys on all of them.
    @Test func theRelayWorksOnTheCluster() async throws {
        let cluster = try #require(OwnRedisCluster.current)
        try await cluster.waitHealthy()
        try await TestServers.withDatabase { url in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' FROM generate_series(1, 30) g") }
            let prefix = TestServers.uniquePrefix()
            let http = "  relay: redis\n  relay_takeover: 2"
            let a = try FreshetFixture(databaseURL: url, prefix: prefix, tablesYAML: Self.tables, http: http, redisTopology: cluster.configLines)
            let b = try FreshetFixture(databaseURL: url, prefix: prefix, tablesYAML: Self.tables, http: http, redisTopology: cluster.configLines)
            try await a.start()
            try await eventually("A is the writer") { a.app.writing }
            try await b.start()
            #expect(!b.app.writing)
            let fill = (1...30).map { RedisCommand(key: "\(prefix):user:\($0)", arguments: ["SET", "\(prefix):user:\($0)", "cached"]) }
            _ = try cluster.client().pipeline(fill)
            let onB = try await b.subscribe()
            try await a.sql("UPDATE users SET name = 'n' || id")
            try await eventually("B serves all thirty changes") { onB.changes.count == 30 }
            let left = try cluster.client().pipeline((1...30).map { RedisCommand(key: "\(prefix):user:\($0)", arguments: ["EXISTS", "\(prefix):user:\($0)"]) })
            #expect(left.allSatisfy { $0 == .integer(0) })
            await a.stop()
            await b.stop()
        }
    }

    @Test func aMasterKilledMidStreamLeavesNoStaleKeyAfterItsReplicaTookOver() async throws {
        try await scenario { c in
            let before = try await c.metrics()
            let victim = try c.cluster.masters().sorted { $0.slots > $1.slots }[0]
            let done = ManagedAtomicFlag()
            let load = Self.writeLoad(c.fixture.databaseURL, rows: c.rows, until: { done.isSet })
            try await Task.sleep(for: .milliseconds(300))
            c.cluster.kill(victim.port)
            try await eventually("a replica promoted", timeout: 20) {
                let masters = (try? c.cluster.masters()) ?? []
                return masters.count == 3 && !masters.contains { $0.port == victim.port }
            }
            try await Task.sleep(for: .milliseconds(500))
            done.set()
            _ = try await load.value
            try await eventually("every row's key gone", timeout: 30) { try c.presentUserKeys(c.rows).isEmpty }
            try await c.eventuallyAllNamesRight(timeout: 30)
            let after = try await c.metrics()
            #expect(promDelta(before, after, "freshet_redis_failover_replays_total") >= 1, "recent operations applied again on the new master")
            try await eventually("/readyz 200") { try await httpGet(port: c.fixture.port, path: "/readyz").status == 200 }
            // The old master comes back as a replica: the cluster is whole again for the next test.
            try c.cluster.startNode(victim.port)
            try await c.cluster.waitHealthy()
        }
    }
}

/// A flag set once, read from another task.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
