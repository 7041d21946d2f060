import HTTPTypes
import Metrics
import NIOCore
import NIOHTTPTypes

/// Bounds what a connection may hold before it is a real request (`http.request_timeout`, `http.max_connections`).
///
/// - A connection has `requestTimeout` seconds to send a whole request head, after it connects and again after each
///   response it received (keep-alive); then it is closed. A client that sends half a request and waits holds a socket
///   for that long at most. A streaming response (`/events`) is not timed: its head arrived.
/// - Past `maxConnections` open connections, a new connection's request is answered `503` with `Connection: close`,
///   without reaching the router, and the connection is closed.
///
/// Both are counted in `freshet_http_connections_rejected_total{reason}` (`request_timeout`, `max_connections`).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The bounds, from `http:`.
    struct Limits: Sendable {
        var requestTimeout: Double
        var maxConnections: Int
    }

    private let limits: Limits
    private let connections: OpenConnections
    // Touched on the event loop only.
    private var deadline: Scheduled<Void>?
    private var overLimit = false
    private var rejecting = false

    static let timedOut = Counter(label: "freshet_http_connections_rejected_total", dimensions: [("reason", "request_timeout")])
    static let overCapacity = Counter(label: "freshet_http_connections_rejected_total", dimensions: [("reason", "max_connections")])

    init(limits: Limits, connections: OpenConnections) {
        self.limits = limits
        self.connections = connections
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // `connections` counts this connection once the event stream handler after this one is added.
        overLimit = connections.count >= limits.maxConnections
        arm(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: .milliseconds(Int64(limits.requestTimeout * 1000))) {
            Self.timedOut.increment()
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if rejecting { return }
        if case .head = unwrapInboundIn(data) {
            deadline?.cancel()
            deadline = nil
            if overLimit {
                rejecting = true
                reject(context)
                return
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            // The response is complete: the next request on this connection gets its own deadline.
            arm(context)
        }
        context.write(data, promise: promise)
    }

    /// The `503` past `http.max_connections` (both server paths answer it): its body and fields but the length.
    static let overCapacityBody = #"{"error":"too many connections (http.max_connections)"}"#
    static let overCapacityFields: HTTPFields = {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.retryAfter] = "5"
        return fields
    }()

    private func reject(_ context: ChannelHandlerContext) {
        Self.overCapacity.increment()
        let body = Self.overCapacityBody
        var fields = Self.overCapacityFields
        fields[.contentLength] = String(body.utf8.count)
        if !context.channel.isHTTP2Stream { fields[.connection] = "close" }  // HTTP/1.1 (HTTP/2 forbids the field)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .serviceUnavailable, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(string: body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
