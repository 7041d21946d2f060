import Foundation
import FreshetCore
import FreshetRedis
import Glibc
import Testing

/// One master, one replica and three sentinels (Debian's redis-server, loopback, free ports, down-after 1 s) for one
/// test. The sentinels call the master `mymaster`.
final class OwnRedisSentinel: @unchecked Sendable {
    let masterPort = TestServers.freePort()
    let replicaPort = TestServers.freePort()
    let sentinelPorts = [TestServers.freePort(), TestServers.freePort(), TestServers.freePort()]
    let dir: URL
    private var processes: [Process] = []

    /// The `redis:` lines of a Freshet configuration for this set.
    var configLines: String {
        """
          sentinel:
            nodes: [\(sentinelPorts.map { "\"redis://127.0.0.1:\($0)\"" }.joined(separator: ", "))]
            master: mymaster
        """
    }

    init() async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-sentinel-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try start(["--port", String(masterPort)], name: "master")
        try start(["--port", String(replicaPort), "--replicaof", "127.0.0.1", String(masterPort)], name: "replica")
        try await eventually("replica in sync") {
            (try? self.node(self.replicaPort).command(["INFO", "replication"]).text?.contains("master_link_status:up")) == true
        }
        for port in sentinelPorts {
            let conf = dir.appendingPathComponent("sentinel-\(port).conf")
            try """
                port \(port)
                bind 127.0.0.1
                dir \(dir.path)
                sentinel monitor mymaster 127.0.0.1 \(masterPort) 2
                sentinel down-after-milliseconds mymaster 1000
                sentinel failover-timeout mymaster 10000
                """.write(to: conf, atomically: true, encoding: .utf8)
            try start([conf.path, "--sentinel"], name: "sentinel-\(port)", plainArguments: true)
        }
        try await eventually("the sentinels know the replica and each other") {
            for port in self.sentinelPorts {
                guard case .array(let replicas)? = try? self.node(port).command(["SENTINEL", "replicas", "mymaster"]), replicas.count == 1,
                      case .array(let others)? = try? self.node(port).command(["SENTINEL", "sentinels", "mymaster"]), others.count == 2 else { return false }
            }
            return true
        }
    }

    private func start(_ arguments: [String], name: String, plainArguments: Bool = false) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir.path, "--dbfilename", "\(name).rdb",
                      "--logfile", dir.appendingPathComponent("\(name).log").path]
        p.arguments = ["redis-server"] + (plainArguments ? arguments + ["--logfile", dir.appendingPathComponent("\(name).log").path] : arguments + common)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        processes.append(p)
    }

    func node(_ port: Int) throws -> RedisConnection {
        try RedisConnection.connect(RedisEndpoint(address: .tcp(host: "127.0.0.1", port: port)), timeout: 2)
    }

    /// The master's port as the first sentinel names it.
    func currentMasterPort() throws -> Int? {
        guard case .array(let parts) = try node(sentinelPorts[0]).command(["SENTINEL", "get-master-addr-by-name", "mymaster"]),
              parts.count == 2 else { return nil }
        return parts[1].text.flatMap { Int($0) }
    }

    deinit {
        for p in processes { kill(p.processIdentifier, SIGKILL) }
        if ProcessInfo.processInfo.environment["FRESHET_KEEP_SERVERS"] == nil { try? FileManager.default.removeItem(at: dir) }
    }
}

/// A TLS-only redis-server (`--port 0 --tls-port`) with certificates made by `openssl` for the test: a CA, a server
/// certificate for 127.0.0.1 and localhost, a client certificate (the server requires one), and a second CA that
/// signed nothing here.
final class OwnTLSRedis: @unchecked Sendable {
    let port = TestServers.freePort()
    let dir: URL
    private var process: Process?

    var caFile: String { dir.appendingPathComponent("ca.pem").path }
    var otherCAFile: String { dir.appendingPathComponent("other-ca.pem").path }
    var clientCert: String { dir.appendingPathComponent("client.pem").path }
    var clientKey: String { dir.appendingPathComponent("client.key").path }

    init() async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try await makeTestCertificates(in: dir)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "redis-server", "--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", dir.path, "--tls-cert-file", "\(dir.path)/server.pem", "--tls-key-file", "\(dir.path)/server.key",
            "--tls-ca-cert-file", caFile, "--tls-auth-clients", "yes",
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        try await eventually("TLS Redis on \(port) answers") { (try? self.connection().command(["PING"])) == .status("PONG") }
    }

    /// A verified TLS connection with the client certificate.
    func connection() throws -> RedisConnection {
        let tls = try RedisTLSContext(RedisTLSSettings(ca: caFile, cert: clientCert, key: clientKey))
        return try RedisConnection.connect(RedisEndpoint(address: .tcp(host: "127.0.0.1", port: port), tls: true), tls: tls, timeout: 2)
    }

    deinit {
        if let process { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Makes, with `openssl`, in `dir`: `ca.pem` (+ key), `server.pem`/`server.key` for 127.0.0.1 and localhost signed by
/// it, `client.pem`/`client.key` signed by it, and `other-ca.pem`, a CA that signed nothing here.
func makeTestCertificates(in dir: URL) async throws {
    let script = """
        set -e
        cd '\(dir.path)'
        key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
        key ca.key; openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=freshet-test-ca
        key other-ca.key; openssl req -x509 -new -key other-ca.key -out other-ca.pem -days 2 -subj /CN=someone-else
        key server.key; openssl req -new -key server.key -out server.csr -subj /CN=127.0.0.1
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
        key client.key; openssl req -new -key client.key -out client.csr -subj /CN=freshet
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 2>/dev/null
        """
    let made = try await shell("bash", ["-c", script])
    guard made.status == 0 else { throw TestFailure("openssl: \(made.output)") }
}
