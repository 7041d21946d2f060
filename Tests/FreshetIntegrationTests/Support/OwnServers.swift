import Foundation
import FreshetRedis
import FreshetCore
import FreshetPostgres
import Glibc
import Testing

/// A Redis server of a test's own, so that the test can stop, pause or restart it without disturbing the others.
/// It keeps an append-only file, so a restart brings the keys back (as a production Redis would).
final class OwnRedis: @unchecked Sendable {
    let port = TestServers.freePort()
    let dir: URL
    /// More `redis-server` arguments (e.g. `--maxmemory`).
    let extraArguments: [String]
    private var process: Process?

    var url: String { "redis://127.0.0.1:\(port)/0" }

    init(_ extraArguments: [String] = []) async throws {
        self.extraArguments = extraArguments
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try await start()
    }

    func start() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                       "--appendfsync", "always", "--dir", dir.path] + extraArguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        try await eventually("own Redis on \(port) answers") { (try? self.connection().command(["PING"])) == .status("PONG") }
    }

    func connection() throws -> RedisConnection {
        try RedisConnection.connect(RedisEndpoint(address: .tcp(host: "127.0.0.1", port: port)), timeout: 2)
    }

    /// Runs one command on a fresh connection.
    @discardableResult
    func run(_ args: String...) throws -> RedisReply { try connection().command(args) }

    /// Stops the server (SIGKILL: a crash; with appendfsync always nothing acknowledged is lost) and waits until
    /// its port refuses connections.
    func stop() async throws {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGCONT)
        kill(p.processIdentifier, SIGKILL)
        process = nil
        try await eventually("own Redis on \(port) gone") { (try? self.connection()) == nil }
    }

    func pause() { if let p = process { kill(p.processIdentifier, SIGSTOP) } }
    func resume() { if let p = process { kill(p.processIdentifier, SIGCONT) } }

    deinit {
        if let p = process {
            kill(p.processIdentifier, SIGCONT)
            kill(p.processIdentifier, SIGKILL)
        }
        try? FileManager.default.removeItem(at: dir)
    }
}

/// A PostgreSQL cluster of a test's own, to restart without disturbing the others.
final class OwnPostgres: @unchecked Sendable {
    let port = TestServers.freePort()
    let dir: String
    let bin = ProcessInfo.processInfo.environment["FRESHET_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"

    var url: String { "postgresql://postgres@127.0.0.1:\(port)/postgres" }

    /// More server settings (`-c name=value …`).
    let extraOptions: String

    init(extraOptions: String = "") async throws {
        self.extraOptions = extraOptions
        dir = "/tmp/freshet-pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        try await run(["\(bin)/initdb", "-D", "\(dir)/data", "-U", "postgres", "-A", "trust", "--no-sync"])
        try await start()
    }

    /// A hot standby of `primary`, streaming from it (`pg_basebackup -R`), on a port of its own.
    init(standbyOf primary: OwnPostgres) async throws {
        extraOptions = primary.extraOptions
        dir = "/tmp/freshet-pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        try await run([
            "\(bin)/pg_basebackup", "-h", "127.0.0.1", "-p", "\(primary.port)", "-U", "postgres", "-D", "\(dir)/data",
            "-R", "-X", "stream", "--no-sync",
        ])
        try await start()
    }

    /// Promotes a standby to primary (waits until it accepts writes).
    func promote() async throws {
        try await run(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-w", "promote"])
    }

    /// Stops the server at once, as a crash would (no shutdown checkpoint).
    func crash() async throws {
        try await run(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-w", "-m", "immediate", "stop"])
    }

    /// Runs a PostgreSQL tool through the shell, as the postgres user when we are root (initdb refuses root).
    /// (`system()` on a plain thread: Foundation's Process does not notice the exit of `pg_ctl start`, whose server
    /// child stays in its process group.)
    private func run(_ arguments: [String]) async throws {
        let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let command = "cd / && " + (getuid() == 0 ? "runuser -u postgres -- " : "") + quoted + " >/dev/null 2>&1"
        let status: Int32 = await withCheckedContinuation { done in
            Thread.detachNewThread { done.resume(returning: system(command)) }
        }
        guard status == 0 else { throw TestFailure("\(arguments) exited \(status)") }
    }


    private var options: String {
        "-c listen_addresses=127.0.0.1 -p \(port) -k \(dir) -c fsync=off -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 \(extraOptions)"
    }

    func start() async throws {
        try await run(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-w", "-l", "\(dir)/log", "-o", options, "start"])
    }

    func stop() async throws {
        try await run(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-w", "-m", "fast", "stop"])
    }

    func restart() async throws {
        try await run(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-w", "-m", "fast", "-l", "\(dir)/log", "-o", options, "restart"])
    }

    deinit {
        let stop = "cd / && " + (getuid() == 0 ? "runuser -u postgres -- " : "") + "'\(bin)/pg_ctl' -D '\(dir)/data' -m immediate stop >/dev/null 2>&1"
        _ = system(stop)
        try? FileManager.default.removeItem(atPath: dir)
    }
}
