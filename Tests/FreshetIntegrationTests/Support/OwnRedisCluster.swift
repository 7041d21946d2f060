import Foundation
import FreshetCore
import FreshetRedis
import Glibc
import Logging
import Testing

/// A Redis Cluster of Debian's redis-server (3 masters, 3 replicas, loopback, free ports, node timeout 2 s), started
/// once for a suite by the `.redisCluster` trait and reached in its tests through `OwnRedisCluster.current`.
final class OwnRedisCluster: @unchecked Sendable {
    @TaskLocal static var current: OwnRedisCluster?

    let ports: [Int]
    let dir: URL
    private let lock = NSLock()
    private var processes: [Int: Process] = [:]

    var seedURLs: [String] { ports.prefix(3).map { "redis://127.0.0.1:\($0)" } }
    /// The `redis:` lines of a Freshet configuration for this cluster.
    var configLines: String { "  cluster: [\(seedURLs.map { "\"\($0)\"" }.joined(separator: ", "))]" }

    init(nodes: Int = 6) async throws {
        ports = try Self.clusterPorts(nodes)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for port in ports { try startNode(port) }
        for port in ports {
            try await eventually("cluster node \(port) answers") { (try? self.node(port).command(["PING"])) == .status("PONG") }
        }
        let create = try await shell("redis-cli", ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + ["--cluster-replicas", "1", "--cluster-yes"])
        guard create.status == 0 else { throw TestFailure("redis-cli --cluster create failed: \(create.output.suffix(600))") }
        try await waitHealthy()
    }

    /// Ports whose cluster bus port (+10000) is free too.
    private static func clusterPorts(_ count: Int) throws -> [Int] {
        var ports: [Int] = []
        for _ in 0..<200 where ports.count < count {
            let port = TestServers.freePort()
            guard port + 10000 <= 65535, !ports.contains(port), !ports.contains(port + 10000), !ports.contains(port - 10000) else { continue }
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(port + 10000).bigEndian
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { ports.append(port) }
        }
        guard ports.count == count else { throw TestFailure("no free ports for a cluster") }
        return ports
    }

    func startNode(_ port: Int) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "redis-server", "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
            "--cluster-config-file", dir.appendingPathComponent("nodes-\(port).conf").path, "--cluster-node-timeout", "2000",
            "--cluster-replica-validity-factor", "0",
            "--dir", dir.path, "--dbfilename", "dump-\(port).rdb", "--save", "", "--appendonly", "no",
            "--logfile", dir.appendingPathComponent("node-\(port).log").path,
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        lock.withLock { processes[port] = p }
    }

    /// SIGKILL: a crashed master.
    func kill(_ port: Int) {
        lock.withLock {
            if let p = processes.removeValue(forKey: port) { Glibc.kill(p.processIdentifier, SIGKILL) }
        }
    }

    func stop() {
        lock.withLock {
            for p in processes.values { Glibc.kill(p.processIdentifier, SIGKILL) }
            processes.removeAll()
        }
        if ProcessInfo.processInfo.environment["FRESHET_KEEP_SERVERS"] == nil { try? FileManager.default.removeItem(at: dir) }
    }

    func node(_ port: Int) throws -> RedisConnection {
        try RedisConnection.connect(RedisEndpoint(address: .tcp(host: "127.0.0.1", port: port)), timeout: 2)
    }

    /// A client that routes by slot (Freshet's own cluster client), for reading and filling keys.
    func client() -> RedisTarget {
        makeRedisTarget(.cluster(seeds: ports.map { RedisEndpoint(address: .tcp(host: "127.0.0.1", port: $0)) }), tls: nil, timeout: 2, logger: Logger(label: "test"))
    }

    /// Waits until every running node says `cluster_state:ok` and sees three masters each with a replica.
    func waitHealthy(timeout: Double = 30) async throws {
        try await eventually("Redis Cluster healthy", timeout: timeout) {
            let running = self.lock.withLock { Array(self.processes.keys) }
            for port in running {
                guard case .string(let info)? = try? self.node(port).command(["CLUSTER", "INFO"]),
                      String(decoding: info, as: UTF8.self).contains("cluster_state:ok") else { return false }
                // A replica counts once it is in sync (one that never synced cannot take over).
                guard let replication = try? self.node(port).command(["INFO", "replication"]).text else { return false }
                if replication.contains("role:slave") && !replication.contains("master_link_status:up") { return false }
            }
            let masters = try self.masters()
            return masters.count == 3 && masters.allSatisfy { $0.replicas > 0 }
        }
    }

    /// The masters (port, node id, number of slots, replicas), from `CLUSTER NODES` on a running node.
    func masters() throws -> [(port: Int, id: String, slots: Int, replicas: Int)] {
        let running = lock.withLock { Array(processes.keys) }.sorted()
        var text: String?
        for port in running {
            if case .string(let b)? = try? node(port).command(["CLUSTER", "NODES"]) { text = String(decoding: b, as: UTF8.self); break }
        }
        guard let text else { throw TestFailure("no cluster node answers") }
        let lines = text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        var result: [(port: Int, id: String, slots: Int, replicas: Int)] = []
        for fields in lines where fields.count >= 8 && fields[2].contains("master") && !fields[2].contains("fail") {
            let port = Int(fields[1].split(separator: ":")[1].split(separator: "@")[0]) ?? 0
            var slots = 0
            for range in fields.dropFirst(8) where !range.hasPrefix("[") {
                let ends = range.split(separator: "-").compactMap { Int($0) }
                slots += ends.count == 2 ? ends[1] - ends[0] + 1 : 1
            }
            guard slots > 0 else { continue }
            let replicas = lines.filter { $0.count >= 4 && $0[3] == fields[0] && !$0[2].contains("fail") }.count
            result.append((port, fields[0], slots, replicas))
        }
        return result
    }

    /// The master's port serving `key` (`CLUSTER KEYSLOT` is not needed: Freshet's hash is tested against it).
    func masterPort(for key: String) throws -> Int {
        guard case .array(let ranges) = try node(lock.withLock { Array(processes.keys) }.sorted()[0]).command(["CLUSTER", "SLOTS"]) else {
            throw TestFailure("no CLUSTER SLOTS")
        }
        let slot = HashSlot.of(key)
        for case .array(let r) in ranges {
            if case .integer(let first) = r[0], case .integer(let last) = r[1], first...last ~= Int64(slot), case .array(let m) = r[2], case .integer(let port) = m[1] {
                return Int(port)
            }
        }
        throw TestFailure("slot \(slot) not served")
    }

    deinit { stop() }
}

/// Starts one Redis Cluster for a suite and stops it when the suite ends.
struct RedisClusterTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard TestServers.enabled else { return try await function() }
        let cluster = try await OwnRedisCluster()
        defer { cluster.stop() }
        try await OwnRedisCluster.$current.withValue(cluster) { try await function() }
    }
}

extension Trait where Self == RedisClusterTrait {
    /// The suite's tests share one 3-master, 3-replica Redis Cluster (`OwnRedisCluster.current`).
    static var redisCluster: Self { Self() }
}

/// Runs a program to completion off the cooperative pool; returns its exit status and output (stdout and stderr).
func shell(_ program: String, _ arguments: [String], input: String? = nil) async throws -> (status: Int32, output: String) {
    try await offThePool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [program] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
