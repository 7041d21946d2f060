import Foundation
import FreshetCore
import FreshetPostgres
import Glibc
import Testing

/// PgBouncer in transaction mode hands a session's server connection to other clients between transactions, which
/// breaks the writer election's session lock: `http.relay: redis` through it refuses to start, saying why.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct PgBouncerTests {
    @Test func theWriterElectionRefusesATransactionPool() async throws {
        let bouncer = try await OwnPgBouncer()
        let (database, redisURL) = try TestServers.require()
        let viaBouncer = try #require(bouncer.url(for: database))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-bouncer-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = """
            postgres: {url: "\(viaBouncer)"}
            redis: {url: "\(redisURL)"}
            http: {listen: "127.0.0.1:\(TestServers.freePort())", relay: redis}
            tables:
              - name: users
                redis: [{key: "user:{id}"}]
            """
        let path = dir.appendingPathComponent("freshet.yml").path
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try await CLIProcess.run(["run", "--config", path], timeout: 30)
        #expect(run.status != 0)
        #expect(run.stderr.contains("connection pooler"), "\(run.stderr.suffix(600))")
        #expect(run.stderr.contains("connect Freshet to PostgreSQL directly"))
    }
}

/// A PgBouncer of the test's own in transaction mode, in front of the test PostgreSQL.
final class OwnPgBouncer: @unchecked Sendable {
    let port = TestServers.freePort()
    let dir: URL
    private var process: Process?

    init() async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-pgbouncer-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let (database, _) = try TestServers.require()
        guard let url = ConnectionURL(parsing: database) else { throw TestFailure("DATABASE_URL is not a URL") }
        let hostPort = url.location.split(separator: "/").first.map(String.init) ?? "127.0.0.1:5432"
        let pgPort = hostPort.split(separator: ":").last.map(String.init) ?? "5432"
        try """
            [databases]
            * = host=127.0.0.1 port=\(pgPort)
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = trust
            auth_file = \(dir.path)/users.txt
            pool_mode = transaction
            default_pool_size = 4
            logfile = \(dir.path)/pgbouncer.log
            pidfile = \(dir.path)/pgbouncer.pid
            """.write(to: dir.appendingPathComponent("pgbouncer.ini"), atomically: true, encoding: .utf8)
        try "\"postgres\" \"\"\n".write(to: dir.appendingPathComponent("users.txt"), atomically: true, encoding: .utf8)
        // PgBouncer will not run as root.
        let asRoot = getuid() == 0
        if asRoot { _ = try await shell("chown", ["-R", "postgres", dir.path]) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = (asRoot ? ["runuser", "-u", "postgres", "--"] : []) + ["/usr/sbin/pgbouncer", dir.appendingPathComponent("pgbouncer.ini").path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        try await eventually("PgBouncer on \(port) answers") {
            guard let url = self.url(for: database) else { return false }
            return (try? await offThePool { try PGConnection.connect(url).execute("SELECT 1") }) != nil
        }
    }

    /// `database` (a postgresql:// URL) with PgBouncer's host and port.
    func url(for database: String) -> String? {
        guard let range = database.range(of: #"@[^/]+/"#, options: .regularExpression) else { return nil }
        return database.replacingCharacters(in: range, with: "@127.0.0.1:\(port)/")
    }

    deinit {
        // PgBouncer itself (a child of runuser when the tests run as root: killing runuser would leave it running).
        if let text = try? String(contentsOf: dir.appendingPathComponent("pgbouncer.pid"), encoding: .utf8),
           let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(pid, SIGKILL)
        }
        if let process { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: dir)
    }
}
