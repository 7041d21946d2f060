import NIOCore
import NIOHTTP1

/// A pass-through handler placed just below an HTTP/1.1 connection's response encoder (after TLS, when there is
/// one), so that an SSE stream's events — already framed as chunks of the chunked response the encoder started — are
/// written straight to the socket: one buffer per event shared by every subscriber on the event loop, and no
/// encoding work per subscriber per event (the fan-out's cost per delivery; docs/benchmarks.md).
///
/// The response head and its end still go through the encoder, in order: every write happens on the event loop and
/// passes through the pipeline synchronously.
final class RawChunkWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Whether the last response head the encoder wrote announced `Transfer-Encoding: chunked` (an HTTP/1.0 client
    /// gets a response delimited by the connection's close instead: then chunks must not be written).
    private(set) var chunked = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .byteBuffer(let buffer) = unwrapOutboundIn(data), buffer.readableBytes > 12,
           buffer.readableBytesView.starts(with: "HTTP/1.".utf8) {
            let head = buffer.readableBytesView
            chunked = head.firstRange(of: "chunked".utf8) != nil || head.firstRange(of: "Chunked".utf8) != nil
        }
        context.write(data, promise: promise)
    }

    /// Adds the writer before (toward the socket from) the pipeline's `HTTPResponseEncoder` and returns its context;
    /// nil when there is no such encoder (HTTP/2, or an unexpected pipeline).
    static func install(in pipeline: ChannelPipeline) -> (ChannelHandlerContext, RawChunkWriter)? {
        let sync = pipeline.syncOperations
        if let existing = try? sync.context(handlerType: RawChunkWriter.self), let handler = existing.handler as? RawChunkWriter {
            return (existing, handler)
        }
        guard let encoder = try? sync.handler(type: HTTPResponseEncoder.self) else { return nil }
        do {
            let handler = RawChunkWriter()
            try sync.addHandler(handler, position: .before(encoder))
            return (try sync.context(handlerType: RawChunkWriter.self), handler)
        } catch {
            return nil
        }
    }

    /// `body` as one HTTP/1.1 chunk: its size in hex, CRLF, the bytes, CRLF.
    static func chunk(_ body: ByteBuffer) -> ByteBuffer {
        var framed = ByteBuffer()
        framed.reserveCapacity(body.readableBytes + 12)
        framed.writeString(String(body.readableBytes, radix: 16))
        framed.writeStaticString("\r\n")
        framed.writeImmutableBuffer(body)
        framed.writeStaticString("\r\n")
        return framed
    }
}
