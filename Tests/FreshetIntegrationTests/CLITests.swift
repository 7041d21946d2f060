import Foundation
import FreshetCore
import FreshetPostgres
import Testing

/// The `freshet` binary: exit codes, messages, and each command against real servers.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct CLITests {
    @Test func helpAndVersionNeedNoConfig() async throws {
        let version = try await CLIProcess.run(["--version"])
        #expect(version.status == 0)
        #expect(!version.stdout.isEmpty)
        let help = try await CLIProcess.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("triggers"))
    }

    @Test func badConfigExitsTwoNamingFieldAndLine() async throws {
        let path = try writeConfig("""
            postgres:
              url: postgresql://localhost/x
            tables:
              - name: users
                redis:
                  - key: "user:{id"
            """)
        for command in [["run"], ["check"], ["tail"], ["triggers", "sql"]] {
            let result = try await CLIProcess.run(command + ["--config", path])
            #expect(result.status == 2, "\(command)")
            #expect(result.stderr.contains("tables[0].redis[0].key"), "\(command): \(result.stderr)")
            #expect(result.stderr.contains("line 6"), "\(command): \(result.stderr)")
        }
        let missing = try await CLIProcess.run(["run", "--config", "/nonexistent/freshet.yml"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/freshet.yml"))
    }

    @Test func configPathComesFromTheFlagThenTheEnvironment() async throws {
        let good = try writeConfig("postgres: {url: 'postgresql://u:pw@h/db'}\ntables: [{name: users}]\n")
        let bad = try writeConfig("nonsense: true\n")
        let fromEnv = try await CLIProcess.run(["run", "--print-config"], environment: ["FRESHET_CONFIG": good])
        #expect(fromEnv.status == 0)
        let flagWins = try await CLIProcess.run(["run", "--print-config", "--config", bad], environment: ["FRESHET_CONFIG": good])
        #expect(flagWins.status == 2)
    }

    @Test func printConfigRedactsAndDoesNotConnect() async throws {
        let path = try writeConfig("""
            postgres:
              url: postgresql://app:hunter2@db.invalid:5432/app
            redis:
              url: redis://:redispw@cache.invalid:6379/0
            http:
              auth:
                tokens: [tok-abc]
                jwt: {secret: jwtsecret-that-is-at-least-32-bytes}
            tables:
              - name: users
            """)
        let result = try await CLIProcess.run(["run", "--print-config", "--config", path], environment: ["FRESHET_LISTEN": "0.0.0.0:9999"])
        #expect(result.status == 0)
        for secret in ["hunter2", "redispw", "tok-abc", "jwtsecret"] {
            #expect(!result.stdout.contains(secret))
        }
        #expect(result.stdout.contains("postgresql://app:***@db.invalid:5432/app"))
        #expect(result.stdout.contains("0.0.0.0:9999"))
        #expect(result.stdout.contains("shutdown_timeout: 5"))
    }

    func tableConfig(_ url: String, prefix: String, extra: String = "") throws -> String {
        let (_, redis) = try TestServers.require()
        return try writeConfig("""
            postgres:
              url: \(url)
            redis:
              url: \(redis)
            http:
              listen: 127.0.0.1:\(TestServers.freePort())
            tables:
              - name: users
                redis:
                  - key: "\(prefix):user:{id}"
                  - key: "\(prefix):org:{\(extra.isEmpty ? "org_id" : extra)}"
            """)
    }

    @Test func checkReportsUnknownColumnWithExitTwo() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, org_id int)")
            let ok = try await CLIProcess.run(["check", "--config", try tableConfig(url, prefix: "c")])
            #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
            #expect(ok.stdout.contains("table users"))
            let bad = try await CLIProcess.run(["check", "--config", try tableConfig(url, prefix: "c", extra: "team_id")])
            #expect(bad.status == 2)
            #expect(bad.stderr.contains("\"team_id\"") && bad.stderr.contains("users"))
        }
    }

    @Test func triggersSQLChangesNothingAndInstallUninstallApply() async throws {
        try await TestServers.withDatabase { url in
            let db = try PGConnection.connect(url)
            try db.execute("CREATE TABLE users (id int PRIMARY KEY, org_id int)")
            let config = try tableConfig(url, prefix: "tr")
            func triggers() throws -> String? {
                try db.query("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass AND tgname LIKE 'freshet%'", parameters: nil)[0][0]
            }
            let sql = try await CLIProcess.run(["triggers", "sql", "--config", config])
            #expect(sql.status == 0)
            #expect(sql.stdout.contains(#"CREATE TRIGGER "freshet_update" AFTER UPDATE ON "public"."users""#))
            #expect(try triggers() == "0")
            let install = try await CLIProcess.run(["triggers", "install", "--config", config])
            #expect(install.status == 0, "\(install.stderr)")
            #expect(try triggers() == "4")
            let again = try await CLIProcess.run(["triggers", "install", "--config", config])
            #expect(again.status == 0)
            #expect(try triggers() == "4")
            // The printed SQL is what install runs: applying it by hand works too.
            try db.execute(sql.stdout)
            let uninstall = try await CLIProcess.run(["triggers", "uninstall", "--config", config])
            #expect(uninstall.status == 0)
            #expect(try triggers() == "0")
            #expect(try db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'freshet'", parameters: nil)[0][0] == "0")
        }
    }

    @Test func tailPrintsOneJSONLinePerChangeAndActsOnNothing() async throws {
        try await TestServers.withDatabase { url in
            let db = try PGConnection.connect(url)
            try db.execute("CREATE TABLE users (id int PRIMARY KEY, org_id int)")
            let config = try tableConfig(url, prefix: "tl")
            #expect(try await CLIProcess.run(["triggers", "install", "--config", config]).status == 0)
            let redis = try TestRedis()
            try redis.run("SET", "tl:user:1", "cached")
            let tail = try CLIProcess(["tail", "--config", config])
            defer { tail.signal(SIGKILL) }
            // tail has no readiness signal of its own: repeat the change until a line shows up.
            try await eventually("a tail line", timeout: 20) {
                try db.execute("INSERT INTO users VALUES (1, 5) ON CONFLICT (id) DO UPDATE SET org_id = users.org_id + 1")
                try await Task.sleep(for: .milliseconds(200))
                return !tail.stdoutLines.isEmpty
            }
            let line = try #require(tail.stdoutLines.first)
            let object = try #require(try JSONParser.parse(line).objectValue)
            #expect(object["table"] == .string("users"))
            #expect(object["key"] == .object(["id": .number("1")]))
            guard case .array(let operations)? = object["operations"] else { throw TestFailure("no operations in \(line)") }
            #expect(operations.contains(.object(["action": .string("delete"), "key": .string("tl:user:1")])))
            #expect(try redis.get("tl:user:1") == "cached")  // tail acts on nothing
        }
    }

    @Test func runWaitsForTheDatabaseThenExitsZeroOnSIGTERM() async throws {
        let (admin, _) = try TestServers.require()
        let name = "freshet_late_" + UUID().uuidString.prefix(8).lowercased()
        let url = TestServers.replacingDatabase(in: admin, with: name)
        let port = TestServers.freePort()
        let (_, redis) = try TestServers.require()
        let config = try writeConfig("""
            postgres: {url: "\(url)"}
            redis: {url: "\(redis)"}
            http: {listen: "127.0.0.1:\(port)"}
            tables:
              - name: users
                redis: [{key: "late:{id}"}]
            """)
        let run = try CLIProcess(["run", "--config", config])
        defer { run.signal(SIGKILL) }
        // The database does not exist yet: run keeps going, /readyz says why.
        try await eventually("/readyz answers 503", timeout: 20) {
            (try? await httpGet(port: port, path: "/readyz"))?.status == 503
        }
        let notReady = try await httpGet(port: port, path: "/readyz")
        #expect(notReady.body.contains("\"status\":\"unavailable\""))
        #expect(notReady.body.contains("PostgreSQL"))
        #expect(run.process.isRunning)
        let adminConnection = try PGConnection.connect(admin)
        try adminConnection.execute("CREATE DATABASE \(name)")
        defer { _ = try? adminConnection.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY)")
        // Up to two capped backoffs (5 s each) after the database appears, on a machine running the whole suite.
        try await eventually("/readyz answers 200", timeout: 40) {
            (try? await httpGet(port: port, path: "/readyz"))?.status == 200
        }
        #expect(!run.stderr.contains("hunter2"))
        run.signal(SIGTERM)
        let status = try await run.wait(timeout: 15)
        #expect(status == 0, "\(run.stderr)")
    }
}
