import Foundation
import FreshetCore
import FreshetPostgres
import FreshetRedis
import Testing

/// A single transaction that updates 200,000 rows (`FRESHET_LOAD_ROWS` to change it): every key is invalidated,
/// Freshet's memory stays bounded, and a subscriber gets the events or one resync.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct LoadTests {
    static let rows = Int(ProcessInfo.processInfo.environment["FRESHET_LOAD_ROWS"] ?? "") ?? 200_000

    /// Peak resident memory of a process, in MB (VmHWM).
    func peakRSS(_ pid: Int32) throws -> Double {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        return (Double(line.split(separator: " ").dropFirst().first { !$0.isEmpty } ?? "0") ?? 0) / 1024
    }

    @Test func bulkUpdateInvalidatesEveryKeyWithBoundedMemory() async throws {
        try await TestServers.withDatabase { url in
            let db = try PGConnection.connect(url)
            try db.execute("CREATE TABLE items (id int PRIMARY KEY, v int); INSERT INTO items SELECT g, 0 FROM generate_series(1, \(Self.rows)) g")
            let redis = try await OwnRedis()
            let port = TestServers.freePort()
            let config = try writeConfig("""
                postgres: {url: "\(url)"}
                redis: {url: "\(redis.url)"}
                http: {listen: "127.0.0.1:\(port)"}
                tables: [{name: items, redis: [{key: "item:{id}"}]}]
                """)
            let run = try CLIProcess(["run", "--config", config])
            defer { run.signal(SIGKILL) }
            try await eventually("ready", timeout: 30) { (try? await httpGet(port: port, path: "/readyz"))?.status == 200 }
            // Fill the cache: one key per row, pipelined.
            // 200,000 blocking SETs: on a thread of their own, not on the cooperative pool (two threads here) that the
            // other tests' Freshets run on.
            let fill = try redis.connection()
            try await offThePool {
                for start in stride(from: 1, through: Self.rows, by: 5000) {
                    let end = min(start + 4999, Self.rows)
                    for id in start...end { try fill.append(["SET", "item:\(id)", "old"]) }
                    for _ in start...end { _ = try fill.reply() }
                }
            }
            #expect(try redis.run("DBSIZE") == .integer(Int64(Self.rows)))
            let client = try SSEClient(port: port, path: "/events", keepRaw: false)
            try await eventually("subscribed") { client.status == 200 }
            let idleRSS = try peakRSS(run.process.processIdentifier)

            let started = ContinuousClock.now
            try db.execute("UPDATE items SET v = v + 1")
            let committed = ContinuousClock.now
            try await eventually("every key invalidated", timeout: 240) {
                try redis.run("DBSIZE") == .integer(0)
            }
            let invalidated = ContinuousClock.now
            // The subscriber keeps up, or is dropped (closed, with a resync when it can still be written). A dropped
            // EventSource reconnects with Last-Event-ID: it must then get the rest of the events or one resync.
            try await eventually("the subscriber got every event, or was dropped", timeout: 120) {
                client.changes.count == Self.rows || client.closed
            }
            var resynced = client.messages.contains { $0.event == "resync" }
            if client.changes.count < Self.rows && !resynced {
                let last = try #require(client.changes.last?.id)
                let again = try SSEClient(port: port, path: "/events", headers: ["Last-Event-ID": last], keepRaw: false)
                try await eventually("rest of the events or a resync after reconnecting", timeout: 60) {
                    again.messages.contains { $0.event == "resync" } || client.changes.count + again.changes.count >= Self.rows
                }
                resynced = again.messages.contains { $0.event == "resync" }
            }
            let peak = try peakRSS(run.process.processIdentifier)
            print("load: \(Self.rows) rows; commit took \(committed - started); invalidated \(invalidated - committed) after commit; RSS idle \(idleRSS) MB, peak \(peak) MB; SSE \(client.changes.count) events, resync: \(resynced)")
            #expect(peak < 300, "peak RSS \(peak) MB")
        }
    }
}
