import FreshetCore
import Testing

/// Redis Cluster routing rules, without a server.
struct RedisClusterTests {
    /// The vectors of the design notes, checked there with `CLUSTER KEYSLOT` on Redis 7.0.
    @Test(arguments: [
        ("123456789", 12739), ("foo", 12182), ("user:42", 15880), ("fr:{user:42}:profile", 15880),
        ("fr:{}:x", 1361), ("{t}a", 15891),
    ])
    func hashSlotsMatchRedis(key: String, slot: Int) {
        #expect(HashSlot.of(key) == slot)
    }

    @Test func aHashTagIsTheTextUpToTheFirstClosingBrace() {
        #expect(HashSlot.of("{user:42}") == HashSlot.of("user:42"))
        #expect(HashSlot.of("a{user:42}b{other}") == HashSlot.of("user:42"))
        #expect(HashSlot.of("a{b") == HashSlot.of("a{b"))  // no closing brace: the whole key
        #expect(HashSlot.of("{}{t}") != HashSlot.of("t"))  // an empty first tag: the whole key
        #expect(HashSlot.of("freshet:{slot_a}:position") == HashSlot.of("slot_a"))
    }

    @Test func redirectsParseIPv4IPv6AndHostNames() {
        #expect(RedisRedirect(reply: "MOVED 3999 127.0.0.1:6381") == RedisRedirect(kind: .moved, slot: 3999, address: .init(host: "127.0.0.1", port: 6381)))
        #expect(RedisRedirect(reply: "ASK 3999 ::1:6381") == RedisRedirect(kind: .ask, slot: 3999, address: .init(host: "::1", port: 6381)))
        #expect(RedisRedirect(reply: "ASK 1 [fe80::2]:7000")?.address == .init(host: "fe80::2", port: 7000))
        #expect(RedisRedirect(reply: "MOVED 12 redis-0.cache.internal:6379")?.address == .init(host: "redis-0.cache.internal", port: 6379))
        // An empty host means the host that was asked.
        #expect(RedisRedirect(reply: "MOVED 12 :6380", askedHost: "10.0.0.7")?.address == .init(host: "10.0.0.7", port: 6380))
        #expect(RedisRedirect(reply: "MOVED 12 :6380") == nil)
        for bad in ["MOVED", "MOVED 16384 127.0.0.1:1", "MOVED x 127.0.0.1:1", "MOVED 1 127.0.0.1", "READONLY You can't write", "moved 1 a:1", "MOVED 1 a:0"] {
            #expect(RedisRedirect(reply: bad) == nil, "\(bad)")
        }
        #expect(RedisNodeAddress(host: "::1", port: 7000).description == "[::1]:7000")
    }

    @Test func theSlotMapFollowsRangesAndMoves() {
        let a = RedisNodeAddress(host: "127.0.0.1", port: 30001)
        let b = RedisNodeAddress(host: "127.0.0.1", port: 30002)
        var map = ClusterSlotMap(ranges: [(0, 8191, a), (8192, 16383, b)])
        #expect(map.masters == [a, b])
        #expect(map.master(forSlot: 0) == a && map.master(forSlot: 16383) == b)
        #expect(map.master(forKey: "foo") == b)  // slot 12182
        #expect(map.unservedSlots == 0)
        map.assign(slot: 12182, to: a)
        #expect(map.master(forKey: "foo") == a)
        #expect(map != ClusterSlotMap(ranges: [(0, 8191, a), (8192, 16383, b)]))
        let partial = ClusterSlotMap(ranges: [(0, 99, a)])
        #expect(partial.unservedSlots == 16284 && partial.master(forSlot: 100) == nil)
        // A master that lost all its slots is no longer listed.
        var moved = ClusterSlotMap(ranges: [(0, 0, a), (1, 16383, b)])
        moved.assign(slot: 0, to: b)
        #expect(moved.masters == [b])
    }

    @Test func groupingByNodeKeepsTheBatchOrderWithinEachNode() {
        let batch: [(index: Int, node: String)] = [(0, "b"), (1, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "b")]
        let groups = groupByNode(batch)
        #expect(groups.map(\.node) == ["b", "a", "c"])
        #expect(groups.map(\.indices) == [[0, 2, 5], [1, 4], [3]])
    }
}
