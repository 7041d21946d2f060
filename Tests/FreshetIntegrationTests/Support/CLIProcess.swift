import Foundation
import Glibc

/// The real `freshet` binary, run as a user would run it.
final class CLIProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var _stdout = Data()
    private var _stderr = Data()

    /// `.build/debug/freshet`, next to the test bundle.
    static var binary: URL {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var dir = bundle
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("freshet")
            if FileManager.default.isExecutableFile(atPath: candidate.path), !candidate.hasDirectoryPath { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return bundle.appendingPathComponent("freshet")
    }

    /// `freshet-bench`, built next to `freshet`.
    static var benchBinary: URL { binary.deletingLastPathComponent().appendingPathComponent("freshet-bench") }

    init(_ arguments: [String], environment: [String: String] = [:], executable: URL = CLIProcess.binary) throws {
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DATABASE_URL")
        env.removeValue(forKey: "REDIS_URL")
        env.removeValue(forKey: "FRESHET_CONFIG")
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.lock.withLock { self?._stdout.append(data) }
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.lock.withLock { self?._stderr.append(data) }
        }
        try process.run()
    }

    var stdout: String { lock.withLock { String(decoding: _stdout, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: _stderr, as: UTF8.self) } }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }

    /// Waits for exit (polling, without blocking a cooperative thread) and returns the status.
    func wait(timeout: Double = 30) async throws -> Int32 {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                process.terminate()
                throw TestFailure("freshet \(process.arguments ?? []) did not exit within \(timeout)s; stderr: \(stderr)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(50))  // let the pipes drain
        return process.terminationStatus
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Runs to completion and returns (status, stdout, stderr).
    static func run(
        _ arguments: [String], environment: [String: String] = [:], executable: URL = CLIProcess.binary, timeout: Double = 30
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let cli = try CLIProcess(arguments, environment: environment, executable: executable)
        let status = try await cli.wait(timeout: timeout)
        return (status, cli.stdout, cli.stderr)
    }
}

/// Writes a config file for a CLI test and returns its path.
func writeConfig(_ text: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-\(UUID().uuidString).yml").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

extension Process {
    /// Ends a helper process (the example app, chromedriver) at once with SIGKILL. Children of the test process inherit
    /// its blocked-signal mask, SIGTERM included, so `terminate()` alone left them running after the suite.
    func kill() {
        guard isRunning else { return }
        Glibc.kill(processIdentifier, SIGKILL)
    }
}

/// The Python interpreter for helper scripts: the system's, so that the process we kill is the interpreter itself (a
/// pyenv shim would leave it running as an orphan).
let systemPython3: String = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "/usr/bin/env"
