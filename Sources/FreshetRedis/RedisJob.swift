import FreshetCore

/// The Redis operations of one change, and the event to publish once Redis has acknowledged them; or a gap repair.
package struct RedisJob: Sendable {
    package var operations: [RedisOperation]
    package var event: ChangeEvent?
    /// Set on a gap repair job (its operations flush every template pattern): the cause, for the log and the resync.
    package var repairCause: String?
    /// Set on the repair of a replication slot made again (replication source): the new slot's first position. Its ids
    /// may be lower than those already published (a failover to a standby that lagged); the relay stream then starts
    /// over (`RelayStreamWriter`).
    package var historyStart: EventID?
    /// Its operations were dropped by a queue overflow (`redis_overflow`): only the event is left.
    package var dropped = false
    /// What Redis applying this job proves, for the replication source's confirmations.
    package var confirms: JobConfirmation?

    package init(operations: [RedisOperation], event: ChangeEvent?, repairCause: String? = nil) {
        self.operations = operations
        self.event = event
        self.repairCause = repairCause
    }
}

/// What a job's being applied by Redis proves (replication source): reported to `RedisWriter.onApplied` once every
/// job up to it was applied.
///
/// `history` counts the slot's lives in this process: a slot recreated after a failover to a standby that had not
/// received everything starts over at lower positions, so a position only compares with those of its own history.
package enum JobConfirmation: Sendable, Equatable {
    /// The last job of the transaction with this commit LSN.
    case transaction(UInt64, history: UInt64 = 0)
    /// The stored replication position (a marker key) with this LSN.
    case stored(UInt64, history: UInt64 = 0)
}

/// A job the writer has finished, in submission order.
package struct RedisCompletion: Sendable {
    package var job: RedisJob
    /// False when the job's event was released before Redis acknowledged every operation: Redis was away past
    /// `redis.timeout` (its operations are still queued, or were dropped with a gap recorded), or refused one (a
    /// `redis_refused` gap). Subscribers are not held back; the keys are put right by the retry or the repair.
    package var acknowledged: Bool
    /// Keys deleted by the job's pattern flushes.
    package var keysFlushed: Int
}

/// Counts what the writer does, for metrics and tests. Called on the writer's thread.
package protocol RedisWriterObserver: Sendable {
    func commandsCompleted(action: String, ok: Int, failed: Int)
    /// Redis answered a command with an error reply.
    func errorReplied(_ reply: RedisErrorReply)
    func pendingChanged(_ pending: Int)
    func connectionChanged(connected: Bool)
    /// Keys deleted by a pattern flush (truncate, gap repair).
    func keysFlushed(_ count: Int)
    /// The writer recorded a gap: `redis_overflow`, `redis_outage`, `redis_refused` or `shutdown`.
    func gapRecorded(cause: String)
    /// Operations dropped with a gap (their keys are repaired by the flush).
    func operationsDropped(_ count: Int)
    /// Items a full buffer dropped (`completions`: events the publisher could not take; a resync follows).
    func bufferDropped(_ buffer: String, count: Int)
    /// A Redis Cluster node redirected a command or asked for a retry: `moved`, `ask`, `tryagain`, `clusterdown`,
    /// `loading`.
    func redirected(kind: String)
    /// The masters in use (a cluster's masters; 1 for one server or Sentinel's master).
    func nodesChanged(_ count: Int)
    /// A master changed (a failover); `replayed` operations were applied again.
    func failoverReplayed(operations: Int)
}

extension RedisWriterObserver {
    package func redirected(kind: String) {}
    package func nodesChanged(_ count: Int) {}
    package func failoverReplayed(operations: Int) {}
}
