import CEpoll
import Foundation
import FreshetCore
import FreshetSystem
import Glibc
import Synchronization

/// K SSE subscribers: each one a real HTTP connection to Freshet's `/events`, read by a few threads with `epoll` and
/// plain `read(2)`, recording per change (`seq` in the event's row) when it arrived.
///
/// Deliberately lean (no HTTP library, no allocation per event): the subscribers share the machine with Freshet, and
/// a heavy client would measure itself. Freshet writes whole SSE messages per HTTP chunk, so reading line by line and
/// skipping the chunk-size lines is enough.
final class SSESubscribers: @unchecked Sendable {
    let receipts: [TimeTable]
    let connected = Atomic<Int>(0)
    let resyncs = Atomic<Int>(0)
    let events = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    /// When the last `resync` arrived (0 if none).
    let lastResyncAt = Atomic<UInt64>(0)
    private let stopFlag = Atomic<Bool>(false)
    private var sockets: [Int32] = []
    private var readers: [Reader] = []
    private let done = DispatchGroup()

    /// Opens `count` subscriptions to `topic`, `batch` connections at a time, and waits until every one has its
    /// response head (the hub registered it).
    convenience init(port: Int, count: Int, expectedChanges: Int, topic: String, threads: Int = 2, batch: Int = 250) throws {
        try self.init(ports: [port], count: count, expectedChanges: expectedChanges, topic: topic, threads: threads, batch: batch)
    }

    /// Subscriber `i` connects to `ports[i % ports.count]` (several Freshet processes).
    init(ports: [Int], count: Int, expectedChanges: Int, topic: String, threads: Int = 2, batch: Int = 250) throws {
        let nice = Self.readerNice.load(ordering: .relaxed)
        receipts = (0..<count).map { _ in TimeTable(count: expectedChanges) }
        readers = (0..<threads).map { _ in Reader() }
        let request = Array("GET /events?topic=\(topic) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".utf8)
        for reader in readers {
            done.enter()
            let thread = Thread { [self] in
                ThreadPriority.lowerCurrent(to: nice)  // stand-ins for browsers elsewhere: see docs
                reader.run(owner: self)
                done.leave()
            }
            thread.start()
        }
        var opened = 0
        while opened < count {
            let end = min(count, opened + batch)
            for i in opened..<end {
                let fd = try LoopbackSocket.connect(port: ports[i % ports.count]).get()
                _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                sockets.append(fd)
                readers[i % threads].add(Connection(fd: fd, receipts: receipts[i]))
            }
            let deadline = monotonicNanos() + 30_000_000_000
            while connected.load(ordering: .relaxed) + failures.load(ordering: .relaxed) < end {
                guard monotonicNanos() < deadline else { throw BenchError("only \(connected.load(ordering: .relaxed)) of \(end) subscribers connected") }
                usleep(1_000)
            }
            opened = end
        }
        if failures.load(ordering: .relaxed) > 0 { throw BenchError("\(failures.load(ordering: .relaxed)) subscribers were refused") }
    }

    /// Waits until every subscriber has `count` events (or a resync), or `timeout` seconds pass.
    func waitForAll(_ count: Int, timeout: Double) {
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        while monotonicNanos() < deadline {
            if events.load(ordering: .relaxed) >= count * receipts.count { return }
            if resyncs.load(ordering: .relaxed) >= receipts.count { return }
            usleep(1_000)
        }
    }

    func close() {
        stopFlag.store(true, ordering: .relaxed)
        done.wait()
        for fd in sockets { Glibc.close(fd) }
        sockets.removeAll()
    }

    var duplicates: Int { receipts.reduce(0) { $0 + $1.duplicates.load(ordering: .relaxed) } }

    var stopping: Bool { stopFlag.load(ordering: .relaxed) }

    /// The readers' nice value (`--reader-nice`). The subscribers stand in for browsers on other machines: on this one
    /// they should not take CPU from the server side they measure (their own latency only gets worse).
    static let readerNice = Atomic<Int32>(10)

    /// One subscriber's parse state; touched by its reader thread only.
    final class Connection {
        let fd: Int32
        let receipts: TimeTable
        var line: [UInt8] = []
        var sawStatus = false

        init(fd: Int32, receipts: TimeTable) {
            self.fd = fd
            self.receipts = receipts
        }
    }

    /// One thread's epoll set of connections.
    final class Reader: @unchecked Sendable {
        private let epoll = epoll_create1(0)
        private let lock = NSLock()
        private var connections: [Int32: Connection] = [:]

        func add(_ connection: Connection) {
            lock.withLock { connections[connection.fd] = connection }
            var event = epoll_event()
            event.events = UInt32(EPOLLIN.rawValue)
            event.data.fd = connection.fd
            _ = epoll_ctl(epoll, Int32(EPOLL_CTL_ADD), connection.fd, &event)
        }

        func run(owner: SSESubscribers) {
            var events = [epoll_event](repeating: epoll_event(), count: 256)
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while !owner.stopping {
                let ready = epoll_wait(epoll, &events, Int32(events.count), 50)
                guard ready > 0 else { continue }
                let now = monotonicNanos()
                for i in 0..<Int(ready) {
                    let fd = events[i].data.fd
                    guard let connection = lock.withLock({ connections[fd] }) else { continue }
                    while true {
                        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                        if n <= 0 {
                            if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                                var none = epoll_event()
                                _ = epoll_ctl(epoll, Int32(EPOLL_CTL_DEL), fd, &none)
                            }
                            break
                        }
                        buffer.withUnsafeBytes { consume(UnsafeRawBufferPointer(rebasing: $0[0..<n]), connection, owner, now) }
                        if n < buffer.count { break }
                    }
                }
            }
            Glibc.close(epoll)
        }

        private func consume(_ bytes: UnsafeRawBufferPointer, _ connection: Connection, _ owner: SSESubscribers, _ now: UInt64) {
            var start = 0
            for i in 0..<bytes.count where bytes[i] == UInt8(ascii: "\n") {
                if connection.line.isEmpty {
                    handleLine(UnsafeRawBufferPointer(rebasing: bytes[start..<i]), connection, owner, now)
                } else {
                    connection.line.append(contentsOf: bytes[start..<i])
                    connection.line.withUnsafeBytes { handleLine($0, connection, owner, now) }
                    connection.line.removeAll(keepingCapacity: true)
                }
                start = i + 1
            }
            if start < bytes.count { connection.line.append(contentsOf: bytes[start...]) }
        }

        private static let seqMarker = Array("\"seq\":".utf8)
        private static let resyncLine = Array("event: resync".utf8)

        private func handleLine(_ line: UnsafeRawBufferPointer, _ connection: Connection, _ owner: SSESubscribers, _ now: UInt64) {
            if !connection.sawStatus {
                connection.sawStatus = true
                if line.starts(with: "HTTP/1.1 200".utf8) {
                    owner.connected.add(1, ordering: .relaxed)
                } else {
                    owner.failures.add(1, ordering: .relaxed)
                }
                return
            }
            if line.starts(with: Self.resyncLine) {
                owner.resyncs.add(1, ordering: .relaxed)
                owner.lastResyncAt.store(now, ordering: .relaxed)
                return
            }
            guard line.starts(with: "data:".utf8), let range = Self.firstRange(of: Self.seqMarker, in: line) else { return }
            var value = 0
            var i = range
            while i < line.count, line[i] >= UInt8(ascii: "0"), line[i] <= UInt8(ascii: "9") {
                value = value * 10 + Int(line[i] - UInt8(ascii: "0"))
                i += 1
            }
            connection.receipts.record(value, at: now)
            owner.events.add(1, ordering: .relaxed)
        }

        /// The index just past the first occurrence of `marker` in `line`.
        private static func firstRange(of marker: [UInt8], in line: UnsafeRawBufferPointer) -> Int? {
            guard line.count >= marker.count else { return nil }
            var i = 0
            while i <= line.count - marker.count {
                if line[i] == marker[0] && line[i..<(i + marker.count)].elementsEqual(marker) { return i + marker.count }
                i += 1
            }
            return nil
        }
    }
}
