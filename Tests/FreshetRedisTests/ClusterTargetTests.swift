import FreshetCore
@testable import FreshetRedis
import Testing

/// Reading `CLUSTER SLOTS` and keeping a failover's replay history, without a server.
struct ClusterSlotsReplyTests {
    @Test func readsRangesMastersAndEmptyHosts() throws {
        func node(_ host: String, _ port: Int64) -> RedisReply { .array([.string(Array(host.utf8)), .integer(port), .string(Array("id".utf8))]) }
        let reply = RedisReply.array([
            .array([.integer(0), .integer(5460), node("127.0.0.1", 30001), node("127.0.0.1", 30004)]),
            .array([.integer(5461), .integer(10922), node("", 30002)]),
            .array([.integer(10923), .integer(16383), node("::1", 30003)]),
        ])
        let ranges = try #require(ClusterSlotsReply.ranges(reply, askedHost: "10.1.1.1"))
        #expect(ranges.map(\.first) == [0, 5461, 10923])
        #expect(ranges.map(\.master) == [
            RedisNodeAddress(host: "127.0.0.1", port: 30001), RedisNodeAddress(host: "10.1.1.1", port: 30002), RedisNodeAddress(host: "::1", port: 30003),
        ])
        #expect(ClusterSlotsReply.ranges(.error("ERR This instance has cluster support disabled"), askedHost: "x") == nil)
        #expect(ClusterSlotsReply.ranges(.array([.array([.integer(0)])]), askedHost: "x") == nil)
    }
}

struct ReplayHistoryTests {
    @Test func keepsTheWindowInOrder() {
        var history = ReplayHistory(window: 15, limit: 100)
        let start = ContinuousClock.now
        history.record([.unlink("a"), .unlink("b")], now: start)
        history.record([.set(key: "a", value: "2", ttlMilliseconds: nil)], now: start + .seconds(10))
        #expect(history.operations == [.unlink("a"), .unlink("b"), .set(key: "a", value: "2", ttlMilliseconds: nil)])
        // An outage that follows does not age the window: it is the one before the failure.
        #expect(history.operations.count == 3)
        // A batch 16 s after the first leaves the first out.
        history.record([.unlink("c")], now: start + .seconds(16))
        #expect(history.operations == [.set(key: "a", value: "2", ttlMilliseconds: nil), .unlink("c")])
        #expect(history.complete(now: start + .seconds(16)))
    }

    @Test func pastTheLimitItIsIncompleteForAWindow() {
        var history = ReplayHistory(window: 15, limit: 3)
        let start = ContinuousClock.now
        history.record([.unlink("a"), .unlink("b")], now: start)
        history.record([.unlink("c"), .unlink("d")], now: start + .seconds(1))
        #expect(history.operationCount == 2)
        #expect(!history.complete(now: start + .seconds(2)))
        #expect(history.complete(now: start + .seconds(17)))
    }

    @Test func aZeroWindowKeepsNothing() {
        var history = ReplayHistory(window: 0, limit: 3)
        history.record([.unlink("a")], now: .now)
        #expect(history.operationCount == 0)
    }
}
