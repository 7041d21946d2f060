import Foundation
import Freshet
import FreshetCore
import FreshetPostgres
import Logging
import Testing

/// A running Freshet (the same `FreshetApplication` the CLI starts) against a test database, with its own HTTP
/// port and Redis key prefix.
final class FreshetFixture: @unchecked Sendable {
    let app: FreshetApplication
    /// The HTTP port: Freshet binds port 0 and reports the one it got (no races between parallel tests).
    var port: Int { app.boundPort ?? 0 }
    let databaseURL: String
    let prefix: String
    private var task: Task<Void, Error>?
    private let finished = NSLock()
    private var _stopped = false
    /// Whether `run()` has returned.
    var stopped: Bool { finished.withLock { _stopped } }

    /// - Parameter tablesYAML: the `tables:` section; `{prefix}` in it is replaced by this fixture's key prefix.
    /// `http` lines go under `http:` (indented by the caller with two spaces).
    init(
        databaseURL: String, prefix: String = TestServers.uniquePrefix(), tablesYAML: String, http: String = "",
        redisURL: String? = nil, redis redisLines: String = "", extraYAML: String = "", install: Bool = true,
        heartbeat: Double = 1, metrics: Bool = false, postgres postgresLines: String = "", redisTopology: String? = nil
    ) throws {
        // `redisTopology` (e.g. `  cluster: [...]`) replaces the `url:` line.
        let redisWhere = try redisTopology ?? "  url: \(redisURL ?? TestServers.require().redis)"
        self.databaseURL = databaseURL
        self.prefix = prefix
        let yaml = """
            postgres:
              url: \(databaseURL)
            \(postgresLines)
            redis:
            \(redisWhere)
            \(redisLines)
            http:
              listen: 127.0.0.1:0
              heartbeat: \(heartbeat)
            \(http)
            shutdown_timeout: 2
            \(extraYAML)
            tables:
            \(tablesYAML.replacingOccurrences(of: "{prefix}", with: prefix))
            """
        let config = try FreshetConfig.parse(yaml: yaml)
        var logger = Logger(label: "freshet-test")
        logger.logLevel = ProcessInfo.processInfo.environment["FRESHET_TEST_LOG"] == nil ? .critical : .debug
        app = try FreshetApplication(config: config, options: RunOptions(installTriggers: install, metrics: metrics ? TestMetrics.shared : nil, signals: []), logger: logger)
    }

    /// Starts the app and waits until it listens, ready or not.
    func launch() async throws {
        let app = self.app
        task = Task {
            defer { self.finished.withLock { self._stopped = true } }
            try await app.run()
        }
        try await eventually("Freshet listens") {
            if stopped { throw TestFailure("Freshet stopped during start") }
            return app.boundPort != nil
        }
    }

    /// Starts the app and waits until `/readyz` would answer 200.
    func start() async throws {
        let app = self.app
        task = Task {
            defer { self.finished.withLock { self._stopped = true } }
            try await app.run()
        }
        try await eventually("Freshet ready (not ready because: \(app.notReadyReasons))", timeout: 20) {
            if stopped { throw TestFailure("Freshet stopped during start") }
            guard app.notReadyReasons.isEmpty, app.boundPort != nil else { return false }
            let health = try? await httpGet(port: port, path: "/healthz")
            return health?.status == 200
        }
    }

    /// Runs until the app stops by itself; returns its error.
    func runToCompletion() async -> Error? {
        do {
            try await app.run()
            return nil
        } catch {
            return error
        }
    }

    /// Starts the app, runs `body`, and stops the app whether `body` threw or not.
    func running(_ body: (FreshetFixture) async throws -> Void) async throws {
        try await start()
        do {
            try await body(self)
        } catch {
            await stop()
            throw error
        }
        await stop()
    }

    func stop() async {
        await app.shutdown()
        _ = try? await task?.value
    }

    /// Opens `/events` with the given query and waits until the stream has started.
    func subscribe(_ query: String = "", headers: [String: String] = [:]) async throws -> SSEClient {
        let client = try SSEClient(port: port, path: "/events" + query, headers: headers)
        try await eventually("SSE stream open") { client.status != nil }
        try await eventually("subscriber registered") { app.hub.subscriberCount > 0 }
        return client
    }

    /// Runs SQL on a new connection to the test database, off the cooperative pool (two threads here, shared with
    /// every test's Freshet).
    func sql(_ statement: String) async throws {
        let url = databaseURL
        try await offThePool { try PGConnection.connect(url).execute(statement) }
    }
}

/// Parses an SSE message's data as JSON.
func json(_ message: SSEMessage) throws -> JSONObject {
    guard case .object(let object) = try JSONParser.parse(message.data) else { throw TestFailure("not an object: \(message.data)") }
    return object
}
