import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// The HTTP/1.1 server's connections (no `http.tls`): each starts with an `EventsFrontDoor`, which serves a plain
/// `GET /events` itself and hands anything else to Hummingbird's `HTTP1Channel`. Hummingbird's server runs one task
/// per connection for as long as `handle` runs: for a connection the front door serves, `handle` returns at once.
struct FreshetHTTP1Channel: ServerChildChannel {
    /// The connection, and what its front door will decide.
    struct Value: ServerChildChannelValue {
        let channel: any Channel
        let decided: EventLoopFuture<EventsFrontDoor.Outcome>
        /// Set on the event loop before `decided` succeeds with `.handedOver`.
        let handedOver: NIOLoopBoundBox<HTTP1Channel.Value?>
    }

    let inner: HTTP1Channel
    let events: EventsServer

    // NIO registers an accepted channel (and starts reading) only once `setup`'s future completes: it must not wait
    // for the request head.
    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let decided = channel.eventLoop.makePromise(of: EventsFrontDoor.Outcome.self)
        let handedOver = NIOLoopBoundBox<HTTP1Channel.Value?>(nil, eventLoop: channel.eventLoop)
        let inner = self.inner
        let door = EventsFrontDoor(server: events, decided: decided) { channel in
            // On the event loop: Hummingbird's handlers go after the front door, which then passes the bytes on.
            inner.setup(channel: channel, logger: logger).map { handedOver.value = $0 }
        }
        do {
            try channel.pipeline.syncOperations.addHandler(door)
        } catch {
            decided.fail(error)
            return channel.eventLoop.makeFailedFuture(error)
        }
        return channel.eventLoop.makeSucceededFuture(Value(channel: channel, decided: decided.futureResult, handedOver: handedOver))
    }

    /// Waits for the request head; returns at once for a connection the front door serves (the channel lives on in
    /// its handlers, no task waits for it), runs Hummingbird's connection handling for the others.
    func handle(value: Value, logger: Logger) async {
        guard let outcome = try? await value.decided.get(), outcome == .handedOver,
              let http = try? await value.channel.eventLoop.submit({ value.handedOver.value }).get() else { return }
        await inner.handle(value: http, logger: logger)
    }
}
