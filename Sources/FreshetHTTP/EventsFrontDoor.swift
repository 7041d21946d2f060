import FreshetCore
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore

/// Plain HTTP/1.1 (no `http.tls`): the first handler of every connection. It reads the request head itself:
///
/// - A plain `GET /events` (HTTP/1.1, no body, nothing pipelined after it) is served on Freshet's own path: the
///   connection keeps only its `EventStreamHandler`, which writes the response head, each event as a chunk and the
///   last chunk. No HTTP server handlers and no Swift task stay with it — what an idle subscriber costs is the socket,
///   its channel, that handler and the hub's entry (docs/benchmarks.md, memory per subscriber).
/// - Anything else is handed to Hummingbird's HTTP/1.1 channel with its bytes untouched (and `/events` still works
///   there: a keep-alive connection that asked for `/` first, an HTTP/1.0 client).
///
/// It also holds the bounds before a request: `http.request_timeout` for the head (then the connection is closed) and
/// `http.max_connections` (a request on a connection past it gets `503`), counted as `ConnectionGuard` counts them.
final class EventsFrontDoor: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// What the connection became: served here, or handed to Hummingbird.
    enum Outcome {
        case served
        case handedOver
    }

    /// A head longer than this goes to Hummingbird (which has its own limits and answers).
    static let maxHead = 16 * 1024

    private let server: EventsServer
    private let decided: EventLoopPromise<Outcome>
    private let handOver: (any Channel) -> EventLoopFuture<Void>
    // Touched on the event loop only.
    private var received: ByteBuffer?
    private var deadline: Scheduled<Void>?
    private var overLimit = false
    private var done = false
    /// Handed over: bytes that still reach this handler (before it is removed) go on to Hummingbird's.
    private var passing = false
    /// How far `received` was searched for the end of the head (the search resumes there).
    private var scanned = 0
    /// The server shuts down while the decision is pending: close instead of answering.
    private(set) var quiescing = false

    init(server: EventsServer, decided: EventLoopPromise<Outcome>, handOver: @escaping (any Channel) -> EventLoopFuture<Void>) {
        self.server = server
        self.decided = decided
        self.handOver = handOver
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        // Counted from accept to close, whichever path serves it.
        overLimit = server.connections.count >= server.limits.maxConnections
        server.connections.add(channel)
        channel.closeFuture.whenComplete { [connections = server.connections] _ in connections.remove(channel) }
        // A connection reads one request head and then only writes: a small fixed receive buffer, not the adaptive one
        // NIO keeps (and may grow) per connection.
        _ = try? channel.syncOptions?.setOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 1024))
        deadline = context.eventLoop.scheduleTask(in: .milliseconds(Int64(server.limits.requestTimeout * 1000))) {
            ConnectionGuard.timedOut.increment()
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if !done {
            done = true
            decided.fail(ChannelError.ioOnClosedChannel)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            decided.fail(ChannelError.ioOnClosedChannel)
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if passing { return context.fireChannelRead(data) }
        var bytes = unwrapInboundIn(data)
        if done {
            if received != nil { received!.writeBuffer(&bytes) }  // handing over: kept for Hummingbird's handlers
            return
        }
        if received == nil { received = bytes } else { received!.writeBuffer(&bytes) }
        let view = received!.readableBytesView
        // Resumes 3 bytes back: the blank line may straddle two reads.
        let from = max(0, scanned - 3)
        guard HTTPRequestHead.length(in: view.dropFirst(from)) != nil else {
            scanned = view.count
            if view.count > Self.maxHead { overLimit ? reject(context) : handOverNow(context) }
            return
        }
        deadline?.cancel()
        deadline = nil
        if overLimit { return reject(context) }
        guard let head = HTTPRequestHead.plainGet("/events", in: view) else {
            handOverNow(context)
            return
        }
        done = true
        received = nil
        let request = EventsEndpoint.Request(
            query: URI(head.target).queryParameters.map { (name: String($0.key), value: String($0.value)) },
            origin: head.field("origin"), lastEventID: head.field("last-event-id"), authorization: head.field("authorization"),
            cookie: head.fields("cookie").isEmpty ? nil : head.fields("cookie").joined(separator: "; ")
        )
        // The decision may wait for a JWKS fetch: a short task, which ends once the response has started.
        Self.decide(request, server: server, decided: decided, context: NIOLoopBound(context, eventLoop: context.eventLoop))
    }

    private static func decide(
        _ request: EventsEndpoint.Request, server: EventsServer, decided: EventLoopPromise<Outcome>,
        context: NIOLoopBound<ChannelHandlerContext>
    ) {
        Task {
            let decision = await server.endpoint.decide(request)
            context.eventLoop.execute { answer(decision, server: server, decided: decided, context: context.value) }
        }
    }

    private static func answer(
        _ decision: EventsEndpoint.Decision, server: EventsServer, decided: EventLoopPromise<Outcome>, context: ChannelHandlerContext
    ) {
        defer { decided.succeed(.served) }
        guard context.channel.isActive else { return }
        if (context.handler as? EventsFrontDoor)?.quiescing == true { return context.close(promise: nil) }
        switch decision {
        case .refuse(let status, let message, let fields):
            respondAndClose(context, status, fields, body: EventsEndpoint.Decision.body(message))
        case .stream(let subscription, let fields):
            server.stream(subscription, headers: fields, on: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent, !passing else { return context.fireUserInboundEventTriggered(event) }
        // The server shuts down: a connection without a whole request is closed; one whose request is being
        // decided is closed instead of answered.
        quiescing = true
        if !done { context.close(promise: nil) }
    }

    /// Past `http.max_connections`: `503` and close.
    private func reject(_ context: ChannelHandlerContext) {
        done = true
        deadline?.cancel()
        deadline = nil
        ConnectionGuard.overCapacity.increment()
        Self.respondAndClose(context, .serviceUnavailable, ConnectionGuard.overCapacityFields, body: ConnectionGuard.overCapacityBody)
        decided.succeed(.served)
    }

    /// Hands the connection to Hummingbird: its handlers after this one, the bytes read so far passed on, this handler
    /// removed. (A head longer than `maxHead` gets a new `request_timeout` from Hummingbird's side: at most two.)
    private func handOverNow(_ context: ChannelHandlerContext) {
        done = true
        deadline?.cancel()
        deadline = nil
        handOver(context.channel).assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                self.decided.fail(error)
                context.close(promise: nil)
            case .success:
                self.decided.succeed(.handedOver)
                self.passing = true
                if let received = self.received, received.readableBytes > 0 { context.fireChannelRead(self.wrapInboundOut(received)) }
                self.received = nil
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            }
        }
    }

    /// A whole response with `Connection: close`, then the connection closed.
    static func respondAndClose(_ context: ChannelHandlerContext, _ status: HTTPResponse.Status, _ fields: HTTPFields, body: String) {
        var fields = fields
        fields[.contentLength] = String(body.utf8.count)
        fields[.connection] = "close"
        var buffer = responseHead(status, fields)
        buffer.writeString(body)
        let channel = context.channel
        context.writeAndFlush(NIOAny(IOData.byteBuffer(buffer))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// `HTTP/1.1 <status>`, the fields, and the blank line.
    static func responseHead(_ status: HTTPResponse.Status, _ fields: HTTPFields) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n")
        for field in fields {
            buffer.writeString(field.name.rawName)
            buffer.writeStaticString(": ")
            buffer.writeString(field.value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        return buffer
    }
}

/// What Freshet's own `/events` path needs: the endpoint's decision, the hub, the bounds and the connection registry.
package struct EventsServer: Sendable {
    let endpoint: EventsEndpoint
    let hub: EventHub
    let limits: ConnectionGuard.Limits
    let connections: OpenConnections

    package init(options: Routes.EventsOptions, hub: EventHub, http: HTTPSettings, connections: OpenConnections) {
        self.endpoint = EventsEndpoint(options: options)
        self.hub = hub
        self.limits = ConnectionGuard.Limits(requestTimeout: http.requestTimeout, maxConnections: http.maxConnections)
        self.connections = connections
    }

    /// Starts the subscription's stream on the connection: the front door is replaced by an `EventStreamHandler`
    /// that writes the head and then every event. On the event loop.
    func stream(_ subscription: SubscriptionRequest, headers: HTTPFields, on context: ChannelHandlerContext) {
        let channel = context.channel
        let stream = hub.subscribe(subscription)
        let handler = EventStreamHandler(bare: true)  // the front door keeps the connection in `connections`
        do {
            try context.pipeline.syncOperations.addHandler(handler, position: .after(context.handler))
        } catch {
            stream.cancel()
            channel.close(promise: nil)
            return
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        stream.bind(to: channel)
        handler.attach(stream.subscriber, budget: stream.budget)
        var fields = headers
        fields[.transferEncoding] = "chunked"
        handler.startStream(head: EventsFrontDoor.responseHead(.ok, fields))
        let loop = channel.eventLoop
        stream.subscriber.whenFinished {
            loop.execute { handler.endStream() }
        }
    }
}
