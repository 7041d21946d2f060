import Foundation
import FreshetCore
import FreshetRedis
import Logging
import Synchronization
import Testing

/// The Redis writer on its own, against a real Redis.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct RedisWriterTests {
    /// A publisher that does not keep up: completions past the buffer are dropped, counted, and followed by one
    /// `events_dropped` resync marker, so subscribers never miss events silently.
    @Test func completionsPastTheBufferAreDroppedAndAResyncFollows() async throws {
        let (_, url) = try TestServers.require()
        let writer = RedisWriter(
            endpoint: try RedisEndpoint(parsing: url), timeout: 2, maxPending: 100_000, shutdownTimeout: 2,
            logger: Logger(label: "test"), completionBuffer: 2
        )
        let run = Task { try await writer.run() }
        let prefix = TestServers.uniquePrefix()
        for i in 0..<20 {  // one job a round trip apart: more batches than the buffer holds, nobody reading
            writer.submit(RedisJob(operations: [.unlink("\(prefix):\(i)")], event: nil))
            try await eventually("job \(i) applied (pending \(writer.pending), \(writer.notReadyReasons))") { writer.pending == 0 }
        }
        // The publisher catches up: the marker goes out as soon as there is room.
        let seen = Mutex<[RedisCompletion]>([])
        let reader = Task { for await batch in writer.completions { seen.withLock { $0 += batch } } }
        try await eventually("the resync marker") { seen.withLock { $0.contains { $0.job.repairCause == "events_dropped" } } }
        writer.stop()
        _ = try? await run.value
        reader.cancel()
        let all = seen.withLock { $0 }
        #expect(all.count < 20)  // the rest was dropped
        let marker = try #require(all.firstIndex { $0.job.repairCause == "events_dropped" })
        #expect(marker >= 2)  // after what the buffer held
    }

    /// `http.relay: redis`: a writer whose fence is closed (its process lost the writer lock) applies nothing; once it
    /// is open, the waiting job is applied.
    @Test func aClosedFenceAppliesNothing() async throws {
        let (_, url) = try TestServers.require()
        let fence = WriterFence()
        let writer = RedisWriter(
            topology: .standalone(try RedisEndpoint(parsing: url)), tls: nil, timeout: 2, maxPending: 100_000, shutdownTimeout: 2,
            logger: Logger(label: "test"), fence: fence
        )
        let run = Task { try await writer.run() }
        let redis = try TestRedis()
        let key = "\(TestServers.uniquePrefix()):fenced"
        try redis.run("SET", key, "cached")
        writer.submit(RedisJob(operations: [.unlink(key)], event: nil))
        // Closed: the job waits. Watched for a while (the writer loops every 50 ms meanwhile).
        let watchedUntil = ContinuousClock.now + .milliseconds(500)
        while ContinuousClock.now < watchedUntil {
            #expect(try redis.exists(key), "applied while the fence was closed")
            #expect(writer.pending == 1)
            try await Task.sleep(for: .milliseconds(50))
        }
        fence.open()
        try await eventually("applied once the fence is open") { try !redis.exists(key) }
        writer.stop()
        _ = try? await run.value
    }
}

