import FreshetCore
import NIOCore
import Synchronization

extension EventHub {
    /// One subscriber: what it asked for, and where its bytes go.
    ///
    /// Until its connection's `EventStreamHandler` takes over (`activate`, when the response head goes out), bytes wait
    /// in a mailbox: one buffer that events are appended to. After that, the hub hands each event to the handler on
    /// its event loop (`.direct`).
    final class Subscriber: Sendable {
        let request: SubscriptionRequest
        /// Bytes waiting in the mailbox (the budget before the handler takes over; it then checks the socket's own).
        let queued = Atomic<Int>(0)
        /// Called when the hub drops this subscriber for falling behind, to close its connection (a write may be stuck).
        let dropHandler = Mutex<(@Sendable () -> Void)?>(nil)
        /// Removes the subscriber from the hub; called once, when the stream finishes.
        let onFinish = Mutex<(@Sendable () -> Void)?>(nil)
        /// Asks the hub to drop this subscriber (its direct writer found it over budget).
        let onSlow = Mutex<(@Sendable () -> Void)?>(nil)
        private let mailbox = Mutex(Mailbox())

        struct Mailbox {
            var pending: ByteBuffer?
            var finishWaiter: CheckedContinuation<Void, Never>?
            /// Called once when the stream has finished (Freshet's own HTTP/1.1 path ends the response then).
            var whenFinished: (@Sendable () -> Void)?
            var finished = false
            var direct: EventStreamHandler?
        }

        /// Where `deliver` put the bytes.
        enum Delivery {
            case queued
            /// The caller schedules the write on the handler's event loop.
            case direct(EventStreamHandler)
            /// The mailbox holds more than the budget: drop the subscriber.
            case overBudget
            case finished
        }

        /// Durable ids: only events after this id are sent (the client has the rest).
        let after: EventID?

        init(request: SubscriptionRequest, after: EventID? = nil) {
            self.request = request
            self.after = after
        }

        /// Hands bytes over: to the direct writer, or into the mailbox (checking `budget` when given).
        func deliver(_ buffer: ByteBuffer, budget: Int?) -> Delivery {
            mailbox.withLock { box in
                if box.finished { return .finished }
                if let direct = box.direct { return .direct(direct) }
                let queued = queued.add(buffer.readableBytes, ordering: .relaxed).newValue
                if let budget, queued > budget { return .overBudget }
                if box.pending == nil {
                    box.pending = buffer
                } else {
                    box.pending!.writeImmutableBuffer(buffer)
                }
                return .queued
            }
        }

        /// Switches to direct writes through `handler`; returns what waited in the mailbox, for the handler to write
        /// first. On the handler's event loop.
        func activate(_ handler: EventStreamHandler) -> ByteBuffer? {
            mailbox.withLock { box in
                box.direct = handler
                let pending = box.pending
                box.pending = nil
                queued.store(0, ordering: .relaxed)
                return pending
            }
        }

        /// The direct writer found this subscriber over budget.
        func slow() {
            onSlow.withLock { $0 }?()
        }

        /// Ends the stream after what is pending; with `replacing`, that is all that is still written (a dropped
        /// subscriber's resync instead of its backlog).
        func finish(replacing last: ByteBuffer? = nil) {
            let (finishWaiter, direct, first, whenFinished) = mailbox.withLock { box in
                let first = !box.finished
                box.finished = true
                if let last, box.direct == nil { box.pending = last }  // written when the handler takes over
                let finishWaiter = box.finishWaiter
                box.finishWaiter = nil
                let whenFinished = box.whenFinished
                box.whenFinished = nil
                return (finishWaiter, box.direct, first, whenFinished)
            }
            if let direct, let last { direct.writeFinal(last) }  // scheduled before the response's end
            finishWaiter?.resume()
            whenFinished?()
            if first, let onFinish = onFinish.withLock({ $0 }) { onFinish() }
        }

        /// Calls `callback` once the stream has finished (at once if it has).
        func whenFinished(_ callback: @escaping @Sendable () -> Void) {
            let done = mailbox.withLock { box in
                if box.finished { return true }
                box.whenFinished = callback
                return false
            }
            if done { callback() }
        }

        /// Returns once the stream has finished.
        func waitUntilFinished() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = mailbox.withLock { box in
                    if box.finished { return true }
                    box.finishWaiter = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        }
    }
}
