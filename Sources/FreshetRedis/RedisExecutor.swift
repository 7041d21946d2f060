import Foundation
import FreshetCore

/// Runs a batch's steps on a target (one server, Sentinel's master, or a cluster) and checks every reply (on the
/// writer's thread).
///
/// - A "not now" reply (`READONLY`, `LOADING`, …) stops the batch: it is retried whole once Redis takes writes again
///   (UNLINK and SET of a row's latest state are idempotent, so what went through is safe to send again).
/// - A refused SET (`OOM`, `NOPERM`, …) must not leave the old value: the key is UNLINKed instead (the application
///   refills it from the database).
/// - A refused UNLINK, a refused fallback, or a refused SCAN/UNLINK of a pattern flush leaves keys that may be stale:
///   the result says so and the writer records a `redis_refused` gap.
/// A lost connection is thrown.
struct RedisExecutor {
    let observer: RedisWriterObserver?

    /// A command Redis refused.
    struct Refusal {
        var action: String
        var key: String
        var reply: RedisErrorReply
    }

    struct Result {
        var keysFlushed = 0
        /// Every error reply, for the log.
        var refusals: [Refusal] = []
        /// A "not now" reply: the batch did not complete and must be retried.
        var notNow: RedisErrorReply?
        /// A refusal that left keys possibly stale: a `redis_refused` gap.
        var unrepaired: RedisErrorReply?
    }

    func run(_ steps: [RedisBatch.Step], on connection: RedisTarget) throws(RedisError) -> Result {
        var result = Result()
        for step in steps {
            switch step {
            case .pipeline(let operations):
                var fallback: [String] = []
                let replies = try pipeline(operations.map { RedisCommand(key: $0.key, arguments: $0.arguments!) }, on: connection)
                var counts = Counts()
                for (operation, reply) in zip(operations, replies) {
                    guard let error = reply else {
                        counts.ok(operation.action)
                        continue
                    }
                    counts.failed(operation.action)
                    note(error, action: operation.action, key: operation.key, in: &result)
                    if error.isNotNow { continue }
                    if case .set = operation { fallback.append(operation.key) } else { result.unrepaired = result.unrepaired ?? error }
                }
                counts.report(to: observer)
                if result.notNow != nil { return result }
                if !fallback.isEmpty {
                    // A refused SET: delete the key instead, so the old value is not left in the cache.
                    var fallbackCounts = Counts()
                    for (key, reply) in zip(fallback, try pipeline(fallback.map { RedisCommand(key: $0, arguments: ["UNLINK", $0]) }, on: connection)) {
                        guard let error = reply else {
                            fallbackCounts.ok("delete")
                            continue
                        }
                        fallbackCounts.failed("delete")
                        note(error, action: "delete", key: key, in: &result)
                        if !error.isNotNow { result.unrepaired = result.unrepaired ?? error }
                    }
                    fallbackCounts.report(to: observer)
                    if result.notNow != nil { return result }
                }
            case .flush(let pattern):
                do {
                    let deleted = try connection.unlinkMatching(pattern)
                    result.keysFlushed += deleted
                    observer?.commandsCompleted(action: "flush", ok: 1, failed: 0)
                    observer?.keysFlushed(deleted)
                } catch where error.code == .commandFailed && error.reply != nil {
                    observer?.commandsCompleted(action: "flush", ok: 0, failed: 1)
                    note(error.reply!, action: "flush", key: pattern, in: &result)
                    if result.notNow != nil { return result }
                    result.unrepaired = result.unrepaired ?? error.reply
                }
            }
        }
        return result
    }

    private func note(_ reply: RedisErrorReply, action: String, key: String, in result: inout Result) {
        observer?.errorReplied(reply)
        result.refusals.append(Refusal(action: action, key: key, reply: reply))
        if reply.isNotNow && result.notNow == nil { result.notNow = reply }
    }

    /// Sends the commands pipelined; each reply is nil (success) or the error reply.
    private func pipeline(_ commands: [RedisCommand], on target: RedisTarget) throws(RedisError) -> [RedisErrorReply?] {
        try target.pipeline(commands).map { reply in reply.errorText.map(RedisErrorReply.init) }
    }
}

/// Per-action counts of one pipelined round trip, reported to the observer once.
private struct Counts {
    var ok: [String: Int] = [:]
    var failed: [String: Int] = [:]

    mutating func ok(_ action: String) { ok[action, default: 0] += 1 }
    mutating func failed(_ action: String) { failed[action, default: 0] += 1 }

    func report(to observer: RedisWriterObserver?) {
        guard let observer else { return }
        for action in Set(ok.keys).union(failed.keys) {
            observer.commandsCompleted(action: action, ok: ok[action] ?? 0, failed: failed[action] ?? 0)
        }
    }
}
