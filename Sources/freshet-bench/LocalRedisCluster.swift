import Foundation
import FreshetCore
import FreshetRedis
import Glibc

/// A Redis Cluster of three masters (no replicas, so that it does the same work as one standalone Redis) started
/// by `--redis-cluster` from Debian's redis-server, on free loopback ports under the bench's scratch directory.
final class LocalRedisCluster {
    let ports: [Int]
    private var processes: [Process] = []

    var endpoints: [RedisEndpoint] { ports.map { RedisEndpoint(address: .tcp(host: "127.0.0.1", port: $0)) } }

    init(directory: String, masters: Int = 3, log: (String) -> Void) throws {
        var ports: [Int] = []
        while ports.count < masters {
            let port = LoopbackSocket.freePort()
            // The cluster bus listens on port + 10000.
            if port + 10000 <= 65535, !ports.contains(port), LoopbackSocket.isFree(port + 10000) { ports.append(port) }
        }
        self.ports = ports
        let dir = directory + "/redis-cluster"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        log("starting a Redis Cluster of \(masters) masters on 127.0.0.1:\(ports.map(String.init).joined(separator: ","))")
        for port in ports {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [
                "redis-server", "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", "\(dir)/nodes-\(port).conf", "--cluster-node-timeout", "2000", "--dir", dir,
                "--dbfilename", "dump-\(port).rdb", "--save", "", "--appendonly", "no", "--logfile", "\(dir)/node-\(port).log",
            ]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            processes.append(p)
        }
        try waitFor("the nodes answer") {
            ports.allSatisfy { (try? RedisConnection.connect(RedisEndpoint(address: .tcp(host: "127.0.0.1", port: $0)), timeout: 1).command(["PING"])) == .status("PONG") }
        }
        let create = Process()
        create.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        create.arguments = ["redis-cli", "--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + ["--cluster-replicas", "0", "--cluster-yes"]
        create.standardOutput = FileHandle.nullDevice
        create.standardError = FileHandle.nullDevice
        try create.run()
        create.waitUntilExit()
        guard create.terminationStatus == 0 else { throw BenchError("redis-cli --cluster create exited \(create.terminationStatus)") }
        try waitFor("cluster_state:ok on every node") {
            ports.allSatisfy { port in
                let info = try? RedisConnection.connect(RedisEndpoint(address: .tcp(host: "127.0.0.1", port: port)), timeout: 1).command(["CLUSTER", "INFO"])
                return info?.text?.contains("cluster_state:ok") == true
            }
        }
    }

    private func waitFor(_ what: String, _ condition: () -> Bool) throws {
        for _ in 0..<300 {
            if condition() { return }
            usleep(50_000)
        }
        throw BenchError("Redis Cluster: timed out waiting for \(what)")
    }

    func stop() {
        for p in processes { kill(p.processIdentifier, SIGKILL) }
        processes.removeAll()
    }

    deinit { stop() }
}
