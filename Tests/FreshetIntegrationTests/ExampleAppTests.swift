import Foundation
import FreshetCore
import FreshetPostgres
import Testing

/// examples/app against the same local servers: cache-aside reads, invalidation by Freshet, and its page refreshing
/// in a real browser when a row changes.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct ExampleAppTests {
    static var appScript: String {
        var dir = URL(fileURLWithPath: #filePath)
        while dir.path != "/" {
            dir = dir.deletingLastPathComponent()
            let candidate = dir.appendingPathComponent("examples/app/app.py")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
        }
        return "examples/app/app.py"
    }

    @Test func appReadsThroughTheCacheAndItsPageFollowsChanges() async throws {
        try await TestServers.withDatabase { url in
            let db = try PGConnection.connect(url)
            try db.execute("""
                CREATE TABLE users (id serial PRIMARY KEY, org_id int, name text NOT NULL, email text, last_seen_at timestamptz);
                INSERT INTO users (org_id, name, email) VALUES (7, 'Ada', 'ada@example.com'), (7, 'Grace', 'grace@example.com');
                """)
            let appPort = TestServers.freePort()
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: """
                  - name: users
                    redis:
                      - key: "{prefix}:user:{id}"
                """, http: "  cors: {allowed_origins: [\"http://127.0.0.1:\(appPort)\"]}")
            try await fixture.start()
            let (_, redisURL) = try TestServers.require()
            let app = Process()
            app.executableURL = URL(fileURLWithPath: systemPython3)
            app.arguments = (systemPython3 == "/usr/bin/env" ? ["python3"] : []) + [Self.appScript]
            var env = ProcessInfo.processInfo.environment
            env["DATABASE_URL"] = url
            env["REDIS_URL"] = redisURL
            env["FRESHET_URL"] = "http://127.0.0.1:\(fixture.port)"
            env["KEY_TEMPLATE"] = "\(fixture.prefix):user:{id}"
            env["PORT"] = String(appPort)
            app.environment = env
            app.standardOutput = FileHandle.nullDevice
            app.standardError = FileHandle.nullDevice
            try app.run()
            defer { app.kill() }
            try await eventually("app up") { (try? await httpGet(port: appPort, path: "/healthz"))?.status == 200 }

            // Cache-aside: a miss fills Redis (no TTL), the next read hits.
            let first = try await httpGet(port: appPort, path: "/api/users/1")
            #expect(first.status == 200 && first.headers["x-cache"] == "miss")
            let second = try await httpGet(port: appPort, path: "/api/users/1")
            #expect(second.headers["x-cache"] == "hit" && second.body.contains("Ada"))
            let redis = try TestRedis()
            #expect(try redis.run("TTL", "\(fixture.prefix):user:1") == .integer(-1))

            // A change in PostgreSQL: Freshet deletes the key, the next read is fresh.
            try db.execute("UPDATE users SET name = 'Ada Lovelace' WHERE id = 1")
            try await eventually("the app reads the new name") {
                (try? await httpGet(port: appPort, path: "/api/users/1"))?.body.contains("Ada Lovelace") == true
            }

            // The page itself, fetched and then followed in a browser.
            let page = try await httpGet(port: appPort, path: "/")
            #expect(page.status == 200)
            #expect(page.body.contains("http://127.0.0.1:\(fixture.port)/freshet.js"))
            #expect(page.body.contains("Grace"))
            guard WebDriver.available || TestServers.isCI else { return }
            let browser = try await WebDriver()
            do {
                try await browser.open("http://127.0.0.1:\(appPort)/")
                try await eventually("page live", timeout: 20) {
                    try await browser.script("return document.getElementById('state').textContent") == .string("live")
                }
                try db.execute("UPDATE users SET name = 'Grace Hopper' WHERE id = 2")
                try await eventually("the page shows the change", timeout: 20) {
                    try await browser.script("return document.getElementById('user-2').textContent").stringValue?.contains("Grace Hopper") == true
                }
            } catch {
                await browser.quit()
                await fixture.stop()
                throw error
            }
            await browser.quit()
            await fixture.stop()
        }
    }
}
