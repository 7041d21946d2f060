import Foundation
import Freshet
import FreshetCore
import FreshetPostgres
import Logging
import Testing

/// Metrics in the test process: bootstrapped once, shared by the tests that read `/metrics`.
enum TestMetrics {
    static let shared = MetricsExport.bootstrap()
}

/// Operating Freshet: `/metrics` moves with real changes, JSON logs parse, secrets stay out of logs.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct OperationsTests {
    /// The value of one sample line in Prometheus text (`name{labels} value`), 0 when absent.
    func sample(_ text: String, _ series: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.split(separator: " ").last ?? "") ?? 0
        }
        return 0
    }

    @Test func metricsAreScrapedAndMoveWithRealChanges() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE metered (id int PRIMARY KEY, v text)")
            let (_, redis) = try TestServers.require()
            let prefix = TestServers.uniquePrefix()
            let config = try FreshetConfig.parse(yaml: """
                postgres: {url: "\(url)"}
                redis: {url: "\(redis)"}
                http: {listen: "127.0.0.1:0"}
                tables:
                  - name: metered
                    redis:
                      - key: "\(prefix):m:{id}"
                      - key: "\(prefix):m:{id}:v"
                        action: set
                """)
            var logger = Logger(label: "metrics-test")
            logger.logLevel = ProcessInfo.processInfo.environment["FRESHET_TEST_LOG"] == nil ? .critical : .debug
            let app = try FreshetApplication(config: config, options: RunOptions(metrics: TestMetrics.shared, signals: []), logger: logger)
            let task = Task { try await app.run() }
            defer { task.cancel() }
            try await eventually("ready") { app.notReadyReasons.isEmpty && app.boundPort != nil }
            let port = app.boundPort!
            let client = try SSEClient(port: port, path: "/events")
            try await eventually("subscribed") { app.hub.subscriberCount == 1 }
            let before = try await httpGet(port: port, path: "/metrics").body
            try PGConnection.connect(url).execute("""
                INSERT INTO metered VALUES (1, 'a'), (2, 'b'); UPDATE metered SET v = 'c' WHERE id = 1;
                DELETE FROM metered WHERE id = 2; SELECT pg_notify('freshet', 'junk');
                """)
            try await eventually("events delivered") { client.changes.count == 4 }
            let scrape = try await httpGet(port: port, path: "/metrics")
            #expect(scrape.status == 200)
            #expect(scrape.headers["content-type"]?.hasPrefix("text/plain") == true)
            let after = scrape.body
            func delta(_ series: String) -> Double { sample(after, series) - sample(before, series) }
            #expect(delta(#"freshet_changes_total{table="metered",op="insert"}"#) == 2)
            #expect(delta(#"freshet_changes_total{table="metered",op="update"}"#) == 1)
            #expect(delta(#"freshet_changes_total{table="metered",op="delete"}"#) == 1)
            // Operations on one key within a batch are coalesced (the last one wins), so these are lower bounds.
            #expect(delta(#"freshet_redis_commands_total{action="set",result="ok"}"#) >= 1)
            #expect(delta(#"freshet_redis_commands_total{action="delete",result="ok"}"#) >= 3)
            #expect(delta(#"freshet_notifications_rejected_total{reason="invalid_json"}"#) >= 1)
            #expect(delta("freshet_sse_events_sent_total") >= 4)
            for name in [
                "freshet_redis_pending", "freshet_listen_connected", "freshet_sse_subscribers",
                "freshet_change_lag_seconds_bucket", "freshet_sse_lag_seconds_bucket", "freshet_change_lag_seconds_count",
            ] {
                #expect(after.contains(name), "\(name) missing from /metrics")
            }
            // (freshet_listen_connected is process-wide here: other tests in this process move it too.)
            let stopping = ContinuousClock.now
            await app.shutdown()
            _ = try? await task.value
            #expect(ContinuousClock.now - stopping < .seconds(8))  // "within a few seconds", on a loaded 2-core CI machine
        }
    }

    @Test func metricsCanBeTurnedOff() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY)")
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: "  - name: users\n    redis: [{key: \"{prefix}:u:{id}\"}]", http: "  metrics: false")
            try await fixture.start()
            #expect(try await httpGet(port: fixture.port, path: "/metrics").status == 404)
            await fixture.stop()
        }
    }

    @Test func jsonLogHandlerWritesOneObjectPerLineWithMetadataAsKeys() throws {
        let lines = LockedLines()
        var handler = JSONLogHandler(label: "t") { lines.append($0) }
        handler.logLevel = .debug
        let logger = Logger(label: "t") { _ in handler }
        logger.warning("gap detected", metadata: ["table": "users", "op": "update", "gap": "listen_reconnect", "n": "3"])
        let line = try #require(lines.all.first)
        #expect(line.hasSuffix("\n") && line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONParser.parse(line).objectValue)
        #expect(object["level"] == .string("warning"))
        #expect(object["message"] == .string("gap detected"))
        #expect(object["table"] == .string("users"))
        #expect(object["gap"] == .string("listen_reconnect"))
        #expect(object["time"]?.stringValue.flatMap(Timestamp.secondsSinceEpoch) != nil)
    }

    @Test func jsonLogsOfTheBinaryParseAndHideThePassword() async throws {
        let (admin, redis) = try TestServers.require()
        // A password in the URL, and a database that does not exist: run retries and logs why.
        var url = TestServers.replacingDatabase(in: admin, with: "freshet_missing_db")
        url = url.replacingOccurrences(of: "://postgres@", with: "://postgres:hunter2@")
        let config = try writeConfig("""
            postgres: {url: "\(url)"}
            redis: {url: "\(redis)"}
            http: {listen: "127.0.0.1:\(TestServers.freePort())"}
            log: {format: json, level: info}
            tables: [{name: users, redis: [{key: "u:{id}"}]}]
            """)
        let run = try CLIProcess(["run", "--config", config])
        defer { run.signal(SIGKILL) }
        try await eventually("a retry warning", timeout: 15) { run.stderr.contains("retrying") }
        run.signal(SIGTERM)
        _ = try await run.wait(timeout: 15)
        let lines = run.stderr.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try #require(try? JSONParser.parse(String(line)).objectValue, "not JSON: \(line)")
            #expect(object["time"] != nil && object["level"] != nil && object["message"] != nil)
        }
        #expect(!run.stderr.contains("hunter2"))
        #expect(run.stderr.contains("postgres:***@"))
    }
}

extension OperationsTests {
    /// Passwords holding the URL's own delimiters (`/`, `@`, `:`, `#`, `?`, escapes) never show: not in
    /// `run --print-config`, not in `check`, not in any log line; and the PostgreSQL one still connects.
    @Test func passwordsWithDelimitersNeverAppearAnywhere() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY)")
            let pgSecret = "pg/Se@c:r#t%3F"
            let redisSecret = "rd/Se@c:r#t"
            let fragments = ["pg/Se", "Se@c", "c:r#t", "rd/Se", "r#t", "%3F"]
            let pgURL = url.replacingOccurrences(of: "://postgres@", with: "://postgres:\(pgSecret)@")  // trust auth: any password
            let port = TestServers.freePort()
            let config = try writeConfig("""
                postgres: {url: "\(pgURL)"}
                redis: {url: "redis://:\(redisSecret)@127.0.0.1:1/0", timeout: 0.2}
                http: {listen: "127.0.0.1:\(port)"}
                log: {format: json}
                tables: [{name: users, redis: [{key: "sec:{id}"}]}]
                """)
            func expectHidden(_ text: String, _ what: String) {
                for fragment in fragments { #expect(!text.contains(fragment), "\(what) shows \(fragment): \(text)") }
            }
            let printed = try await CLIProcess.run(["run", "--print-config", "--config", config])
            #expect(printed.status == 0)
            expectHidden(printed.stdout + printed.stderr, "--print-config")
            #expect(printed.stdout.contains("postgres:***@") && printed.stdout.contains("redis://:***@127.0.0.1:1/0"))

            let check = try await CLIProcess.run(["check", "--config", config])
            #expect(check.stdout.contains("ok    PostgreSQL"), "\(check.stdout) \(check.stderr)")  // the escaped URL connects
            #expect(check.stdout.contains("FAIL  Redis"))
            expectHidden(check.stdout + check.stderr, "check")

            let run = try CLIProcess(["run", "--config", config])
            defer { run.signal(SIGKILL) }
            try await eventually("a Redis warning in the log", timeout: 15) { run.stderr.contains("Redis") }
            run.signal(SIGTERM)
            _ = try await run.wait(timeout: 15)
            expectHidden(run.stderr, "the log")
        }
    }
}

extension OperationsTests {
    /// A rejected notification is logged by its size, never its text (payloads are row data).
    @Test func aRejectedPayloadIsLoggedWithoutItsText() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY)")
            let port = TestServers.freePort()
            let config = try writeConfig("""
                postgres: {url: "\(url)"}
                redis: {url: "\(try TestServers.require().redis)"}
                http: {listen: "127.0.0.1:\(port)"}
                tables: [{name: users, redis: [{key: "rej:{id}"}]}]
                """)
            let run = try CLIProcess(["run", "--config", config])
            defer { run.signal(SIGKILL) }
            try await eventually("ready", timeout: 20) { (try? await httpGet(port: port, path: "/readyz"))?.status == 200 }
            let db = try PGConnection.connect(url)
            try db.execute(#"SELECT pg_notify('freshet', 'not json: alice@example.com')"#)
            try db.execute(#"SELECT pg_notify('freshet', '{"v":1,"op":"insert","schema":"public","table":"other","at":"t","rows":[{"new":{"email":"bob@example.com"}}]}')"#)
            try await eventually("both rejections logged") {
                run.stderr.contains("not a Freshet change") && run.stderr.contains("not configured")
            }
            #expect(!run.stderr.contains("alice@example.com"))
            #expect(!run.stderr.contains("bob@example.com"))
            #expect(run.stderr.contains("payload_bytes="))
        }
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}
