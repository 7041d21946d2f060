import Foundation
import FreshetCore
import FreshetPostgres
import FreshetRedis
import Testing

/// Fault injection against real servers. Each test fills Redis with keys for rows, injects a fault, changes rows
/// during it, ends it, and checks that no key of a changed row is left with old data, that subscribers got the events
/// or a resync, and that `/readyz` said 503 during the fault and 200 after.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct FaultTests {
    static let tables = """
          - name: users
            redis:
              - key: "{prefix}:user:{id}"
        """

    /// A database with users 1…10, a Freshet on it (with its own Redis when given), keys `user:N` = "old", and a subscriber.
    func scenario(
        redis own: OwnRedis? = nil, redisLines: String = "  timeout: 0.5", postgresURL: String? = nil,
        _ body: (FreshetFixture, SSEClient, @escaping () throws -> TestKeys) async throws -> Void
    ) async throws {
        func run(_ url: String) async throws {
            try PGConnection.connect(url).execute("""
                DROP TABLE IF EXISTS users; CREATE TABLE users (id int PRIMARY KEY, name text);
                INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 10) g;
                """)
            try await FreshetFixture(databaseURL: url, tablesYAML: Self.tables, redisURL: own?.url, redis: redisLines).running { fixture in
                let keys = { () throws -> TestKeys in
                    TestKeys(prefix: fixture.prefix, connection: try own?.connection() ?? TestRedis().connection)
                }
                try keys().fill(1...10)
                let client = try await fixture.subscribe()
                try await body(fixture, client, keys)
            }
        }
        if let postgresURL { try await run(postgresURL) } else { try await TestServers.withDatabase { try await run($0) } }
    }

    func ready(_ f: FreshetFixture) async throws -> Int { try await httpGet(port: f.port, path: "/readyz").status }

    @Test func redisStopsAndComesBack() async throws {
        let redis = try await OwnRedis()
        try await scenario(redis: redis) { f, client, keys in
            try await redis.stop()
            try await eventually("/readyz 503 while Redis is down") { try await ready(f) == 503 }
            try await f.sql("UPDATE users SET name = 'new' WHERE id <= 3")
            // Events are not held back beyond redis.timeout while Redis is away.
            try await eventually("events while Redis is down") { client.changes.count == 3 }
            try await redis.start()
            try await eventually("/readyz 200 after") { try await ready(f) == 200 }
            try await eventually("changed rows' keys gone") { try keys().stale(1...3).isEmpty }
            #expect(try keys().present(4...10) == 7)  // unchanged rows keep their cache
        }
    }

    @Test func redisHangsThenResumes() async throws {
        let redis = try await OwnRedis()
        try await scenario(redis: redis) { f, client, keys in
            redis.pause()
            defer { redis.resume() }
            try await f.sql("UPDATE users SET name = 'new' WHERE id IN (2, 4)")
            try await eventually("events while Redis hangs") { client.changes.count == 2 }
            try await eventually("/readyz 503 while Redis hangs") { try await ready(f) == 503 }
            redis.resume()
            try await eventually("/readyz 200 after") { try await ready(f) == 200 }
            try await eventually("changed rows' keys gone") { try keys().stale([2, 4]).isEmpty }
            #expect(try keys().present(5...10) == 6)
        }
    }

    @Test func clientKillIsRetried() async throws {
        let redis = try await OwnRedis()
        try await scenario(redis: redis) { f, client, keys in
            try redis.run("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            try await f.sql("UPDATE users SET name = 'new' WHERE id IN (1, 5)")
            try await eventually("events") { client.changes.count == 2 }
            try await eventually("changed rows' keys gone") { try keys().stale([1, 5]).isEmpty }
            #expect(try await ready(f) == 200)
        }
    }

    @Test func outagePastMaxOutageIsAGapThatIsRepaired() async throws {
        let redis = try await OwnRedis()
        try await scenario(redis: redis, redisLines: "  timeout: 0.3\n  max_outage: 1") { f, client, keys in
            redis.pause()
            defer { redis.resume() }
            try await f.sql("UPDATE users SET name = 'new' WHERE id = 3")
            try await eventually("event while Redis hangs") { client.changes.count == 1 }
            try await eventually("/readyz 503") { try await ready(f) == 503 }
            try await Task.sleep(for: .seconds(1.5))  // the fault must outlast redis.max_outage
            redis.resume()
            try await eventually("resync sent after the repair") { client.messages.contains { $0.event == "resync" } }
            #expect(try keys().stale(1...10).isEmpty)  // flushed: every key of the template
            try await eventually("/readyz 200 after") { try await ready(f) == 200 }
        }
    }

    @Test func queueOverflowIsAGapThatIsRepaired() async throws {
        let redis = try await OwnRedis()
        try await scenario(redis: redis, redisLines: "  timeout: 0.3\n  max_pending: 5") { f, client, keys in
            redis.pause()
            defer { redis.resume() }
            try await f.sql("UPDATE users SET name = 'new'")  // ten operations: past max_pending
            try await eventually("events while Redis hangs") { client.changes.count == 10 }
            redis.resume()
            try await eventually("resync after the repair") { client.messages.contains { $0.event == "resync" } }
            #expect(try keys().stale(1...10).isEmpty)
            try await eventually("/readyz 200 after") { try await ready(f) == 200 }
        }
    }

    @Test func listenerTerminatedDuringWritesIsRepaired() async throws {
        try await scenario { f, client, keys in
            let pid = try #require(f.app.listener.backendPID)
            let db = try PGConnection.connect(f.databaseURL)
            try db.execute("SELECT pg_terminate_backend(\(pid)); UPDATE users SET name = 'new' WHERE id <= 5")
            try await eventually("resync after the reconnect") { client.messages.contains { $0.event == "resync" } }
            try await eventually("/readyz 200 after") { try await ready(f) == 200 }
            #expect(try keys().stale(1...5).isEmpty)
        }
    }

    @Test func postgresRestartIsRepaired() async throws {
        let pg = try await OwnPostgres()
        try await scenario(postgresURL: pg.url) { f, client, keys in
            try await pg.stop()
            try await eventually("/readyz 503 while PostgreSQL is down") { try await ready(f) == 503 }
            try await pg.start()
            // Written before Freshet is back: its notifications are lost; the repair must cover them.
            try PGConnection.connect(pg.url).execute("UPDATE users SET name = 'new' WHERE id IN (6, 7)")
            try await eventually("/readyz 200 after", timeout: 20) { try await ready(f) == 200 }
            try await eventually("resync") { client.messages.contains { $0.event == "resync" } }
            #expect(try keys().stale([6, 7]).isEmpty)
            try PGConnection.connect(pg.url).execute("UPDATE users SET name = 'newer' WHERE id = 8")
            try await eventually("live again") { client.changes.contains { $0.data.contains("\"id\":8") } }
        }
    }

    /// A silent partition between Freshet and PostgreSQL (the peer's kernel still answers, nothing gets through): the
    /// listener's health check has a deadline, so the LISTEN connection is given up in seconds and `/readyz` says so.
    @Test func aSilentPartitionFromPostgreSQLIsNoticedInSeconds() async throws {
        let pg = try await OwnPostgres()
        let proxy = BlackholeProxy(upstreamPort: pg.port)
        let viaProxy = pg.url.replacingOccurrences(of: ":\(pg.port)/", with: ":\(proxy.port)/")
        try PGConnection.connect(pg.url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
        try await FreshetFixture(databaseURL: viaProxy, tablesYAML: Self.tables).running { f in
            proxy.swallow()
            let cut = ContinuousClock.now
            try await eventually("/readyz 503 after the partition", timeout: 30) {
                let r = try await httpGet(port: f.port, path: "/readyz")
                return r.status == 503 && r.body.contains("LISTEN")
            }
            // Health check every 5 s, answer due within 10 s: noticed within about 15 s, not the kernel's minutes.
            #expect(ContinuousClock.now - cut < .seconds(20))
        }
    }

    @Test func sigtermFlushesWhatWasReceivedAndASecondOneExitsAtOnce() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a'), (2, 'b')")
            let redis = try await OwnRedis()
            let port = TestServers.freePort()
            let config = try writeConfig("""
                postgres: {url: "\(url)"}
                redis: {url: "\(redis.url)", timeout: 0.3}
                http: {listen: "127.0.0.1:\(port)"}
                shutdown_timeout: 10
                tables: [{name: users, redis: [{key: "sig:{id}"}]}]
                """)
            func started() async throws -> CLIProcess {
                let run = try CLIProcess(["run", "--config", config])
                try await eventually("ready", timeout: 20) { (try? await httpGet(port: port, path: "/readyz"))?.status == 200 }
                return run
            }
            // 1. Redis hangs, rows change, SIGTERM: Freshet waits for Redis (up to shutdown_timeout) and applies them.
            let first = try await started()
            defer { first.signal(SIGKILL) }
            try redis.run("SET", "sig:1", "old")
            redis.pause()
            try PGConnection.connect(url).execute("UPDATE users SET name = 'new' WHERE id = 1")
            try await Task.sleep(for: .milliseconds(500))  // let the change reach Freshet's queue
            first.signal(SIGTERM)
            try await Task.sleep(for: .milliseconds(500))
            #expect(first.process.isRunning)  // still flushing
            redis.resume()
            #expect(try await first.wait(timeout: 10) == 0)
            #expect(try redis.run("EXISTS", "sig:1") == .integer(0))

            // 2. Same, but a second SIGTERM: exit at once.
            let second = try await started()
            defer { second.signal(SIGKILL) }
            redis.pause()
            defer { redis.resume() }
            try PGConnection.connect(url).execute("UPDATE users SET name = 'newer' WHERE id = 2")
            try await Task.sleep(for: .milliseconds(500))
            second.signal(SIGTERM)
            try await Task.sleep(for: .milliseconds(300))
            let signalled = ContinuousClock.now
            second.signal(SIGTERM)
            _ = try await second.wait(timeout: 5)
            #expect(ContinuousClock.now - signalled < .seconds(2))
        }
    }

    @Test func redisURLThatPointsToNothingKeepsRunningAndSaysWhy() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY)")
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: Self.tables, redisURL: "redis://127.0.0.1:1/0", redis: "  timeout: 0.2")
            let task = Task { try await fixture.app.run() }
            defer { task.cancel() }
            try await eventually("readyz 503 naming Redis") {
                let r = try? await httpGet(port: fixture.port, path: "/readyz")
                return r?.status == 503 && r?.body.contains("Redis") == true
            }
            #expect(try await httpGet(port: fixture.port, path: "/healthz").status == 200)
            await fixture.app.shutdown()
            _ = try? await task.value
        }
    }

    @Test func portInUseIsAClearErrorAndExitsNonZero() async throws {
        let (db, redis) = try TestServers.require()
        let (fd, port) = TestServers.boundSocket(listening: true)  // the port Freshet is told to use is taken
        defer { close(fd) }
        let config = try writeConfig("""
            postgres: {url: "\(db)"}
            redis: {url: "\(redis)"}
            http: {listen: "127.0.0.1:\(port)"}
            tables: [{name: pg_class, key: [oid], redis: [{key: "never:{oid}"}]}]
            """)
        let result = try await CLIProcess.run(["run", "--no-install", "--config", config], timeout: 20)
        #expect(result.status == 1)
        #expect(result.stderr.contains("127.0.0.1:\(port)"), "\(result.stderr)")
        #expect(result.stderr.lowercased().contains("in use"), "\(result.stderr)")
    }
}

/// Keys `PREFIX:user:N` in a Redis, for fault tests.
struct TestKeys {
    let prefix: String
    let connection: RedisConnection

    func key(_ id: Int) -> String { "\(prefix):user:\(id)" }

    func fill(_ ids: some Sequence<Int>) throws {
        for id in ids { _ = try connection.command(["SET", key(id), "old"]) }
    }

    /// Ids whose key still holds the old value.
    func stale(_ ids: some Sequence<Int>) throws -> [Int] {
        try ids.filter { try connection.command(["GET", key($0)]).text == "old" }
    }

    func present(_ ids: some Sequence<Int>) throws -> Int {
        try ids.filter { try connection.command(["EXISTS", key($0)]) == .integer(1) }.count
    }
}
