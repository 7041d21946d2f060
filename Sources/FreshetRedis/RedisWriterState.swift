import FreshetCore

/// The Redis writer's outage and refusal rules, as a value: the writer's thread feeds it what happened and does what
/// it returns. Tested without a server (`RedisWriterStateTests`), in the way PostgresNIO keeps its protocol state in
/// state machines.
///
/// - A **fault** (no connection, a "not now" reply such as `READONLY`, or a refused gap repair) starts an outage. While
///   it lasts the backlog is kept in order and retried with backoff; past `timeout` the waiting jobs' events are
///   released (subscribers are not held back); past `maxOutage` the backlog is dropped and a `redis_outage` gap opens.
/// - A **gap** (`redis_overflow`, `redis_outage`, `redis_refused`, `shutdown`) stays open until a repair (flush every
///   template pattern) completes; the first cause is the one reported.
/// - A **refusal** of a single command (`OOM`, `NOPERM`, …) keeps `/readyz` at 503 until a later batch goes through
///   with no error reply, or `refusalHold` seconds pass without one.
package struct RedisWriterState: Sendable {
    /// Why Redis cannot be written to now.
    package enum Fault: Sendable, Equatable {
        /// No connection, or it broke or timed out.
        case unreachable(String)
        /// Redis answered "not now" (`READONLY`, `LOADING`, …).
        case notNow(RedisErrorReply)
        /// Redis refused the commands of a gap repair (its SCAN or UNLINK).
        case repairRefused(RedisErrorReply)

        /// A failed attempt's fault: "not now" when Redis answered with an error reply, else unreachable (`context`
        /// prefixes the message).
        package init(_ error: RedisError, context: String? = nil) {
            if let reply = error.reply {
                self = .notNow(reply)
            } else {
                self = .unreachable(context.map { "\($0): \(error.message)" } ?? error.message)
            }
        }

        /// For `/readyz` and the log.
        package var reason: String {
            switch self {
            case .unreachable(let message): return "Redis does not answer: \(message)"
            case .notNow(let reply): return "Redis cannot take writes now: \(reply)"
            case .repairRefused(let reply): return "Redis refuses the gap repair: \(reply)"
            }
        }
    }

    /// What the writer does after a failed attempt.
    package struct Decision: Sendable, Equatable {
        /// Report the waiting jobs' events now: Redis has been away for `timeout` or longer.
        package var releaseEvents = false
        /// Drop the backlog and record a gap with this cause.
        package var dropBacklog: String?
        /// Shutting down past the deadline: drop the backlog (a `shutdown` gap) and end.
        package var stop = false
        /// Log this attempt's fault (the first attempt of an outage, then every 20th).
        package var log = false
        /// Seconds to wait before the next attempt.
        package var delay: Double = 0
    }

    package let timeout: Double
    package let maxOutage: Double
    /// Seconds a single refused command keeps `/readyz` at 503 when no later batch clears it.
    package static let refusalHold = 30.0

    package private(set) var outageSince: ContinuousClock.Instant?
    package private(set) var fault: Fault?
    package private(set) var gapCause: String?
    package private(set) var lastRefusal: (reply: RedisErrorReply, at: ContinuousClock.Instant)?
    private var backoff = Backoff(base: 0.05, cap: 1)

    package init(timeout: Double, maxOutage: Double) {
        self.timeout = timeout
        self.maxOutage = maxOutage
    }

    /// An attempt failed: start or continue the outage and say what to do.
    package mutating func failed(
        _ fault: Fault, now: ContinuousClock.Instant, hasBacklog: Bool, stopping: Bool, pastDeadline: Bool
    ) -> Decision {
        let since = outageSince ?? now
        outageSince = since
        self.fault = fault
        var decision = Decision()
        if stopping && pastDeadline {
            decision.stop = true
            return decision
        }
        let down = now - since
        decision.releaseEvents = down >= .seconds(timeout)
        if hasBacklog && maxOutage.isFinite && down >= .seconds(maxOutage) { decision.dropBacklog = "redis_outage" }
        decision.delay = min(backoff.next(), 0.25)
        decision.log = backoff.attempt <= 1 || backoff.attempt % 20 == 0
        return decision
    }

    /// An attempt went through. Returns true when it ended an outage.
    package mutating func succeeded() -> Bool {
        fault = nil
        guard outageSince != nil else { return false }
        outageSince = nil
        backoff.reset()
        return true
    }

    /// A batch went through with no error reply: a past refusal no longer holds readiness.
    package mutating func clearRefusal() { lastRefusal = nil }

    /// Redis refused a single command (the writer fell back or recorded a gap).
    package mutating func refused(_ reply: RedisErrorReply, now: ContinuousClock.Instant) {
        lastRefusal = (reply, now)
    }

    /// Opens a gap (or keeps the one open, with its first cause). Returns true when it was not open yet.
    @discardableResult
    package mutating func openGap(_ cause: String) -> Bool {
        guard gapCause == nil else { return false }
        gapCause = cause
        return true
    }

    /// The gap's repair completed. Returns its cause.
    package mutating func repaired() -> String? {
        defer { gapCause = nil }
        return gapCause
    }

    /// Why `/readyz` should say 503 because of Redis; empty when Redis takes writes and no gap waits.
    package func notReadyReasons(now: ContinuousClock.Instant) -> [String] {
        var reasons: [String] = []
        if let fault { reasons.append(fault.reason) }
        if let gapCause { reasons.append("Redis operations were dropped (gap: \(gapCause)); repair waits for Redis") }
        if let refusal = lastRefusal, now - refusal.at < .seconds(Self.refusalHold) {
            reasons.append("Redis refused a command: \(refusal.reply)")
        }
        return reasons
    }
}
