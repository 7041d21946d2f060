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

    var messages: [SSEMessage] { lock.withLock { _messages } }
    var comments: [String] { lock.withLock { _comments } }
    var status: Int? { lock.withLock { _status } }
    var headers: [String: String] { lock.withLock { _headers } }
    var closed: Bool { lock.withLock { _closed } }
    var body: String { lock.withLock { _body } }
    var changes: [SSEMessage] { messages.filter { $0.event == "change" } }

    /// Connects and sends `GET path`. With `read: false` the client never reads (a stuck subscriber).
    init(port: Int, path: String, headers: [String: String] = [:], method: String = "GET", read: Bool = true, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw TestFailure("cannot connect to 127.0.0.1:\(port)")
        }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
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
                while let lineEnd = find(raw, Array("\r\n".utf8)) {
                    guard let size = Int(String(decoding: raw[0..<lineEnd], as: UTF8.self), radix: 16) else { break }
                    guard raw.count >= lineEnd + 2 + size + 2 else { break }
                    bodyBytes.append(contentsOf: raw[(lineEnd + 2)..<(lineEnd + 2 + size)])
                    lock.withLock { _raw.append(contentsOf: raw[(lineEnd + 2)..<(lineEnd + 2 + size)]) }
                    raw.removeFirst(lineEnd + 2 + size + 2)
                }
            } else {
                bodyBytes.append(contentsOf: raw)
                lock.withLock { _raw.append(contentsOf: raw) }
                raw.removeAll()
            }
            parse(&bodyBytes)
        }
        lock.withLock { _closed = true }
    }

    private func parse(_ bytes: inout [UInt8]) {
        while let end = find(bytes, [0x0A, 0x0A]) {
            let block = String(decoding: bytes[0..<end], as: UTF8.self)
            bytes.removeFirst(end + 2)
            var message = SSEMessage(id: nil, event: nil, data: "")
            var dataLines: [String] = []
            var comments: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix(":") { comments.append(String(line.dropFirst()).trimmingCharacters(in: .whitespaces)); continue }
                let (field, value) = line.firstIndex(of: ":").map {
                    (String(line[..<$0]), String(line[line.index(after: $0)...]).replacingOccurrences(of: "^ ", with: "", options: .regularExpression))
                } ?? (String(line), "")
                switch field {
                case "id": message.id = value
                case "event": message.event = value
                case "data": dataLines.append(value)
                default: break
                }
            }
            message.data = dataLines.joined(separator: "\n")
            lock.withLock {
                _body += block + "\n\n"
                _comments += comments
                if message.event != nil || !dataLines.isEmpty { _messages.append(message) }
            }
        }
    }

    private func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}

/// Plain HTTP GET for small answers (healthz, readyz).
/// Waits without blocking a thread: the cooperative pool has two threads here, and Freshet runs on it too.
func httpGet(port: Int, path: String, headers: [String: String] = [:]) async throws -> (status: Int, body: String, headers: [String: String]) {
    var all = headers
    all["Connection"] = "close"
    let client = try SSEClient(port: port, path: path, headers: all)
    let deadline = ContinuousClock.now + .seconds(5)
    while !client.closed && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    return (client.status ?? 0, client.rawBody, client.headers)
}

extension SSEClient {
    /// The whole body received so far, as text.
    var rawBody: String { lock.withLock { String(decoding: _raw, as: UTF8.self) } }
}
