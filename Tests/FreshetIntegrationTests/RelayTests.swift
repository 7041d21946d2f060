import Foundation
import FreshetCore
import FreshetPostgres
import Glibc
import Testing

/// `http.relay: redis`: several Freshet processes on one PostgreSQL and one Redis. One writer (the advisory lock),
/// events through a Redis Stream, every process serving them with the same ids, resume on any process, takeover.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"), .serialized)
struct RelayTests {
    /// `user:N` deleted on change.
    static let tables = FaultTests.tables
    static let relay = "  relay: redis\n  relay_takeover: 2"

    func ids(_ client: SSEClient) -> [String] { client.changes.compactMap(\.id) }

    func fill(_ prefix: String, _ ids: ClosedRange<Int>) throws {
        let redis = try TestRedis()
        for id in ids { try redis.run("SET", "\(prefix):user:\(id)", "cached") }
    }

    func present(_ prefix: String, _ ids: ClosedRange<Int>) throws -> [Int] {
        let redis = try TestRedis()
        return try ids.filter { try redis.exists("\(prefix):user:\($0)") }
    }

    @Test func oneWriterEveryProcessServesEachChangeOnceAndResumesTheOthersIDs() async throws {
        try await ReplicationTests.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' FROM generate_series(1, 20) g") }
            let prefix = TestServers.uniquePrefix()
            let a = try FreshetFixture(databaseURL: url, prefix: prefix, tablesYAML: Self.tables, http: Self.relay, postgres: ReplicationTests.source(slot))
            let b = try FreshetFixture(databaseURL: url, prefix: prefix, tablesYAML: Self.tables, http: Self.relay, postgres: ReplicationTests.source(slot))
            try await a.start()
            // Writer and ready: its slot is made and the first start's flush is done (it would delete keys filled before).
            try await eventually("the first process is the writer, ready") { a.app.writing && a.app.notReadyReasons.isEmpty }
            try await b.start()
            #expect(!b.app.writing, "one writer at a time")
            #expect(b.app.notReadyReasons.isEmpty, "a standby is ready")
            try fill(prefix, 1...20)
            let onA = try await a.subscribe()
            let onB = try await b.subscribe()
            try await a.sql("UPDATE users SET name = 'n' || id WHERE id <= 10")
            try await eventually("both processes serve the ten changes") { onA.changes.count == 10 && onB.changes.count == 10 }
            #expect(ids(onA) == ids(onB), "the same ids, in the same order")
            #expect(Set(ids(onA)).count == 10)
            #expect(try present(prefix, 1...10).isEmpty)
            #expect(try present(prefix, 11...20).count == 10)

            // A subscriber of A moves to B with its Last-Event-ID: exactly what it missed.
            let seen = ids(onA)[4]
            let moved = try SSEClient(port: b.port, path: "/events", headers: ["Last-Event-ID": seen])
            try await eventually("the five changes after \(seen)") { moved.changes.count == 5 }
            #expect(ids(moved) == Array(ids(onA)[5...]))
            #expect(!moved.messages.contains { $0.event == "resync" })

            // The writer stops: the standby takes over within relay_takeover and resumes from the slot.
            await a.stop()
            try await eventually("the standby took over", timeout: 6) { b.app.writing }
            try await b.sql("UPDATE users SET name = 'later' WHERE id > 15")
            try await eventually("five more changes on B") { onB.changes.count == 15 }
            #expect(Set(ids(onB)).count == 15, "nothing sent twice")
            try await eventually("their keys gone") { try present(prefix, 16...20).isEmpty }
            #expect(try present(prefix, 11...15).count == 5, "no flush on takeover")
            #expect(!onB.messages.contains { $0.event == "resync" })
            await b.stop()
        }
    }

    /// Two real `freshet run` processes: kill -9 of the writer during a stream of writes.
    @Test func killingTheWriterHandsOverWithinTheBoundAndLosesNothing() async throws {
        try await ReplicationTests.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' FROM generate_series(1, 60) g") }
            let prefix = TestServers.uniquePrefix()
            let (_, redisURL) = try TestServers.require()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-relay-\(prefix)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            func start(_ name: String) throws -> (CLIProcess, Int) {
                let port = TestServers.freePort()
                let config = """
                    postgres: {url: "\(url)", source: replication, replication: {slot: \(slot), publication: \(slot)}}
                    redis: {url: "\(redisURL)"}
                    http: {listen: "127.0.0.1:\(port)", relay: redis, relay_takeover: 2, heartbeat: 1}
                    log: {level: info}
                    tables:
                    \(Self.tables.replacingOccurrences(of: "{prefix}", with: prefix))
                    """
                let path = dir.appendingPathComponent("\(name).yml").path
                try config.write(toFile: path, atomically: true, encoding: .utf8)
                return (try CLIProcess(["run", "--config", path]), port)
            }
            func metric(_ port: Int, _ name: String) async -> Double? {
                guard let body = try? await httpGet(port: port, path: "/metrics").body else { return nil }
                return promSample(body, name)
            }
            let (a, portA) = try start("a")
            defer { a.signal(SIGKILL) }
            try await eventually("A is the writer") { await metric(portA, "freshet_writer") == 1 }
            let (b, portB) = try start("b")
            defer { b.signal(SIGKILL) }
            try await eventually("B stands by and is ready") {
                (try? await httpGet(port: portB, path: "/readyz").status) == 200
            }
            #expect(await metric(portB, "freshet_writer") == 0)
            try fill(prefix, 1...60)
            let subscriber = try SSEClient(port: portB, path: "/events")
            try await eventually("subscribed") { subscriber.status == 200 }

            let writes = Task.detached {
                let db = try PGConnection.connect(url)
                for id in 1...60 {
                    try db.execute("UPDATE users SET name = 'v' WHERE id = \(id)")
                    try await Task.sleep(for: .milliseconds(25))
                }
            }
            try await eventually("some changes through A") { subscriber.changes.count >= 10 }
            // The standby wrote nothing to Redis: it only read the stream.
            #expect(await metric(portB, #"freshet_redis_commands_total{action="delete",result="ok"}"#) ?? 0 == 0)
            a.signal(SIGKILL)
            let killed = ContinuousClock.now
            try await eventually("B took over", timeout: 10) { await metric(portB, "freshet_writer") == 1 }
            let takeover = ContinuousClock.now - killed
            #expect(takeover < .seconds(4), "within relay_takeover (2 s) and a poll: \(takeover)")
            try await writes.value
            try await eventually("every change once on B", timeout: 20) { subscriber.changes.count >= 60 }
            #expect(subscriber.changes.count == 60)
            #expect(Set(ids(subscriber)).count == 60, "nothing sent twice")
            #expect(!subscriber.messages.contains { $0.event == "resync" })
            try await eventually("zero stale keys") { try present(prefix, 1...60).isEmpty }
            #expect(await metric(portB, #"freshet_redis_commands_total{action="delete",result="ok"}"#) ?? 0 > 0)
            b.signal(SIGTERM)
            _ = try await b.wait()
        }
    }
}
