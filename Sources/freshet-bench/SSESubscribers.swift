import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// K SSE subscribers on a small event loop group: each one a real HTTP connection to Freshet's `/events`, parsing the
/// stream and recording, per change (`seq` in the event's row), when it arrived.
final class SSESubscribers: @unchecked Sendable {
    let receipts: [TimeTable]
    let connected = Atomic<Int>(0)
    let resyncs = Atomic<Int>(0)
    let events = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    private let group: MultiThreadedEventLoopGroup
    private var channels: [Channel] = []

    /// Opens `count` subscriptions to `topic`, `batch` connections at a time, and waits until every one has its
    /// response head (the hub registered it).
    init(port: Int, count: Int, expectedChanges: Int, topic: String, threads: Int = 2, batch: Int = 250) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        receipts = (0..<count).map { _ in TimeTable(count: expectedChanges) }
        var opened = 0
        while opened < count {
            let end = min(count, opened + batch)
            for i in opened..<end {
                let table = receipts[i]
                let bootstrap = ClientBootstrap(group: group)
                    .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                    .channelInitializer { channel in
                        channel.pipeline.addHTTPClientHandlers().flatMap {
                            channel.pipeline.addHandler(SSEClientHandler(path: "/events?topic=\(topic)", receipts: table, owner: self))
                        }
                    }
                channels.append(try bootstrap.connect(host: "127.0.0.1", port: port).wait())
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
        for channel in channels { channel.close(promise: nil) }
        try? group.syncShutdownGracefully()
    }

    var duplicates: Int { receipts.reduce(0) { $0 + $1.duplicates.load(ordering: .relaxed) } }
}

/// Sends `GET /events`, then reads the SSE stream line by line. Only the `seq` of each change event is extracted (the
/// bench's events are `{"…","row":{"id":N,"seq":S},…}`).
final class SSEClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let path: String
    let receipts: TimeTable
    unowned let owner: SSESubscribers
    private var line: [UInt8] = []
    private var inResync = false

    init(path: String, receipts: TimeTable, owner: SSESubscribers) {
        self.path = path
        self.receipts = receipts
        self.owner = owner
    }

    func channelActive(context: ChannelHandlerContext) {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1")
        head.headers.add(name: "Accept", value: "text/event-stream")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status == .ok { owner.connected.add(1, ordering: .relaxed) } else { owner.failures.add(1, ordering: .relaxed) }
        case .body(let buffer):
            let now = monotonicNanos()
            // Scan for line ends in the buffer itself; only a partial last line is copied (and carried over).
            var carry = line
            line = []
            buffer.withUnsafeReadableBytes { bytes in
                var start = 0
                for i in 0..<bytes.count where bytes[i] == UInt8(ascii: "\n") {
                    if carry.isEmpty {
                        handleLine(UnsafeRawBufferPointer(rebasing: bytes[start..<i]), now)
                    } else {
                        carry.append(contentsOf: bytes[start..<i])
                        carry.withUnsafeBytes { handleLine($0, now) }
                        carry.removeAll()
                    }
                    start = i + 1
                }
                carry.append(contentsOf: bytes[start...])
            }
            line = carry
        case .end:
            break
        }
    }

    private static let seqMarker = Array("\"seq\":".utf8)
    private static let resyncLine = Array("event: resync".utf8)

    private func handleLine(_ line: UnsafeRawBufferPointer, _ now: UInt64) {
        if line.starts(with: Self.resyncLine) {
            owner.resyncs.add(1, ordering: .relaxed)
            return
        }
        guard line.starts(with: "data:".utf8), let range = Self.firstRange(of: Self.seqMarker, in: line) else { return }
        var value = 0
        var i = range
        while i < line.count, line[i] >= UInt8(ascii: "0"), line[i] <= UInt8(ascii: "9") {
            value = value * 10 + Int(line[i] - UInt8(ascii: "0"))
            i += 1
        }
        receipts.record(value, at: now)
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

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
