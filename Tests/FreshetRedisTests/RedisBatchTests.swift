import FreshetCore
@testable import FreshetRedis
import Testing

/// Planning a pipelined round trip.
struct RedisBatchTests {
    @Test func theLastOperationOnAKeyWinsAndAFlushEndsARun() {
        let jobs = [
            RedisJob(operations: [.unlink("a"), .set(key: "b", value: "1", ttlMilliseconds: nil)], event: nil),
            RedisJob(operations: [.set(key: "a", value: "2", ttlMilliseconds: nil), .unlinkMatching(pattern: "t:*")], event: nil),
            RedisJob(operations: [.unlink("a")], event: nil),
        ]
        #expect(RedisBatch.steps(for: jobs) == [
            .pipeline([.set(key: "b", value: "1", ttlMilliseconds: nil), .set(key: "a", value: "2", ttlMilliseconds: nil)]),
            .flush(pattern: "t:*"),
            .pipeline([.unlink("a")]),
        ])
    }
}
