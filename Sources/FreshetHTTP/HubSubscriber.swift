import NIOCore
import Synchronization

extension EventHub {
    /// One subscriber: what it asked for, and where its bytes go.
    ///
    /// Until its connection's `EventStreamHandler` takes over (`activate`), bytes wait in a mailbox: one buffer that
    /// events are appended to. After that, the hub hands each event to the handler on its event loop (`.direct`).
    /// Without a handler, the response's writer takes everything waiting in one write (`next`).
    final class Subscriber: Sendable {
        let request: SubscriptionRequest
        /// Bytes in the mailbox and not yet written to the socket.
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
            var waiter: CheckedContinuation<ByteBuffer?, Never>?
            var finishWaiter: CheckedContinuation<Void, Never>?
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

        init(request: SubscriptionRequest) {
            self.request = request
        }

        /// Hands bytes over: to the direct writer, or into the mailbox (checking `budget` when given).
        func deliver(_ buffer: ByteBuffer, budget: Int?) -> Delivery {
            let (delivery, waiter): (Delivery, CheckedContinuation<ByteBuffer?, Never>?) = mailbox.withLock { box in
                if box.finished { return (.finished, nil) }
                if let direct = box.direct { return (.direct(direct), nil) }
                let queued = queued.add(buffer.readableBytes, ordering: .relaxed).newValue
                if let budget, queued > budget { return (.overBudget, nil) }
                if let waiter = box.waiter {
                    box.waiter = nil
                    return (.queued, waiter)
                }
                if box.pending == nil {
                    box.pending = buffer
                } else {
                    box.pending!.writeImmutableBuffer(buffer)
                }
                return (.queued, nil)
            }
            waiter?.resume(returning: buffer)
            return delivery
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
            let (waiter, pending, finishWaiter, direct, first) = mailbox.withLock { box in
                let first = !box.finished
                box.finished = true
                if let last, box.direct == nil { box.pending = last }
                let waiter = box.waiter
                box.waiter = nil
                let pending = waiter == nil ? nil : box.pending
                if waiter != nil { box.pending = nil }
                let finishWaiter = box.finishWaiter
                box.finishWaiter = nil
                return (waiter, pending, finishWaiter, box.direct, first)
            }
            if let direct, let last { direct.writeFinal(last) }  // scheduled before the response's end
            waiter?.resume(returning: pending)
            finishWaiter?.resume()
            if first, let onFinish = onFinish.withLock({ $0 }) { onFinish() }
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

        /// Everything waiting, or suspends until something arrives; nil once finished and drained.
        func next() async -> ByteBuffer? {
            await withCheckedContinuation { (continuation: CheckedContinuation<ByteBuffer?, Never>) in
                let ready: ByteBuffer?? = mailbox.withLock { box in
                    if let pending = box.pending {
                        box.pending = nil
                        return .some(pending)
                    }
                    if box.finished { return .some(nil) }
                    box.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}
