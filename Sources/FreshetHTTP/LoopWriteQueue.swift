import NIOCore
import Synchronization

/// The subscribers of one publish that are written directly, grouped by event loop.
struct DirectWrites {
    private var groups: [ObjectIdentifier: (loop: any EventLoop, handlers: [EventStreamHandler])] = [:]

    mutating func add(_ handler: EventStreamHandler) {
        guard let loop = handler.eventLoop else { return }
        groups[ObjectIdentifier(loop), default: (loop, [])].handlers.append(handler)
    }

    /// Queues the writes on each loop's `LoopWriteQueue`.
    func write(_ buffer: ByteBuffer, queues: LoopWriteQueues) {
        for (_, group) in groups {
            queues.queue(for: group.loop).append(buffer, to: group.handlers)
        }
    }
}

/// The event-loop write queues of a hub, one per event loop.
final class LoopWriteQueues: Sendable {
    private let queues = Mutex<[ObjectIdentifier: LoopWriteQueue]>([:])

    func queue(for loop: any EventLoop) -> LoopWriteQueue {
        queues.withLock { queues in
            if let queue = queues[ObjectIdentifier(loop)] { return queue }
            let queue = LoopWriteQueue(loop: loop)
            queues[ObjectIdentifier(loop)] = queue
            return queue
        }
    }
}

/// Events waiting to be written on one event loop. At most one drain task is scheduled at a time: events published
/// while it waits join it, and each subscriber gets everything in one flush, one socket write. Drains are at least
/// `minimumInterval` apart: an event after a quiet spell goes out at once, but at thousands of events a second each
/// subscriber gets one socket write per millisecond instead of one per event (a socket write on loopback costs more
/// than the event itself).
final class LoopWriteQueue: Sendable {
    let loop: any EventLoop
    static let minimumInterval = TimeAmount.milliseconds(1)
    private let state = Mutex<(entries: [(ByteBuffer, [EventStreamHandler])], scheduled: Bool, lastDrain: NIODeadline)>(
        ([], false, .uptimeNanoseconds(0))
    )

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func append(_ buffer: ByteBuffer, to handlers: [EventStreamHandler]) {
        let due: NIODeadline? = state.withLock { state in
            state.entries.append((buffer, handlers))
            if state.scheduled { return nil }
            state.scheduled = true
            return state.lastDrain + Self.minimumInterval
        }
        guard let due else { return }
        if due <= .now() {
            loop.execute { self.drain() }
        } else {
            loop.scheduleTask(deadline: due) { self.drain() }
        }
    }

    /// On the loop: writes every waiting event to its subscribers, then flushes each subscriber once.
    private func drain() {
        let entries = state.withLock { state in
            state.scheduled = false
            state.lastDrain = .now()
            defer { state.entries.removeAll(keepingCapacity: true) }
            return state.entries
        }
        var touched: [ObjectIdentifier: EventStreamHandler] = [:]
        for (buffer, handlers) in entries {
            for handler in handlers where handler.writeEvent(buffer) { touched[ObjectIdentifier(handler)] = handler }
        }
        for handler in touched.values { handler.flush() }
    }
}
