import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client went away while it was receiving an event stream.
///
/// Hummingbird allows half-closure, so a browser that closes its tab only half-closes the connection, and a stream
/// would notice only at its next write. This handler watches for `inputClosed` while a `text/event-stream` response is
/// in flight and closes the channel at once; `/events` then releases the subscriber.
final class StreamCloseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var streaming = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            streaming = head.headerFields[.contentType]?.hasPrefix("text/event-stream") ?? false
        case .end:
            streaming = false
        case .body:
            break
        }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed, streaming {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

extension StreamCloseHandler: @unchecked Sendable {}
