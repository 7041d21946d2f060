import Foundation
import FreshetCore
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

/// Fans change events out to SSE subscribers.
///
/// Each event is encoded once, as SSE bytes in a `ByteBuffer` that every subscriber shares, and kept in a ring of the
/// last `replay` events for `Last-Event-ID` resume. Subscribers attached to their connection are written on their
/// event loops, one task per loop per batch of events (`LoopWriteQueue`); no task runs per subscriber. A subscriber's
/// unsent bytes are bounded by `clientBuffer`: one that falls behind gets a `resync` and is closed. As a `Service` it
/// sends heartbeats and, on graceful shutdown, ends every stream.
package final class EventHub: Service, Sendable {
    /// Identifies this process's ids: the start time in milliseconds.
    package let epoch: UInt64
    private let replayCapacity: Int
    private let clientBuffer: Int
    private let heartbeat: Double
    private let logger: Logger
    private let state: Mutex<State>
    private let metrics: HubMetrics
    private let writeQueues: LoopWriteQueues

    struct Stored {
        var sequence: UInt64
        var id: EventID
        var topics: [String]
        var wholeTableShapes: [TopicPattern]?
        var bytes: ByteBuffer
    }

    struct State {
        var sequence: UInt64 = 0
        var ring: [Stored] = []
        var ringStart = 0
        var subscribers: [UInt64: Subscriber] = [:]
        var nextSubscriberID: UInt64 = 0
        var closed = false
        /// Events before this sequence may have been missed (a gap); resumes from before it get a resync.
        var gapSequence: UInt64 = 0
        /// The id of the last change published (`EPOCH-0` before the first in notify mode).
        var lastID: EventID
        /// Durable ids (replication): resumes from an id at or after this are complete, because the slot sends every
        /// later change again after a restart; nil until the source streams.
        var floor: EventID?
        /// Durable ids: the last event a gap may have missed; resumes from before it get a resync.
        var gapID: EventID?
        /// The last event evicted from the ring.
        var evictedThrough: EventID?
        /// Durable ids: the source's position when it started; ids beyond it and every published one are unknown.
        var ceiling: UInt64 = 0
        /// Durable ids: events were dropped (the publisher fell behind); the next event published becomes the gap id.
        var gapAtNext = false
        var droppedSlow = 0
        var tableShapes: [String: [TopicPattern]] = [:]
        /// Durable ids: subscribers registered before this number no longer skip events up to their resume id (the ids
        /// started over lower, `setResumeFloor`).
        var resumeFiltersFrom: UInt64 = 0
        /// Durable ids, after ids started over lower: the last id of the old history. An id up to it is the old
        /// history's (resync) unless this history published it itself (then it is in the ring).
        var oldHistoryEnd: EventID?
    }

    /// Ids come with the events (`LSN-N`, replication) instead of `EPOCH-SEQ`.
    private let durableIDs: Bool

    package init(
        replay: Int, clientBuffer: Int, heartbeat: Double, epoch: UInt64? = nil, durableIDs: Bool = false, logger: Logger
    ) {
        self.durableIDs = durableIDs
        let epoch = epoch ?? UInt64(clock_gettime_ms())
        self.epoch = epoch
        self.replayCapacity = replay
        self.clientBuffer = clientBuffer
        self.heartbeat = heartbeat
        self.logger = logger
        self.state = Mutex(State(lastID: EventID(epoch: durableIDs ? 0 : epoch, sequence: 0)))
        let metrics = HubMetrics()
        self.metrics = metrics
        self.writeQueues = LoopWriteQueues(dropped: metrics.loopQueueDropped)
    }

    /// Sets, for each table name, its topic templates as shapes, so that a whole-table event (truncate) reaches
    /// every subscriber of any of that table's topics.
    package func setTableShapes(_ shapes: [String: [TopicPattern]]) {
        state.withLock { $0.tableShapes = shapes }
    }

    /// Subscribers dropped for falling behind since start.
    package var droppedCount: Int { state.withLock { $0.droppedSlow } }

    /// The number of open streams.
    package var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// The id of the last event published (`EPOCH-0` before the first).
    package var lastEventID: EventID { state.withLock { $0.lastID } }

    /// Durable ids: resumes from `id` or later are complete from now on (the source sends every later change again).
    /// `ceiling` is the source's position now: an id beyond it (and beyond every event published) is not one of
    /// this history's. After a `gap`, resumes from before `id` get a resync.
    package func setResumeFloor(_ id: EventID, ceiling: UInt64, gap: Bool) {
        state.withLock { state in
            if gap && id < state.lastID {
                // The slot was made again below events already published (a failover to a standby that had not
                // received everything): ids start over lower. Nothing published before compares with what comes:
                // the replay ring is emptied, resumes from an id up to the last one published get a resync (unless
                // this history published that id too), and live subscribers stop skipping events up to their resume id.
                state.ring.removeAll()
                state.ringStart = 0
                state.evictedThrough = nil
                state.oldHistoryEnd = max(state.oldHistoryEnd ?? state.lastID, state.lastID)
                state.gapID = nil  // set to the new floor below; the old history's ids are caught by `oldHistoryEnd`
                state.resumeFiltersFrom = state.nextSubscriberID
                state.lastID = id
            }
            state.floor = id
            state.ceiling = max(state.ceiling, ceiling)
            if gap { state.gapID = max(state.gapID ?? id, id) }
            if state.lastID < id && state.ring.isEmpty { state.lastID = id }
        }
    }

    /// Publishes one change event to every subscriber whose topics match, and stores it for replay.
    package func publish(_ event: ChangeEvent) {
        publish(id: event.id, topics: event.topics, configName: event.configName, wholeTable: event.concernsWholeTable,
                data: event.jsonBytes, at: event.at)
    }

    /// Publishes an event read from the relay stream (`http.relay: redis`): its id, topics and JSON as the writer
    /// appended them.
    /// A whole-table event (truncate) carries the shapes of its table's topics (`wholeTableShapes`), as the writer's
    /// hub knows them.
    package func publishRelayed(
        id: EventID, topics: [String], configName: String, wholeTableShapes: [TopicPattern]?, data: [UInt8], at: String
    ) {
        publish(id: id, topics: topics, configName: configName, wholeTable: wholeTableShapes != nil, shapes: wholeTableShapes, data: data, at: at)
    }

    /// The topic shapes a whole-table event of `configName` reaches (its table's topics, or its name).
    package func wholeTableShapes(_ configName: String) -> [TopicPattern] {
        state.withLock { $0.tableShapes[configName] ?? [TopicPattern(configName)] }
    }

    private func publish(
        id eventID: EventID?, topics: [String], configName: String, wholeTable concernsWholeTable: Bool,
        shapes: [TopicPattern]? = nil, data: [UInt8], at: String
    ) {
        var direct = DirectWrites()
        let (dropped, buffer): ([Subscriber], ByteBuffer) = state.withLock { state in
            let wholeTable = concernsWholeTable ? (shapes ?? state.tableShapes[configName] ?? [TopicPattern(configName)]) : nil
            state.sequence += 1
            let id = eventID ?? EventID(epoch: epoch, sequence: state.sequence)
            state.lastID = id
            if state.gapAtNext {
                // Resumes must be at or after the first event past the dropped ones.
                state.gapID = id
                state.gapAtNext = false
            }
            let bytes = SSEEncoder.message(id: id.description, event: "change", data: data)
            let buffer = ByteBuffer(bytes: bytes)
            let stored = Stored(sequence: state.sequence, id: id, topics: topics, wholeTableShapes: wholeTable, bytes: buffer)
            if state.ring.count - state.ringStart >= replayCapacity {
                if state.ringStart < state.ring.count { state.evictedThrough = state.ring[state.ringStart].id }
                state.ringStart += 1
                if state.ringStart >= 4096 || state.ringStart * 2 >= state.ring.count {
                    state.ring.removeFirst(state.ringStart)
                    state.ringStart = 0
                }
            }
            if replayCapacity > 0 { state.ring.append(stored) }
            var slow: [UInt64] = []
            var sent = 0
            for (id, subscriber) in state.subscribers where subscriber.request.wants(topics: topics, wholeTableShapes: wholeTable)
                && (id < state.resumeFiltersFrom || subscriber.after.map({ stored.id > $0 }) ?? true) {
                if send(buffer, to: subscriber, budget: clientBuffer, direct: &direct) { sent += 1 } else { slow.append(id) }
            }
            if sent > 0 { metrics.eventsSent.increment(by: sent) }
            return (slow.compactMap { detach($0, state: &state) }, buffer)
        }
        direct.write(buffer, queues: writeQueues)
        if let then = metrics.lastAt.seconds(at) {
            metrics.lag.recordNanoseconds(Int64(max(0, Date().timeIntervalSince1970 - then) * 1e9))
        }
        finishDropped(dropped)
    }

    /// Records a gap: every subscriber gets one `resync`, and resumes from before now get one too. With
    /// `eventsDropped` (the publisher fell behind) the dropped events are newer than the last one published: resumes
    /// must then be past the next event published.
    package func publishResync(reason: String, eventsDropped: Bool = false) {
        var direct = DirectWrites()
        let bytes = state.withLock { state in
            state.gapSequence = state.sequence
            state.gapID = max(state.gapID ?? state.lastID, state.lastID)
            if eventsDropped { state.gapAtNext = true }
            let bytes = resyncBytes(state.lastID, reason: reason)
            for subscriber in state.subscribers.values { enqueue(bytes, to: subscriber, direct: &direct) }
            return bytes
        }
        direct.write(bytes, queues: writeQueues)
    }

    /// Drops a subscriber whose direct writer found its client's unsent bytes over the budget.
    func dropSlow(_ id: UInt64) {
        let subscriber = state.withLock { detach(id, state: &$0) }
        finishDropped(subscriber.map { [$0] } ?? [])
    }

    private func resyncBytes(_ id: EventID, reason: String) -> ByteBuffer {
        var writer = JSONWriter()
        writer.write(["reason": .string(reason)] as JSONObject)
        return ByteBuffer(bytes: SSEEncoder.message(id: id.description, event: "resync", data: writer.bytes))
    }

    /// Hands bytes to a subscriber whatever its buffer holds (replay, resync: bounded by the ring).
    private func enqueue(_ buffer: ByteBuffer, to subscriber: Subscriber, direct: inout DirectWrites) {
        _ = send(buffer, to: subscriber, budget: nil, direct: &direct)
    }

    /// Hands bytes to a subscriber: to its mailbox, or to the direct writes of this publish. False when its
    /// mailbox is over `budget` and it must be dropped (a direct writer checks its budget on its event loop).
    private func send(_ buffer: ByteBuffer, to subscriber: Subscriber, budget: Int?, direct: inout DirectWrites) -> Bool {
        switch subscriber.deliver(buffer, budget: budget) {
        case .queued, .finished: return true
        case .direct(let handler):
            direct.add(handler)
            return true
        case .overBudget: return false
        }
    }

    /// Removes a subscriber that fell behind and queues its resync; the caller finishes it outside the lock
    /// (finishing a stream runs its termination handler, which takes the lock).
    private func detach(_ id: UInt64, state: inout State) -> Subscriber? {
        guard let subscriber = state.subscribers.removeValue(forKey: id) else { return nil }
        metrics.subscribers.record(state.subscribers.count)
        state.droppedSlow += 1
        return subscriber
    }

    private func finishDropped(_ dropped: [Subscriber]) {
        if !dropped.isEmpty { metrics.droppedSlow.increment(by: dropped.count) }
        let resync = dropped.isEmpty ? nil : resyncBytes(state.withLock { $0.lastID }, reason: "too slow: buffer of \(clientBuffer) bytes full")
        for subscriber in dropped {
            subscriber.finish(replacing: resync)
            subscriber.dropHandler.withLock { $0 }?()
            logger.warning("dropped an SSE subscriber that fell behind", metadata: ["client_buffer": "\(clientBuffer)"])
        }
    }

    /// Opens a subscription: the stream starts with a `retry:` hint, then what the client missed (or one `resync`),
    /// then live events. The stream ends when the hub shuts down or the subscriber is dropped.
    package func subscribe(_ request: SubscriptionRequest) -> HubStream {
        let lastSeen = request.lastEventID.flatMap { EventID(parsing: $0) }
        var direct = DirectWrites()  // stays empty: a new subscriber is not attached to its connection yet
        let (subscriber, id): (Subscriber, UInt64?) = state.withLock { state in
            // Durable ids: live events up to the client's id are not sent again (after a restart the slot re-sends
            // them) — unless the resume gets a resync for another reason than a start-up (see `starting`).
            let problem = request.lastEventID != nil ? resumeProblem(lastSeen, state: state) : nil
            let keepsFilter = problem == nil || problem == Self.starting
            let subscriber = Subscriber(request: request, after: durableIDs && keepsFilter ? lastSeen : nil)
            guard !state.closed else { return (subscriber, nil) }
            enqueue(ByteBuffer(bytes: SSEEncoder.retry(milliseconds: 2000)), to: subscriber, direct: &direct)
            if request.lastEventID != nil {
                if let reason = problem {
                    enqueue(resyncBytes(state.lastID, reason: reason), to: subscriber, direct: &direct)
                } else if let lastSeen {
                    // The replay counts against the client's buffer like live events: past it, a resync instead.
                    var replay: [ByteBuffer] = []
                    var bytes = 0
                    for stored in state.ring[state.ringStart...] where stored.id > lastSeen
                        && request.wants(topics: stored.topics, wholeTableShapes: stored.wholeTableShapes) {
                        replay.append(stored.bytes)
                        bytes += stored.bytes.readableBytes
                        if bytes > clientBuffer { break }
                    }
                    if bytes > clientBuffer {
                        metrics.replayDropped.increment()
                        enqueue(resyncBytes(state.lastID, reason: "missed events exceed http.client_buffer"), to: subscriber, direct: &direct)
                    } else {
                        for buffer in replay { enqueue(buffer, to: subscriber, direct: &direct) }
                    }
                }
            }
            let id = state.nextSubscriberID
            state.nextSubscriberID += 1
            state.subscribers[id] = subscriber
            metrics.subscribers.record(state.subscribers.count)
            return (subscriber, id)
        }
        if let id {
            subscriber.onSlow.withLock { $0 = { [weak self] in self?.dropSlow(id) } }
            subscriber.onFinish.withLock {
                $0 = { [weak self] in
                    self?.state.withLock { state in
                        if state.subscribers.removeValue(forKey: id) != nil { self?.metrics.subscribers.record(state.subscribers.count) }
                    }
                }
            }
        } else {
            subscriber.finish()
        }
        return HubStream(subscriber: subscriber, budget: clientBuffer)
    }

    package func run() async throws {
        let beat = ByteBuffer(bytes: SSEEncoder.comment("heartbeat"))
        // The heartbeat sleep is cancelled on graceful shutdown, so the hub ends its streams at once.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(self.heartbeat))
                var direct = DirectWrites()
                let dropped: [Subscriber] = self.state.withLock { state in
                    var slow: [UInt64] = []
                    for (id, subscriber) in state.subscribers where !self.send(beat, to: subscriber, budget: self.clientBuffer, direct: &direct) {
                        slow.append(id)
                    }
                    return slow.compactMap { self.detach($0, state: &state) }
                }
                direct.write(beat, queues: self.writeQueues)
                self.finishDropped(dropped)
            }
        }
        close()
    }

    /// The resync reason of a resume from before a gap.
    static let eventsMissed = "events missed"
    /// The resync reason of a resume before the source streams: its id may still be right (the slot re-sends what
    /// came after it), so live events up to it are still not sent again. Any other resync drops that filter: the
    /// id proves nothing (after a failover that made ids start over lower, it would hide new events).
    static let starting = "Freshet is starting"

    /// Why a resume from `lastSeen` cannot be proven complete (it gets a resync), or nil when the ring and the source
    /// hold every later event.
    private func resumeProblem(_ lastSeen: EventID?, state: State) -> String? {
        guard let lastSeen else { return "unknown event id" }
        if durableIDs {
            guard let floor = state.floor else { return Self.starting }
            if lastSeen < floor { return Self.eventsMissed }
            if lastSeen.epoch > max(state.ceiling, state.lastID.epoch) { return "unknown event id" }
            if state.gapAtNext { return Self.eventsMissed }
            if let evicted = state.evictedThrough, lastSeen < evicted { return Self.eventsMissed }
            if let gap = state.gapID, lastSeen < gap { return Self.eventsMissed }
            if let end = state.oldHistoryEnd, lastSeen <= end,
               !state.ring[state.ringStart...].contains(where: { $0.id == lastSeen }) { return Self.eventsMissed }
            return nil
        }
        let oldest = state.ring.count > state.ringStart ? state.ring[state.ringStart].sequence : state.sequence + 1
        if lastSeen.epoch != epoch { return "Freshet restarted" }
        guard lastSeen.sequence <= state.sequence, lastSeen.sequence + 1 >= oldest, lastSeen.sequence >= state.gapSequence else {
            return "events missed"
        }
        return nil
    }

    /// Ends every stream and refuses new ones.
    package func close() {
        let subscribers = state.withLock { state in
            state.closed = true
            let all = Array(state.subscribers.values)
            state.subscribers.removeAll()
            metrics.subscribers.record(0)
            return all
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}

/// One subscriber's stream of SSE bytes. `/events` attaches it to its connection (`attach(to:)`); the hub then writes
/// the bytes straight onto the connection from its event loop, and the response only waits for the end
/// (`waitUntilFinished`).
package struct HubStream: Sendable {
    let subscriber: EventHub.Subscriber
    let budget: Int

    /// Hands the stream to the connection's `EventStreamHandler`; false when the pipeline has none.
    package func attach(to channel: any Channel) async -> Bool {
        guard let handler = try? await channel.pipeline.handler(type: EventStreamHandler.self).get() else { return false }
        let subscriber = self.subscriber
        let budget = self.budget
        do {
            try await channel.eventLoop.submit { handler.attach(subscriber, budget: budget) }.get()
            return true
        } catch {
            return false
        }
    }

    /// Returns when the stream has ended (the client went, the hub closed, or the subscriber was dropped).
    package func waitUntilFinished() async {
        await subscriber.waitUntilFinished()
    }

    /// Sets what to do when the hub drops this subscriber for falling behind (close its connection).
    package func onDrop(_ handler: @escaping @Sendable () -> Void) {
        subscriber.dropHandler.withLock { $0 = handler }
    }

    /// Ties the stream to its connection, on either server path: released as soon as the client goes; dropped for
    /// falling behind, the stream ends with a resync and the connection is closed two seconds later anyway (a client
    /// that never reads would hold it forever).
    package func bind(to channel: any Channel) {
        onDrop {
            channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
        channel.closeFuture.whenComplete { _ in cancel() }
    }

    /// Ends the stream and releases the subscriber (the client went away).
    package func cancel() {
        subscriber.finish()
    }
}

import Glibc

/// Wall-clock milliseconds, for the epoch.
func clock_gettime_ms() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// The hub's metrics (swift-metrics; the executable bootstraps Prometheus). Handles are made once per hub, so the
/// per-event path does no registry lookup.
struct HubMetrics: Sendable {
    let subscribers = Gauge(label: "freshet_sse_subscribers")
    let eventsSent = Counter(label: "freshet_sse_events_sent_total")
    /// Trigger time → handed to the subscribers' streams.
    let lag = Metrics.Timer(label: "freshet_sse_lag_seconds")
    let droppedSlow = Counter(label: "freshet_sse_subscribers_dropped_total", dimensions: [("reason", "slow")])
    /// Deliveries an event loop's full write queue dropped (their subscribers are dropped as too slow).
    let loopQueueDropped = Counter(label: "freshet_buffer_dropped_total", dimensions: [("buffer", "loop_write_queue")])
    /// Resumes whose replay was larger than `http.client_buffer` (they got a resync instead).
    let replayDropped = Counter(label: "freshet_buffer_dropped_total", dimensions: [("buffer", "replay")])
    /// The last `at` parsed: a statement's changes share it.
    let lastAt = TimestampCache()
}
