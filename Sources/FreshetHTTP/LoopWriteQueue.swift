import Metrics
import NIOCore
import Synchronization

/// The subscribers of one publish that are written directly, grouped by event loop.
struct DirectWrites {
    /// One group per event loop: a handful (one per core), so a linear search beats hashing per subscriber.
    private var groups: [(loop: any EventLoop, handlers: [EventStreamHandler])] = []

    mutating func add(_ handler: EventStreamHandler) {
        guard let loop = handler.eventLoop else { return }
        for index in groups.indices where groups[index].loop === loop {
            groups[index].handlers.append(handler)
            return
        }
        groups.append((loop, [handler]))
    }

    /// Queues the writes on each loop's `LoopWriteQueue`.
    func write(_ buffer: ByteBuffer, queues: LoopWriteQueues) {
        for group in groups {
            queues.queue(for: group.loop).append(buffer, to: group.handlers)
        }
    }
}

/// The event-loop write queues of a hub, one per event loop.
final class LoopWriteQueues: Sendable {
    private let queues = Mutex<[ObjectIdentifier: LoopWriteQueue]>([:])
    private let dropped: Counter

    init(dropped: Counter) { self.dropped = dropped }

    func queue(for loop: any EventLoop) -> LoopWriteQueue {
        queues.withLock { queues in
            if let queue = queues[ObjectIdentifier(loop)] { return queue }
            let queue = LoopWriteQueue(loop: loop, dropped: dropped)
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
///
/// Bounded: a loop that does not get to run (stalled by something else on it) holds at most `limit` events; the
/// subscribers of any event past that are dropped as too slow (each gets its resync and is closed once the loop runs)
/// and the deliveries are counted in `freshet_buffer_dropped_total{buffer="loop_write_queue"}`.
final class LoopWriteQueue: Sendable {
    let loop: any EventLoop
    let limit: Int
    static let minimumInterval = TimeAmount.milliseconds(1)
    /// Events waiting per loop before their subscribers are dropped.
    static let defaultLimit = 65_536
    private let dropped: Counter?
    private let state = Mutex<State>(State())

    struct State {
        var entries: [(ByteBuffer, [EventStreamHandler])] = []
        /// Subscribers whose events the bound dropped: dropped as too slow on the next drain.
        var overflowed: [ObjectIdentifier: EventStreamHandler] = [:]
        var scheduled = false
        var lastDrain = NIODeadline.uptimeNanoseconds(0)
    }

    init(loop: any EventLoop, limit: Int = LoopWriteQueue.defaultLimit, dropped: Counter? = nil) {
        self.loop = loop
        self.limit = limit
        self.dropped = dropped
    }

    /// Events waiting for the next drain.
    var waiting: Int { state.withLock { $0.entries.count } }

    func append(_ buffer: ByteBuffer, to handlers: [EventStreamHandler]) {
        let (due, overflow): (NIODeadline?, Int) = state.withLock { state in
            var overflow = 0
            if state.entries.count >= limit {
                for handler in handlers { state.overflowed[ObjectIdentifier(handler)] = handler }
                overflow = handlers.count
            } else {
                state.entries.append((buffer, handlers))
            }
            if state.scheduled { return (nil, overflow) }
            state.scheduled = true
            return (state.lastDrain + Self.minimumInterval, overflow)
        }
        if overflow > 0 { dropped?.increment(by: overflow) }
        guard let due else { return }
        if due <= .now() {
            loop.execute { self.drain() }
        } else {
            loop.scheduleTask(deadline: due) { self.drain() }
        }
    }

    /// On the loop: writes every waiting event to its subscribers, then flushes each subscriber once.
    private func drain() {
        let (entries, overflowed) = state.withLock { state in
            state.scheduled = false
            state.lastDrain = .now()
            defer {
                state.entries.removeAll(keepingCapacity: true)
                state.overflowed.removeAll()
            }
            return (state.entries, state.overflowed)
        }
        for handler in overflowed.values { handler.dropAsSlow() }
        if entries.count == 1, let (buffer, handlers) = entries.first {
            // One event (the usual case below a thousand events a second): each subscriber once, no bookkeeping.
            let chunk = RawChunkWriter.chunk(buffer)
            for handler in handlers where handler.writeEvent(buffer, chunk: chunk) { handler.flush() }
            return
        }
        var touched: [ObjectIdentifier: EventStreamHandler] = [:]
        for (buffer, handlers) in entries {
            // Framed once per event and loop as an HTTP/1.1 chunk, shared by every subscriber's write.
            let chunk = RawChunkWriter.chunk(buffer)
            for handler in handlers where handler.writeEvent(buffer, chunk: chunk) { touched[ObjectIdentifier(handler)] = handler }
        }
        for handler in touched.values { handler.flush() }
    }
}
