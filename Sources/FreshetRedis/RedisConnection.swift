import CHiredis
import FreshetCore
import Glibc

/// Owns one hiredict connection (`redictContext*`), plain or TLS, and frees it exactly once.
///
/// Not thread-safe: every call blocks, and one thread alone uses an instance (the writer's thread). Commands go through
/// `redictAppendCommandArgv`, byte-safe, so no key or value is ever read as a format string.
package final class RedisConnection: @unchecked Sendable {
    private let context: UnsafeMutablePointer<redictContext>

    private init(context: UnsafeMutablePointer<redictContext>) { self.context = context }

    deinit { redictFree(context) }

    /// Connects with `timeout` seconds for connecting and for each command, enables TCP keepalive, starts TLS for a
    /// `rediss://` endpoint (with `tls`), then AUTH and SELECT as the endpoint says.
    package static func connect(_ endpoint: RedisEndpoint, tls: RedisTLSContext? = nil, timeout: Double) throws(RedisError) -> RedisConnection {
        let tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        let raw: UnsafeMutablePointer<redictContext>?
        switch endpoint.address {
        case .tcp(let host, let port): raw = redictConnectWithTimeout(host, Int32(port), tv)
        case .unix(let path): raw = redictConnectUnixWithTimeout(path, tv)
        }
        guard let raw else { throw RedisError(code: .connectionFailed, message: "out of memory") }
        let connection = RedisConnection(context: raw)
        guard raw.pointee.err == 0 else {
            throw RedisError(code: .connectionFailed, message: connection.errorText)
        }
        _ = redictSetTimeout(raw, tv)
        if case .tcp(let host, _) = endpoint.address {
            _ = redictEnableKeepAlive(raw)
            if endpoint.tls {
                guard let tls else { throw RedisError(code: .connectionFailed, message: "rediss:// needs TLS settings") }
                try tls.start(on: raw, host: host)
            }
        }
        do {
            if let password = endpoint.password {
                let args = endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
                if case .error(let message) = try connection.command(args) {
                    throw RedisError(code: .connectionFailed, message: "AUTH refused: \(message)")
                }
            }
            if endpoint.database != 0, case .error(let message) = try connection.command(["SELECT", String(endpoint.database)]) {
                throw RedisError(code: .connectionFailed, message: "SELECT \(endpoint.database) refused: \(message)")
            }
        } catch {
            throw RedisError(code: .connectionFailed, message: (error as? RedisError)?.message ?? "\(error)")
        }
        return connection
    }

    private var errorText: String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }

    /// Sends one command and waits for its reply.
    package func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        try append(arguments)
        return try reply()
    }

    /// Queues a command in the output buffer (pipelining); read its reply later with `reply()`.
    package func append(_ arguments: [String]) throws(RedisError) {
        let buffers = arguments.map { Array($0.utf8) }
        let lengths = buffers.map(\.count)
        let status: Int32 = withPointers(buffers) { pointers in
            var argv = pointers
            return argv.withUnsafeMutableBufferPointer { argvBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    redictAppendCommandArgv(context, Int32(buffers.count), argvBuffer.baseAddress, lengthBuffer.baseAddress)
                }
            }
        }
        guard status == REDICT_OK else { throw RedisError(code: .connectionLost, message: errorText) }
    }

    /// Writes the queued commands to the socket now (so that several servers can work on their pipelines at once
    /// before the first reply is read).
    package func flush() throws(RedisError) {
        var done: Int32 = 0
        repeat {
            guard redictBufferWrite(context, &done) == REDICT_OK else { throw RedisError(code: .connectionLost, message: errorText) }
        } while done == 0
    }

    /// Flushes queued commands if needed and reads the next reply.
    package func reply() throws(RedisError) -> RedisReply {
        var raw: UnsafeMutableRawPointer?
        guard redictGetReply(context, &raw) == REDICT_OK, let raw else {
            let text = errorText
            throw RedisError(code: .connectionLost, message: text.isEmpty ? "no reply" : text)
        }
        let reply = raw.assumingMemoryBound(to: redictReply.self)
        defer { freeReplyObject(raw) }
        return Self.convert(reply)
    }

    private static func convert(_ reply: UnsafeMutablePointer<redictReply>) -> RedisReply {
        let r = reply.pointee
        func bytes() -> [UInt8] {
            guard let str = r.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: Int(r.len)))
        }
        switch r.type {
        case REDICT_REPLY_STATUS: return .status(String(decoding: bytes(), as: UTF8.self))
        case REDICT_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDICT_REPLY_INTEGER: return .integer(r.integer)
        case REDICT_REPLY_STRING: return .string(bytes())
        case REDICT_REPLY_ARRAY:
            var items: [RedisReply] = []
            for i in 0..<Int(r.elements) {
                if let element = r.element[i] { items.append(convert(element)) }
            }
            return .array(items)
        default: return .null
        }
    }
}

/// Copies every argument into one allocation and calls `body` with a pointer to each, valid during the call.
private func withPointers<R>(_ buffers: [[UInt8]], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let total = buffers.reduce(0) { $0 + $1.count }
    let storage = UnsafeMutablePointer<CChar>.allocate(capacity: max(total, 1))
    defer { storage.deallocate() }
    var pointers: [UnsafePointer<CChar>?] = []
    pointers.reserveCapacity(buffers.count)
    var offset = 0
    for buffer in buffers {
        buffer.withUnsafeBytes { src in
            UnsafeMutableRawPointer(storage + offset).copyMemory(from: src.baseAddress ?? UnsafeRawPointer(storage), byteCount: src.count)
        }
        pointers.append(UnsafePointer(storage + offset))
        offset += buffer.count
    }
    return body(pointers)
}
