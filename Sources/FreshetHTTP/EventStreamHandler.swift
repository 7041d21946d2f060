import HTTPTypes
import NIOCore
import Synchronization
import NIOHTTPTypes

/// Writes an SSE subscriber's events straight onto its connection, on the connection's event loop, and closes a
/// connection whose client went away while it was receiving an event stream.
///
/// The hub groups the subscribers of one event publish by event loop and runs one task per loop that writes the same
/// shared bytes to each of them: no Swift task wakes up per subscriber per event. `/events` attaches the subscriber
/// before it returns its response; once the response head has passed this handler, everything waiting in the
/// subscriber's mailbox (the `retry:` hint, the replay) is written, then each event as it is published. A subscriber
/// whose unsent bytes exceed its budget (`http.client_buffer`) is dropped: it gets its `resync` and is closed.
///
/// On Freshet's own HTTP/1.1 path (`EventsFrontDoor`) the handler is the connection's only handler: it writes the
/// response head, every event as a chunk, and the last chunk itself (`startStream`, `endStream`).
///
/// Hummingbird allows half-closure, so a browser that closes its tab only half-closes the connection, and a stream
/// would notice only at its next write. This handler watches for `inputClosed` while a `text/event-stream` response is
/// in flight and closes the channel at once; `/events` then releases the subscriber.
final class EventStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The connection's event loop; set when the handler is added, before any subscriber is attached.
    nonisolated(unsafe) private(set) var eventLoop: (any EventLoop)?
    private let connections: OpenConnections?

    /// - Parameter bare: Freshet's own HTTP/1.1 path (no HTTP handlers around this one).
    init(connections: OpenConnections? = nil, bare: Bool = false) {
        self.connections = connections
        self.bare = bare
    }
    // Everything below is touched on the event loop only.
    private var context: ChannelHandlerContext?
    /// The connection's channel, kept so that the per-event budget check does not go through the pipeline.
    private var channel: (any Channel)?
    private var streaming = false
    private var subscriber: EventHub.Subscriber?
    private var budget = Int.max
    private var active = false
    private var dropped = false
    /// HTTP/1.1: where events, already framed as chunks, are written below the HTTP encoder (one shared buffer per
    /// event, no encoding work per subscriber). Nil when the pipeline is not the expected one: the encoder is used.
    private var raw: (context: ChannelHandlerContext, writer: RawChunkWriter)?
    /// An HTTP/2 stream (a child of the connection's channel), and its bytes written but not yet passed on.
    private var isStream = false
    private var streamPending = 0
    /// Freshet's own HTTP/1.1 path: no HTTP handlers around this one; it frames the chunked response itself.
    private let bare: Bool

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        channel = context.channel
        isStream = context.channel.isHTTP2Stream
        if !isStream && !bare {
            raw = RawChunkWriter.install(in: context.pipeline)
            // A connection reads one request head and then only writes: a small fixed receive buffer, not the
            // adaptive one NIO keeps (and may grow) per connection.
            _ = try? context.channel.syncOptions?.setOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 1024))
        }
        eventLoop = context.eventLoop
        connections?.add(context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        connections?.remove(context.channel)
        self.context = nil
        channel = nil
        active = false
    }

    /// Attaches the subscriber whose stream the next `text/event-stream` response carries. On the event loop.
    func attach(_ subscriber: EventHub.Subscriber, budget: Int) {
        self.subscriber = subscriber
        self.budget = budget
        dropped = false
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            streaming = head.headerFields[.contentType]?.hasPrefix("text/event-stream") ?? false
            context.write(data, promise: promise)
            if streaming, let subscriber {
                active = true
                if let pending = subscriber.activate(self) { writeBody(pending) }
            }
            return
        case .end:
            streaming = false
            active = false
            subscriber = nil
        case .body:
            break
        }
        context.write(data, promise: promise)
    }

    /// Writes one event (shared bytes), unflushed, unless the client's unsent bytes would pass the budget; then
    /// drops it. Returns whether the handler needs a `flush()`. On the event loop.
    func writeEvent(_ buffer: ByteBuffer, chunk: ByteBuffer? = nil) -> Bool {
        guard active, !dropped, let context else { return false }
        // HTTP/1.1 with the chunk writer: the framed chunk below the encoder; else the body part through it. On the
        // own path, the chunk from here.
        let below = bare ? (context, chunk ?? RawChunkWriter.chunk(buffer)) : raw?.writer.chunked == true ? chunk.map { (raw!.context, $0) } : nil
        let size = below?.1.readableBytes ?? buffer.readableBytes
        // Bytes not yet passed on: an HTTP/2 stream has no socket of its own, so what it wrote and is still held back
        // (by the stream's flow-control window or the connection's socket); otherwise the socket's own.
        if isStream ? streamPending + size > budget : overBudget(adding: size) {
            dropAsSlow()
            return false
        }
        if let (rawContext, chunk) = below {
            rawContext.write(NIOAny(IOData.byteBuffer(chunk)), promise: nil)
        } else if isStream {
            streamPending += size
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { _ in self.streamPending -= size }
            context.write(wrapOutboundOut(.body(buffer)), promise: written)
        } else {
            context.write(wrapOutboundOut(.body(buffer)), promise: nil)
        }
        return true
    }

    /// Whether the socket's unsent bytes plus `size` would pass the budget. A writable channel holds less than its high
    /// water mark (64 KiB unless set otherwise): with room for that below the budget, no need to ask the channel for
    /// the exact figure (an option read per delivery was a measurable share of the fan-out's CPU).
    private func overBudget(adding size: Int) -> Bool {
        guard let channel else { return false }
        if channel.isWritable && size <= budget - Self.assumedHighWaterMark { return false }
        let waiting = (try? channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
        return waiting + size > budget
    }

    /// NIO's default high water mark (Freshet keeps it): a writable channel holds at most this many unsent bytes.
    static let assumedHighWaterMark = 64 * 1024

    /// Drops the subscriber as too slow (its events were dropped on the way). On the event loop.
    func dropAsSlow() {
        guard !dropped else { return }
        dropped = true
        subscriber?.slow()
    }

    /// Whether the subscriber was dropped for falling behind.
    var isDropped: Bool { dropped }

    /// Sends what `writeEvent` wrote: one socket write for everything a batch held. On the event loop.
    func flush() {
        // From below the HTTP handlers when events went that way: a flush anywhere sends every pending write.
        if !bare, let raw, raw.writer.chunked { raw.context.flush() } else { context?.flush() }
    }

    /// Own path: writes the response head (ending the head, `Transfer-Encoding: chunked`), then what waited in the
    /// subscriber's mailbox, and writes each event from then on. On the event loop, after `attach`.
    func startStream(head: ByteBuffer) {
        guard let context else { return }
        context.write(NIOAny(IOData.byteBuffer(head)), promise: nil)
        streaming = true
        active = true
        if let subscriber, let pending = subscriber.activate(self) {
            context.write(NIOAny(IOData.byteBuffer(RawChunkWriter.chunk(pending))), promise: nil)
        }
        context.flush()
    }

    /// Own path: the stream finished (the hub closed, or the subscriber was dropped): the last chunk, then close.
    /// On the event loop.
    func endStream() {
        guard bare, active, let context else { return }
        active = false
        streaming = false
        let channel = context.channel
        context.writeAndFlush(NIOAny(IOData.byteBuffer(ByteBuffer(staticString: "0\r\n\r\n")))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Writes the last bytes of the stream (a dropped subscriber's resync), from any thread.
    func writeFinal(_ buffer: ByteBuffer) {
        guard let eventLoop else { return }
        if eventLoop.inEventLoop {
            if active { writeBody(buffer) }
        } else {
            eventLoop.execute { if self.active { self.writeBody(buffer) } }
        }
    }

    private func writeBody(_ buffer: ByteBuffer) {
        if bare {
            context?.writeAndFlush(NIOAny(IOData.byteBuffer(RawChunkWriter.chunk(buffer))), promise: nil)
        } else {
            context?.writeAndFlush(wrapOutboundOut(.body(buffer)), promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // HTTP/1.1 only: an HTTP/2 stream's request ends with its headers (a client that leaves resets the stream,
        // which closes the stream's channel).
        if let event = event as? ChannelEvent, event == .inputClosed, streaming, !isStream {
            context.close(promise: nil)
            return
        }
        if bare, event is ChannelShouldQuiesceEvent {  // the server shuts down: end the stream (Hummingbird's path does)
            if active { endStream() } else { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

// Confined to its channel's event loop; the hub only calls `writeEvent` and `writeFinal` through that loop.
extension EventStreamHandler: @unchecked Sendable {}

/// The HTTP connections a Freshet has open, so that none outlives it: after shutdown every one still open is closed
/// (a connection whose request was still in flight when the server's shutdown was cut short would otherwise stay open
/// on the shared event loops, and its client would never see the stream end).
package final class OpenConnections: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    package init() {}

    func add(_ channel: any Channel) { channels.withLock { $0[ObjectIdentifier(channel)] = channel } }
    func remove(_ channel: any Channel) { _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }

    /// The connections open now.
    package var count: Int { channels.withLock { $0.count } }

    /// Closes every connection still open.
    package func closeAll() {
        let open = channels.withLock { channels in
            defer { channels.removeAll() }
            return Array(channels.values)
        }
        for channel in open { channel.close(promise: nil) }
    }
}

extension Channel {
    /// Whether this is an HTTP/2 stream: a child of a connection's channel (which is itself a child of the listening
    /// socket's). An HTTP/1.1 connection's parent is the listening socket.
    var isHTTP2Stream: Bool { parent?.parent != nil }
}
