import FreshetCore
@testable import FreshetHTTP
import Logging
import NIOCore
import Testing

/// Resuming with durable ids (`LSN-N`, replication source), without a server: what a resume gets, read from the
/// subscriber's mailbox.
struct DurableResumeTests {
    func hub() -> EventHub {
        EventHub(replay: 100, clientBuffer: 1 << 20, heartbeat: 60, durableIDs: true, logger: Logger(label: "test"))
    }

    func event(_ lsn: UInt64, _ n: UInt64) -> ChangeEvent {
        var event = ChangeEvent(op: .update, schema: "public", table: "t", configName: "t", key: ["id": .number("\(n)")],
                                topics: ["t"], at: "2026-12-01T00:00:00+00:00")
        event.id = EventID(epoch: lsn, sequence: n)
        return event
    }

    /// The ids and resyncs the resume got before live events.
    func resume(_ hub: EventHub, from id: String) -> (ids: [String], resync: Bool) {
        let stream = hub.subscribe(SubscriptionRequest(patterns: [], lastEventID: id))
        let pending = stream.subscriber.activate(EventStreamHandler()) ?? ByteBuffer()
        let text = String(buffer: pending)
        let ids = text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) }
        stream.cancel()
        return (text.contains("event: resync") ? Array(ids.dropLast()) : ids, text.contains("event: resync"))
    }

    @Test func aResumeAtOrAfterTheFloorIsCompleteAndOlderOnesResync() {
        let hub = hub()
        #expect(resume(hub, from: "100-1").resync)  // the source is not streaming yet
        hub.setResumeFloor(EventID(epoch: 100, sequence: 0), ceiling: 500, gap: false)
        hub.publish(event(200, 1))
        hub.publish(event(200, 2))
        hub.publish(event(300, 1))
        #expect(resume(hub, from: "200-1") == (["200-2", "300-1"], false))
        #expect(resume(hub, from: "150-3") == (["200-1", "200-2", "300-1"], false))  // after the floor: complete
        #expect(resume(hub, from: "99-9").resync)  // before the floor
        #expect(resume(hub, from: "900000-1").resync)  // beyond anything this history has: another history's id
        #expect(resume(hub, from: "1767225600000-42").resync)  // a notify-mode id
    }

    @Test func aGapMakesOlderResumesResync() {
        let hub = hub()
        hub.setResumeFloor(EventID(epoch: 100, sequence: 0), ceiling: 500, gap: false)
        hub.publish(event(200, 1))
        hub.setResumeFloor(EventID(epoch: 400, sequence: 0), ceiling: 500, gap: true)  // the slot was recreated
        #expect(resume(hub, from: "200-1").resync)
        hub.publish(event(450, 1))
        #expect(resume(hub, from: "450-1") == ([], false))
    }

    @Test func droppedEventsMakeResumesBeforeTheNextEventResync() {
        let hub = hub()
        hub.setResumeFloor(EventID(epoch: 100, sequence: 0), ceiling: 500, gap: false)
        hub.publish(event(200, 1))
        hub.publishResync(reason: "events dropped", eventsDropped: true)  // 210-1 … 300-1 never published
        #expect(resume(hub, from: "200-1").resync)
        hub.publish(event(310, 1))
        #expect(resume(hub, from: "250-1").resync)  // one of the dropped events
        #expect(resume(hub, from: "310-1") == ([], false))
    }

    @Test func liveEventsUpToTheResumedIdAreNotSentAgain() {
        let hub = hub()
        hub.setResumeFloor(EventID(epoch: 100, sequence: 0), ceiling: 500, gap: false)
        let stream = hub.subscribe(SubscriptionRequest(patterns: [], lastEventID: "200-2"))
        #expect(stream.subscriber.after == EventID(epoch: 200, sequence: 2))
        hub.publish(event(200, 1))  // sent again by the slot after a restart: the client has it
        hub.publish(event(200, 3))
        let text = String(buffer: stream.subscriber.activate(EventStreamHandler()) ?? ByteBuffer())
        #expect(!text.contains("id: 200-1") && text.contains("id: 200-3"))
        stream.cancel()
    }

    /// A failover to a standby that lagged: the recreated slot starts below events already published. Old ids resync
    /// (even the last one), and a subscriber that resumed from an old id still gets the new, lower ids.
    @Test func aSlotRecreatedBelowPublishedEventsStartsANewHistory() {
        let hub = hub()
        hub.setResumeFloor(EventID(epoch: 100, sequence: 0), ceiling: 500, gap: false)
        hub.publish(event(400, 1))
        let before = hub.subscribe(SubscriptionRequest(patterns: [], lastEventID: "400-1"))  // live, resumed at the end
        #expect(before.subscriber.after == EventID(epoch: 400, sequence: 1))
        hub.setResumeFloor(EventID(epoch: 250, sequence: 0), ceiling: 300, gap: true)  // the new primary is behind
        #expect(resume(hub, from: "400-1").resync)
        #expect(resume(hub, from: "300-1").resync)
        let after = hub.subscribe(SubscriptionRequest(patterns: [], lastEventID: "400-1"))
        #expect(after.subscriber.after == nil)  // resynced: nothing it has is a repeat
        hub.publish(event(260, 1))
        for stream in [before, after] {
            let text = String(buffer: stream.subscriber.activate(EventStreamHandler()) ?? ByteBuffer())
            #expect(text.contains("id: 260-1"))
            stream.cancel()
        }
        #expect(resume(hub, from: "260-1") == ([], false))
    }
}
