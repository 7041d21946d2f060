import FreshetCore
@testable import FreshetRedis
import Testing

/// The writer's outage and refusal rules, without a server.
struct RedisWriterStateTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .seconds(seconds) }
    let readonly = RedisErrorReply("READONLY You can't write against a read only replica.")

    @Test func eventsAreReleasedAfterTimeoutAndTheBacklogDroppedAfterMaxOutage() {
        var state = RedisWriterState(timeout: 1, maxOutage: 5)
        var d = state.failed(.notNow(readonly), now: at(0), hasBacklog: true, stopping: false, pastDeadline: false)
        #expect(!d.releaseEvents && d.dropBacklog == nil && !d.stop && d.log)
        #expect(d.delay > 0 && d.delay <= 0.25)
        d = state.failed(.unreachable("refused"), now: at(1.5), hasBacklog: true, stopping: false, pastDeadline: false)
        #expect(d.releaseEvents && d.dropBacklog == nil && !d.log)
        d = state.failed(.unreachable("refused"), now: at(5), hasBacklog: true, stopping: false, pastDeadline: false)
        #expect(d.dropBacklog == "redis_outage")
        // Nothing waiting: a long outage drops nothing.
        d = state.failed(.unreachable("refused"), now: at(9), hasBacklog: false, stopping: false, pastDeadline: false)
        #expect(d.dropBacklog == nil)
        #expect(state.outageSince == at(0))
    }

    @Test func shuttingDownPastTheDeadlineStops() {
        var state = RedisWriterState(timeout: 1, maxOutage: 5)
        #expect(!state.failed(.unreachable("x"), now: at(0), hasBacklog: true, stopping: true, pastDeadline: false).stop)
        #expect(state.failed(.unreachable("x"), now: at(0.1), hasBacklog: true, stopping: true, pastDeadline: true).stop)
    }

    @Test func aNotNowReplyIsTheReadinessReasonUntilAnAttemptGoesThrough() {
        var state = RedisWriterState(timeout: 1, maxOutage: 5)
        #expect(state.notReadyReasons(now: at(0)).isEmpty)
        _ = state.failed(.notNow(readonly), now: at(0), hasBacklog: true, stopping: false, pastDeadline: false)
        #expect(state.notReadyReasons(now: at(0)) == ["Redis cannot take writes now: \(readonly.text)"])
        let ended = state.succeeded()
        let again = state.succeeded()
        #expect(ended)
        #expect(!again)  // no outage to end any more
        #expect(state.notReadyReasons(now: at(1)).isEmpty)
        #expect(state.outageSince == nil)
    }

    @Test func aGapKeepsItsFirstCauseUntilRepaired() {
        var state = RedisWriterState(timeout: 1, maxOutage: 5)
        let opened = state.openGap("redis_refused")
        let reopened = state.openGap("redis_overflow")
        #expect(opened && !reopened)
        #expect(state.notReadyReasons(now: at(0)).count == 1)
        #expect(state.notReadyReasons(now: at(0))[0].contains("redis_refused"))
        let cause = state.repaired()
        #expect(cause == "redis_refused")
        #expect(state.gapCause == nil)
        #expect(state.notReadyReasons(now: at(0)).isEmpty)
    }

    @Test func aRefusalHoldsReadinessUntilACleanBatchOrTheHoldPasses() {
        var state = RedisWriterState(timeout: 1, maxOutage: 5)
        let oom = RedisErrorReply("OOM command not allowed when used memory > 'maxmemory'.")
        state.refused(oom, now: at(0))
        #expect(state.notReadyReasons(now: at(1)) == ["Redis refused a command: \(oom.text)"])
        #expect(state.notReadyReasons(now: at(RedisWriterState.refusalHold + 1)).isEmpty)
        state.refused(oom, now: at(0))
        state.clearRefusal()
        #expect(state.notReadyReasons(now: at(1)).isEmpty)
    }

    @Test func errorRepliesAreClassifiedByTheirFirstWord() {
        for word in ["READONLY", "LOADING", "MASTERDOWN", "MISCONF", "BUSY", "TRYAGAIN", "CLUSTERDOWN"] {
            #expect(RedisErrorReply("\(word) something").isNotNow, "\(word)")
        }
        let noperm = RedisErrorReply("NOPERM this user has no permissions to run the 'unlink' command")
        #expect(noperm.word == "NOPERM" && !noperm.isNotNow)
        #expect(RedisErrorReply("OOM command not allowed").word == "OOM")
        #expect(RedisErrorReply("ERR unknown command").word == "ERR")
        #expect(RedisErrorReply("weird lower-case reply").word == "OTHER")
        #expect(RedisErrorReply("").word == "OTHER")
        #expect(RedisErrorReply(String(repeating: "x", count: 500)).description.count == 201)
    }

    @Test func refusalsAreLoggedOncePerBurst() {
        var log = RefusalLog()
        let lines = [
            log.shouldLog("OOM", now: at(0)), log.shouldLog("OOM", now: at(1)), log.shouldLog("OOM", now: at(2)),
            log.shouldLog("NOPERM", now: at(2)),  // another reply is another burst
            log.shouldLog("OOM", now: at(RefusalLog.interval + 0.5)),
        ]
        #expect(lines == [0, nil, nil, 0, 2])
    }
}

/// The queue between the pipeline and the writer's thread: never waits, overflows past `maxPending`.
struct RedisJobQueueTests {
    func job(_ keys: [String], repair: String? = nil) -> RedisJob {
        RedisJob(operations: keys.map { .unlink($0) }, event: nil, repairCause: repair)
    }

    @Test func jobsWithinTheBoundAreTakenInOrder() {
        let queue = RedisJobQueue(maxPending: 10)
        #expect(queue.submit([job(["a", "b"]), job(["c"])]) == (3, 0))
        let taken = queue.take(limit: 2, wait: false, idle: 0)
        #expect(taken.jobs.map(\.operations.count) == [2])
        #expect(!taken.overflowed)
        #expect(queue.take(limit: 100, wait: false, idle: 0).jobs.map { $0.operations[0].key } == ["c"])
        #expect(queue.pendingOperations == 3)  // taken is not acknowledged
        #expect(queue.release(3) == 0)
    }

    @Test func aSubmissionPastTheBoundDropsTheWaitingOperationsButKeepsEventsAndRepairs() {
        let queue = RedisJobQueue(maxPending: 4)
        _ = queue.submit([job(["a", "b"])])
        _ = queue.take(limit: 100, wait: false, idle: 0)  // in the thread's backlog: 2 pending
        _ = queue.submit([job(["c"]), job([], repair: "startup")])
        let (pending, dropped) = queue.submit([job(["d", "e"]), job(["*"], repair: "listen_reconnect")])
        #expect(dropped == 3)  // c, d, e
        #expect(pending == 3)  // the backlog's 2 and the repair's 1
        let taken = queue.take(limit: 100, wait: false, idle: 0)
        #expect(taken.overflowed && taken.droppedOperations == 3)
        #expect(taken.jobs.count == 4)
        #expect(taken.jobs.map(\.operations.count) == [0, 0, 0, 1])
        #expect(taken.jobs.map(\.dropped) == [true, false, true, false])
        #expect(!queue.take(limit: 100, wait: false, idle: 0).overflowed)  // reported once
    }

    @Test func aSecondStopGivesUpAtOnce() {
        let queue = RedisJobQueue(maxPending: 4)
        queue.stop(timeout: 60)
        let first = queue.take(limit: 1, wait: false, idle: 0)
        #expect(first.stopping && first.deadline! > .now + .seconds(30))
        queue.stop(timeout: 60)
        #expect(queue.take(limit: 1, wait: false, idle: 0).deadline! <= .now)
    }
}

extension RedisWriterStateTests {
    /// The replication source's writer (durable) never drops its backlog, however long Redis is away.
    @Test func aDurableWriterNeverDropsItsBacklog() {
        var state = RedisWriterState(timeout: 1, maxOutage: .infinity)
        _ = state.failed(.unreachable("x"), now: at(0), hasBacklog: true, stopping: false, pastDeadline: false)
        let d = state.failed(.unreachable("x"), now: at(100_000), hasBacklog: true, stopping: false, pastDeadline: false)
        #expect(d.dropBacklog == nil && d.releaseEvents)
    }
}
