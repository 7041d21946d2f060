/// Redis Cluster's routing rules as values: the hash slot of a key, the `MOVED`/`ASK` redirections, the map from
/// slot to master, and the grouping of a batch by node. No I/O: the cluster client in FreshetRedis uses them.

/// The hash slot of a key: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
///
/// The hash tag is the text between the first `{` and the first `}` after it, when that text is not empty
/// (`fr:{user:42}:profile` hashes `user:42`; `fr:{}:x` hashes the whole key), as the cluster specification says.
public enum HashSlot {
    public static let count = 16384

    public static func of(_ key: String) -> Int {
        var bytes = Array(key.utf8)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
           let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            bytes = Array(bytes[(open + 1)..<close])
        }
        return Int(crc16(bytes)) & (count - 1)
    }

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0.
    static func crc16(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }
}

/// A node's address as Redis reports it (`127.0.0.1:30001`, `::1:30001`, `redis-0.internal:6379`).
public struct RedisNodeAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, splitting at the *last* colon (Redis prints IPv6 addresses without brackets; bracketed
    /// ones are accepted too). An empty host is `defaultHost` (Redis's "the host you asked").
    public init?(parsing text: Substring, defaultHost: String? = nil) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty {
            guard let defaultHost else { return nil }
            host = defaultHost
        }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A `MOVED` or `ASK` error reply: the slot lives (for good, or for this one command) on another node.
public struct RedisRedirect: Sendable, Equatable {
    public enum Kind: String, Sendable { case moved, ask }

    public var kind: Kind
    public var slot: Int
    public var address: RedisNodeAddress

    public init(kind: Kind, slot: Int, address: RedisNodeAddress) {
        self.kind = kind
        self.slot = slot
        self.address = address
    }

    /// Parses `MOVED 3999 127.0.0.1:6381` / `ASK 3999 ::1:6381`; nil for any other reply. `askedHost` fills in an
    /// empty host (`MOVED 3999 :6381`).
    public init?(reply: String, askedHost: String? = nil) {
        let parts = reply.split(separator: " ")
        guard parts.count == 3, let kind = Kind(rawValue: parts[0].lowercased()), ["MOVED", "ASK"].contains(parts[0]),
              let slot = Int(parts[1]), (0..<HashSlot.count).contains(slot),
              let address = RedisNodeAddress(parsing: parts[2], defaultHost: askedHost) else { return nil }
        self.init(kind: kind, slot: slot, address: address)
    }
}

/// Which master serves each hash slot.
public struct ClusterSlotMap: Sendable, Equatable {
    /// Slot → index in `nodes`; -1 when no master serves it.
    private var owners: [Int32]
    public private(set) var nodes: [RedisNodeAddress]

    /// An empty map: no slot is served.
    public init() {
        owners = Array(repeating: -1, count: HashSlot.count)
        nodes = []
    }

    /// A map from `CLUSTER SLOTS` ranges: (first slot, last slot, master).
    public init(ranges: [(first: Int, last: Int, master: RedisNodeAddress)]) {
        self.init()
        for range in ranges where range.first <= range.last && range.first >= 0 && range.last < HashSlot.count {
            let index = self.index(of: range.master)
            for slot in range.first...range.last { owners[slot] = index }
        }
    }

    public func master(forSlot slot: Int) -> RedisNodeAddress? {
        let index = owners[slot]
        return index < 0 ? nil : nodes[Int(index)]
    }

    public func master(forKey key: String) -> RedisNodeAddress? { master(forSlot: HashSlot.of(key)) }

    /// The masters serving at least one slot, in the order first seen.
    public var masters: [RedisNodeAddress] {
        var used = Set<Int32>()
        for owner in owners where owner >= 0 { used.insert(owner) }
        return nodes.indices.filter { used.contains(Int32($0)) }.map { nodes[$0] }
    }

    /// Slots no master serves.
    public var unservedSlots: Int { owners.reduce(0) { $0 + ($1 < 0 ? 1 : 0) } }

    /// Points one slot at a node (a `MOVED` reply).
    public mutating func assign(slot: Int, to node: RedisNodeAddress) {
        owners[slot] = index(of: node)
    }

    private mutating func index(of node: RedisNodeAddress) -> Int32 {
        if let i = nodes.firstIndex(of: node) { return Int32(i) }
        nodes.append(node)
        return Int32(nodes.count - 1)
    }

    public static func == (a: ClusterSlotMap, b: ClusterSlotMap) -> Bool {
        (0..<HashSlot.count).allSatisfy { a.master(forSlot: $0) == b.master(forSlot: $0) }
    }
}

/// Groups a batch's commands by the node each goes to, keeping the batch's order within each node (so two
/// commands on one key, which always share a node, keep theirs). Returns the nodes in the order first used.
public func groupByNode<Node: Hashable>(_ destinations: [(index: Int, node: Node)]) -> [(node: Node, indices: [Int])] {
    var order: [Node] = []
    var groups: [Node: [Int]] = [:]
    for (index, node) in destinations {
        if groups[node] == nil { order.append(node) }
        groups[node, default: []].append(index)
    }
    return order.map { ($0, groups[$0]!) }
}
