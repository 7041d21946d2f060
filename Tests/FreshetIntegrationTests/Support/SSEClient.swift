import Foundation
import Glibc

/// One SSE message as a client parsed it.
struct SSEMessage: Sendable, Equatable {
    var id: String?
    var event: String?
    var data: String
}

/// A minimal HTTP/1.1 client that reads a real `text/event-stream` from a socket on its own thread.
/// It keeps the status, the headers, every message and every comment line it has seen.
final class SSEClient: @unchecked Sendable {
    let lock = NSLock()
    private var _messages: [SSEMessage] = []
    private var _comments: [String] = []
    private var _status: Int?
    private var _headers: [String: String] = [:]
    private var _closed = false
    private var _body = ""
    private var _raw: [UInt8] = []
    private let fd: Int32
    /// Keep the raw body (small answers); off for long streams.
    private let keepRaw: Bool

    var messages: [SSEMessage] { lock.withLock { _messages } }
    var comments: [String] { lock.withLock { _comments } }
    var status: Int? { lock.withLock { _status } }
    var headers: [String: String] { lock.withLock { _headers } }
    var closed: Bool { lock.withLock { _closed } }
    var body: String { lock.withLock { _body } }
    var changes: [SSEMessage] { messages.filter { $0.event == "change" } }

    /// Connects and sends `GET path`. With `read: false` the client never reads (a stuck subscriber).
    init(
        port: Int, path: String, headers: [String: String] = [:], method: String = "GET", read: Bool = true,
        receiveBuffer: Int32? = nil, keepRaw: Bool = true, body: [UInt8]? = nil
    ) throws {
        self.keepRaw = keepRaw
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        guard TestServers.connectLoopback(fd, port: port) else {
            // Not closed here: the object is fully initialized, so deinit runs and closes it. Closing twice would
            // close whatever socket another thread got that number for in between (seen: libpq's, mid-connect).
            throw TestFailure("cannot connect to 127.0.0.1:\(port)")
        }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if let body { request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8) + (body ?? [])
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
        if read {
            let thread = Thread { [self] in readLoop() }
            thread.start()
        }
    }

    deinit { close(fd) }

    func disconnect() { shutdown(fd, Int32(SHUT_RDWR)) }

    private func readLoop() {
        var raw: [UInt8] = []
        var headerDone = false
        var chunked = false
        var bodyBytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            raw.append(contentsOf: buffer[0..<n])
            if !headerDone, let end = find(raw, Array("\r\n\r\n".utf8)) {
                let head = String(decoding: raw[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
                let status = Int(head[0].split(separator: " ")[1]) ?? 0
                var headers: [String: String] = [:]
                for line in head.dropFirst() {
                    if let colon = line.firstIndex(of: ":") {
                        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    }
                }
                chunked = headers["transfer-encoding"]?.contains("chunked") ?? false
                lock.withLock { _status = status; _headers = headers }
                raw.removeFirst(end + 4)
                headerDone = true
            }
            guard headerDone else { continue }
            if chunked {
                var offset = 0
                while let lineEnd = find(raw, Array("\r\n".utf8), from: offset, limit: 20) {
                    guard let size = Int(String(decoding: raw[offset..<lineEnd], as: UTF8.self), radix: 16) else { break }
                    guard raw.count >= lineEnd + 2 + size + 2 else { break }
                    bodyBytes.append(contentsOf: raw[(lineEnd + 2)..<(lineEnd + 2 + size)])
                    if keepRaw { lock.withLock { _raw.append(contentsOf: raw[(lineEnd + 2)..<(lineEnd + 2 + size)]) } }
                    offset = lineEnd + 2 + size + 2
                }
                raw.removeFirst(offset)
            } else {
                bodyBytes.append(contentsOf: raw)
                if keepRaw { lock.withLock { _raw.append(contentsOf: raw) } }
                raw.removeAll()
            }
            parse(&bodyBytes)
        }
        lock.withLock { _closed = true }
    }

    /// Parses every complete message (ended by a blank line) at the front of `bytes`, in linear time.
    private func parse(_ bytes: inout [UInt8]) {
        var start = 0
        var i = 0
        var parsed: [SSEMessage] = []
        var comments: [String] = []
        var text = ""
        while i + 1 < bytes.count {
            if bytes[i] == 0x0A && bytes[i + 1] == 0x0A {
                let block = String(decoding: bytes[start..<i], as: UTF8.self)
                text += block + "\n\n"
                var message = SSEMessage(id: nil, event: nil, data: "")
                var dataLines: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") { comments.append(String(line.dropFirst()).trimmingCharacters(in: .whitespaces)); continue }
                    var field = Substring(line)
                    var value = Substring("")
                    if let colon = line.firstIndex(of: ":") {
                        field = line[..<colon]
                        value = line[line.index(after: colon)...]
                        if value.hasPrefix(" ") { value = value.dropFirst() }
                    }
                    switch field {
                    case "id": message.id = String(value)
                    case "event": message.event = String(value)
                    case "data": dataLines.append(String(value))
                    default: break
                    }
                }
                message.data = dataLines.joined(separator: "\n")
                if message.event != nil || !dataLines.isEmpty { parsed.append(message) }
                i += 2
                start = i
            } else {
                i += 1
            }
        }
        if start > 0 { bytes.removeFirst(start) }
        guard !parsed.isEmpty || !comments.isEmpty || !text.isEmpty else { return }
        lock.withLock {
            _body += text
            _comments += comments
            _messages += parsed
        }
    }

    /// The first index of `needle` at or after `from`, looking at most `limit` bytes ahead when given.
    private func find(_ haystack: [UInt8], _ needle: [UInt8], from: Int = 0, limit: Int? = nil) -> Int? {
        guard haystack.count >= from + needle.count else { return nil }
        let last = min(haystack.count - needle.count, limit.map { from + $0 } ?? Int.max)
        guard from <= last else { return nil }
        for i in from...last where haystack[i] == needle[0] {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        }
        return nil
    }
}

/// Plain HTTP GET for small answers (healthz, readyz).
/// Waits without blocking a thread: the cooperative pool has two threads here, and Freshet runs on it too.
func httpGet(
    port: Int, path: String, headers: [String: String] = [:], method: String = "GET", body: [UInt8]? = nil,
    timeout: Double = 5
) async throws -> (status: Int, body: String, headers: [String: String]) {
    var all = headers
    all["Connection"] = "close"
    let client = try SSEClient(port: port, path: path, headers: all, method: method, body: body)
    let deadline = ContinuousClock.now + .seconds(timeout)
    while !client.closed && !client.complete && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    return (client.status ?? 0, client.rawBody, client.headers)
}

extension SSEClient {
    /// Whether a response with a Content-Length has all of its body.
    var complete: Bool {
        lock.withLock {
            guard let length = _headers["content-length"].flatMap({ Int($0) }) else { return false }
            return _raw.count >= length
        }
    }

    /// The whole body received so far, as text.
    var rawBody: String { lock.withLock { String(decoding: _raw, as: UTF8.self) } }
}
