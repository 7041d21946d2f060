import Foundation
import FreshetPostgres
import Logging
import Synchronization
import Testing

/// The writer election's lock on a real PostgreSQL.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct WriterLockTests {
    /// A lock session that ends (the server crashed, restarted, or ended it) is seen from the connection's socket,
    /// before the once-a-second `SELECT 1` would notice: the writer's fence closes before its sources can reconnect.
    @Test func theWatchSeesTheSessionEndFromItsSocket() async throws {
        try await TestServers.withDatabase { url in
            let name = "freshet test \(TestServers.uniquePrefix())"
            let lock = WriterLock(conninfo: url, name: name, takeover: 5, logger: Logger(label: "test"))
            #expect(try await offThePool { try lock.acquire(stopped: { false }) })
            let lostAt = Mutex<ContinuousClock.Instant?>(nil)
            let watchStarted = ContinuousClock.now
            Thread.detachNewThread {
                if lock.watch(stopped: { false }) { lostAt.withLock { $0 = .now } }
            }
            // The session holding the advisory lock (its 64-bit key's low 32 bits are the objid).
            let terminated = try await offThePool {
                try PGConnection.connect(url).query(
                    "SELECT pg_terminate_backend(pid)::text FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = (hashtext($1)::bigint & 4294967295)::text::oid",
                    parameters: [name]
                )
            }
            #expect(terminated.first?.first == "true")
            let killed = ContinuousClock.now
            try await eventually("the watch saw the session end") { lostAt.withLock { $0 } != nil }
            let seen = try #require(lostAt.withLock { $0 })
            #expect(seen - killed < .milliseconds(900) || killed - watchStarted > .milliseconds(900), "seen \(seen - killed) after the kill")
        }
    }
}
