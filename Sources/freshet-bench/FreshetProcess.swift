import Foundation
import Glibc

/// A Freshet started by the bench (`freshet run --config …`), so that its start-up time, CPU and memory can be read
/// from `/proc/PID`.
final class FreshetProcess {
    let process: Process
    let port: Int
    let logPath: String
    /// Seconds from spawn to the first `/readyz` 200.
    private(set) var startToReady: Double = .nan

    /// Writes the config, starts Freshet and waits (at most `timeout` seconds) until `/readyz` says 200.
    init(executable: String, config: String, port: Int, directory: String, name: String = "freshet", timeout: Double = 30) throws {
        let configPath = directory + "/\(name)-bench.yml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        logPath = directory + "/\(name).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        log.seekToEndOfFile()
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["run", "--config", configPath]
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = nil  // the config file says where; do not let the bench's env override it
        environment["REDIS_URL"] = nil
        environment["FRESHET_LISTEN"] = nil
        process.environment = environment
        process.standardOutput = log
        process.standardError = log
        self.port = port
        let start = monotonicNanos()
        try process.run()
        let deadline = start + UInt64(timeout * 1e9)
        while monotonicNanos() < deadline {
            if HTTPProbe.status(port: port, path: "/readyz") == 200 {
                startToReady = Double(monotonicNanos() - start) / 1e9
                return
            }
            guard process.isRunning else { break }
            usleep(2_000)
        }
        let tail = (try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(2000) ?? ""
        stop()
        throw BenchError("Freshet did not become ready within \(timeout)s; its log ends with:\n\(tail)")
    }

    var pid: Int32 { process.processIdentifier }

    /// CPU seconds (user + system) used so far.
    var cpuSeconds: Double { ProcStats.cpuSeconds(pid: pid) }
    /// Resident memory now, in MB.
    var rssMB: Double { ProcStats.statusField("VmRSS", pid: pid) / 1024 }
    /// Peak resident memory, in MB.
    var peakRSSMB: Double { ProcStats.statusField("VmHWM", pid: pid) / 1024 }

    /// Sends SIGTERM and waits for the exit (SIGKILL after 15 s).
    func stop() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = monotonicNanos() + 15_000_000_000
        while process.isRunning && monotonicNanos() < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }
}

/// Reads a process's CPU time and memory from `/proc`.
enum ProcStats {
    static func cpuSeconds(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return .nan }
        // Fields after "comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
    static func statusField(_ name: String, pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return .nan }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            return Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? .nan
        }
        return .nan
    }
}

/// A minimal blocking HTTP/1.1 GET to 127.0.0.1, for `/readyz` polling.
enum HTTPProbe {
    static func status(port: Int, path: String) -> Int? {
        guard case .success(let fd) = LoopbackSocket.connect(port: port) else { return nil }
        defer { close(fd) }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 12 else { return nil }
        return Int(String(decoding: buffer[9..<12], as: UTF8.self))
    }
}

/// A bench failure with a message for the operator.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
