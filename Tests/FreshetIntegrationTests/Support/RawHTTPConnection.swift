import Foundation
import Glibc
import Testing

/// A TCP connection to Freshet that sends bytes exactly as given and collects what comes back, for the HTTP/1.1
/// details a client library would hide (a head sent a byte at a time, keep-alive, the last chunk).
final class RawHTTPConnection: @unchecked Sendable {
    let fd: Int32
    private var received: [UInt8] = []
    private(set) var closed = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard TestServers.connectLoopback(fd, port: port) else {
            Glibc.close(fd)
            throw TestFailure("connect to \(port) refused")
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything received so far, as text.
    var text: String { String(decoding: received, as: UTF8.self) }

    /// Reads what has arrived (waiting at most `milliseconds` for the first byte).
    private func pump(milliseconds: Int32) {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard !closed, poll(&pfd, 1, milliseconds) > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if n > 0 { received += buffer[0..<n] } else if n == 0 { closed = true }
    }

    /// Waits until the received text contains `needle`.
    func waitFor(_ needle: String, timeout: Double = 10) async throws {
        try await eventually("\(needle.debugDescription) received", timeout: timeout) {
            pump(milliseconds: 20)
            return text.contains(needle)
        }
    }

    /// Waits until the server closed the connection.
    func waitForClose(timeout: Double = 10) async throws {
        try await eventually("the server closed the connection", timeout: timeout) {
            pump(milliseconds: 20)
            return closed
        }
    }
}
