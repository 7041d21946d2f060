@testable import FreshetHTTP
import NIOCore
import NIOEmbedded
import Testing

/// The per-event-loop write queue holds a bounded number of events while its loop does not run.
struct LoopWriteQueueTests {
    @Test func eventsPastTheLimitDropTheirSubscribersInsteadOfGrowingTheQueue() {
        let loop = EmbeddedEventLoop()
        let queue = LoopWriteQueue(loop: loop, limit: 3)
        let slow = EventStreamHandler()
        let other = EventStreamHandler()
        let event = ByteBuffer(string: "data: x\n\n")
        for _ in 0..<3 { queue.append(event, to: [other]) }  // within the limit
        #expect(queue.waiting == 3)
        for _ in 0..<5 { queue.append(event, to: [slow]) }  // past it: not queued
        #expect(queue.waiting == 3)
        loop.run()  // the loop gets to run: the drain drops the subscriber whose events were dropped
        #expect(slow.isDropped)
        #expect(!other.isDropped)
        #expect(queue.waiting == 0)
    }
}
