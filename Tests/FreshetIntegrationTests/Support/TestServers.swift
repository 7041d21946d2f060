import Foundation
import FreshetPostgres
import FreshetRedis
import FreshetCore
import Testing

/// The real PostgreSQL and Redis the integration tests use, from `DATABASE_URL` and `REDIS_URL` (set by
/// `scripts/test`). Without them the tests are skipped locally and fail under CI=true.
enum TestServers {
    static let environment = ProcessInfo.processInfo.environment
    static let databaseURL = environment["DATABASE_URL"]
    static let redisURL = environment["REDIS_URL"]
    static var available: Bool { databaseURL != nil && redisURL != nil }
    static var isCI: Bool { environment["CI"] == "true" }

    /// Runs the integration tests when the servers are configured, and under CI (where their absence must fail).
    static var enabled: Bool { available || isCI }

    static func require() throws -> (database: String, redis: String) {
        guard let databaseURL, let redisURL else {
            throw TestFailure("DATABASE_URL and REDIS_URL must be set (scripts/test starts the servers)")
        }
        return (databaseURL, redisURL)
    }

    /// A fresh database for one test, dropped afterwards; isolates triggers, channels and tables.
    static func withDatabase<T>(_ body: (String) async throws -> T) async throws -> T {
        let (admin, _) = try require()
        let name = "freshet_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        // CREATE and DROP DATABASE can take a while on a loaded machine: not on the cooperative pool.
        let adminConnection = try await offThePool { () throws -> PGConnection in
            let connection = try PGConnection.connect(admin)
            try connection.execute("CREATE DATABASE \(name)")
            return connection
        }
        let url = replacingDatabase(in: admin, with: name)
        let drop = { @Sendable in _ = try? adminConnection.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        do {
            let result = try await body(url)
            try await offThePool(drop)
            return result
        } catch {
            try? await offThePool(drop)
            throw error
        }
    }

    /// `postgresql://user@host:port/db?x` with its database replaced.
    static func replacingDatabase(in url: String, with name: String) -> String {
        let schemeEnd = url.range(of: "://")!.upperBound
        let rest = url[schemeEnd...]
        let query = rest.firstIndex(of: "?").map { String(rest[$0...]) } ?? ""
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        return String(url[..<schemeEnd]) + authority + "/" + name + query
    }

    /// A key prefix no other test uses.
    static func uniquePrefix() -> String {
        "t" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
    }

    /// A port nobody listens on now (Freshet itself binds port 0 in tests; this is for other servers).
    static func freePort() -> Int {
        let (fd, port) = boundSocket(listening: false)
        close(fd)
        return port
    }

    /// A socket bound to 127.0.0.1 on a port the kernel chose, and that port; the caller closes it.
    /// Connects `fd` (a TCP socket) to `127.0.0.1:port`; false when refused.
    static func connectLoopback(_ fd: Int32, port: Int) -> Bool {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func boundSocket(listening: Bool) -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if listening { listen(fd, 1) }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: bound.sin_port)))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Waits until `condition` holds, polling, and fails the test with `message` at the deadline (20 s by default: CI runs
/// the whole suite at once on two cores, next to the benchmark smoke test and the 200,000-row load test).
func eventually(
    _ message: @autoclosure () -> String, timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    if try await condition() { return }
    Issue.record("timed out after \(timeout)s waiting for: \(message())", sourceLocation: sourceLocation)
    throw TestFailure("timed out waiting for: \(message())")
}

/// A Redis connection for assertions (one per test; used from the test's task only).
final class TestRedis: @unchecked Sendable {
    let connection: RedisConnection
    private let lock = NSLock()

    init() throws {
        let (_, url) = try TestServers.require()
        connection = try RedisConnection.connect(try RedisEndpoint(parsing: url), timeout: 5)
    }

    @discardableResult
    func run(_ args: String...) throws -> RedisReply {
        lock.lock()
        defer { lock.unlock() }
        return try connection.command(args)
    }

    func get(_ key: String) throws -> String? { try run("GET", key).text }
    func exists(_ key: String) throws -> Bool { try run("EXISTS", key) == .integer(1) }
}

/// Runs blocking work (many synchronous Redis or PostgreSQL calls) on a thread of its own and waits for it without
/// holding a thread of the cooperative pool, which has only two threads here and runs every test's Freshet.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
