import Foundation
import FreshetCore
import FreshetHTTP
import FreshetPostgres
import FreshetRedis
import FreshetSystem
import Logging
import ServiceLifecycle
import Synchronization

/// The `replication` source (`postgres.source: replication`): resolves the tables and checks their replica
/// identities, then runs the `ReplicationReader` and, on its thread, turns each committed transaction into Redis jobs
/// handed straight to the writer through the shared `ChangeSink` (decode and plan where the data arrives: no other
/// hand-off).
///
/// Each change's event id is `LSN-N` (commit LSN, 1-based index in the transaction): the same after any restart. A
/// transaction is confirmed to the slot only once Redis applied its jobs and every earlier one's (`RedisWriter`'s
/// `onApplied`), and only after the position and the last event id before it were stored in Redis
/// (`freshet:{slot}:position`), which is what lets a `Last-Event-ID` resume across restarts be proven complete.
final class ReplicationSource: Service {
    let context: SourceContext
    let redis: RedisAccess
    let positions: ReplicationPositions

    init(context: SourceContext, redis: RedisAccess, positions: ReplicationPositions) {
        self.context = context
        self.redis = redis
        self.positions = positions
    }

    var config: FreshetConfig { context.config }

    /// The Redis key holding the last confirmed position and the last event id before it.
    var positionKey: String { "freshet:\(config.postgres.replication.slot):position" }

    /// The Redis key recording a slot made but not yet repaired for (its gap's cause): set before the slot is made,
    /// removed once the repair was applied. A process that died in between leaves it for the next one, which repairs
    /// although the slot exists.
    var repairKey: String { "freshet:\(config.postgres.replication.slot):repair" }

    func run() async throws {
        let catalog: TableCatalog
        let marker: StoredPosition?
        let pendingRepair: String?
        do {
            catalog = try await cancelWhenGracefulShutdown { try await self.start() }
            guard let state = await readState() else {  // stopped while Redis was away
                try? await gracefulShutdown()
                return
            }
            (marker, pendingRepair) = state
        } catch is CancellationError {
            try? await gracefulShutdown()
            return
        }
        let fatal = FatalProblem()
        var settings = ReplicationReader.Settings(
            conninfo: config.postgres.url, slot: config.postgres.replication.slot,
            publication: config.postgres.replication.publication, manage: config.postgres.replication.manage,
            maxRetained: config.postgres.replication.maxRetained, tables: catalog.tables.map(\.schema.quotedName)
        )
        // A repair left undone: the stored position belongs to the slot before it, and seeds nothing.
        settings.stored = pendingRepair == nil ? marker.map { ($0.lsn, $0.lastEvent) } : nil
        let sink = ChangeSink(catalog: catalog, context: context)
        let reader = ReplicationReader(
            settings: settings, hooks: hooks(sink: sink, marker: marker, pendingRepair: pendingRepair, fatal: fatal), logger: context.logger
        )
        await withGracefulShutdownHandler {
            await reader.run()
        } onGracefulShutdown: {
            reader.stop()
        }
        context.queries.close()
        if let problem = fatal.problem.withLock({ $0 }) { throw ConfigError(problems: [problem]) }
        try? await gracefulShutdown()
    }

    private func start() async throws -> TableCatalog {
        let catalog = try await ChangeSink.prepare(context, replication: true)
        let installed = try? await context.queries.run { connection throws(PostgresError) in
            try connection.query(
                "SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgname = ANY ($1::text[])",
                parameters: ["{" + TriggerSQL.triggerNames.joined(separator: ",") + "}"]
            )
        }
        if let count = installed?.first?.first ?? nil, count != "0" {
            context.logger.warning("Freshet's NOTIFY triggers are still installed: the application's writes still pay for them; remove them with `freshet triggers uninstall`")
        }
        context.readiness.update { $0.tablesResolved = true }
        return catalog
    }

    /// Read once at start, before the slot is used: the position and event id stored with the last confirmation, and
    /// a repair a process left undone (`repairKey`). Waits for Redis (nothing can be invalidated without it anyway);
    /// nil when stopped meanwhile.
    private func readState() async -> (StoredPosition?, String?)? {
        let (positionKey, repairKey, redis, logger) = (positionKey, repairKey, redis, context.logger)
        let result = Mutex<(StoredPosition?, String?)?>(nil)
        let stop = Mutex(false)
        await withGracefulShutdownHandler {
            await runOnDedicatedThread(name: "freshet-replication-state", body: {
                let target = redis.target(logger: logger)
                var backoff = Backoff(base: 0.2, cap: 2)
                while !stop.withLock({ $0 }) {
                    do throws(RedisError) {
                        let replies = try target.pipeline([
                            RedisCommand(key: positionKey, arguments: ["GET", positionKey]),
                            RedisCommand(key: repairKey, arguments: ["GET", repairKey]),
                        ])
                        if let text = replies.lazy.compactMap(\.errorText).first { throw RedisError.refused("GET", RedisErrorReply(text)) }
                        result.withLock { $0 = (replies[0].text.flatMap(StoredPosition.init(parsing:)), replies[1].text) }
                        return
                    } catch {
                        target.reset()
                        if backoff.attempt == 0 {
                            logger.warning("waiting for Redis to read the replication state", metadata: ["error": "\(error.message)"])
                        }
                        Thread.sleep(forTimeInterval: backoff.next())
                    }
                }
            }, stop: { stop.withLock { $0 = true } })
        } onGracefulShutdown: {
            stop.withLock { $0 = true }
        }
        return result.withLock { $0 }
    }

    /// Records the repair a slot about to be made needs (`repairKey`); throws when Redis does not take it, or when
    /// this process no longer holds the writer lock (`http.relay: redis`: the next writer makes the slot).
    private func recordRepair(_ cause: String) throws {
        if let fence = context.fence, !fence.isOpen {
            throw PostgresError(code: .connectionFailed, message: "not the writer any more: the slot is left to the next one")
        }
        let target = redis.target(logger: context.logger)
        let reply = try target.command(["SET", repairKey, cause], key: repairKey)
        if let text = reply.errorText { throw RedisError.refused("SET", RedisErrorReply(text)) }
    }

    private func hooks(sink: ChangeSink, marker: StoredPosition?, pendingRepair: String?, fatal: FatalProblem) -> ReplicationHooks {
        let (writer, hub, readiness, metrics) = (context.writer, context.hub, context.readiness, context.metrics)
        let planner = TransactionPlanner(
            catalog: sink.catalog, queries: context.queries, logger: context.logger, metrics: metrics, stats: context.stats
        )
        let streamed = OnceFlag()
        let pending = Mutex(pendingRepair)
        return ReplicationHooks(
            streaming: { [self] gap, confirmed, server in
                // A repair a process left undone (it died between making the slot and applying the flush): done now,
                // although the slot exists.
                let left = pending.withLock { value in defer { value = nil }; return value }
                let gap = gap ?? left
                // Resumes from here on are complete: the slot sends everything after its confirmed position again,
                // and nothing between the stored last event and that position was an event. The marker counts only
                // when it is not behind the slot (Redis may have lost its newest write) and no gap came between.
                var floor = EventID(epoch: confirmed, sequence: 0)
                if gap == nil, let marker, marker.lsn >= confirmed, let event = marker.lastEvent, event < floor { floor = event }
                // With the relay, every process's floor comes from the relay stream (`RelayReader`).
                if config.http.relay == .none { hub.setResumeFloor(floor, ceiling: server, gap: gap != nil) }
                // A missing slot that Freshet had used (its position is stored, or this process streamed from it before
                // the connection dropped: a failover to a standby without it) was lost, not new.
                let streamedBefore = streamed.mark()
                // A new slot: its positions start a history of their own (they may be lower than the old slot's).
                if gap != nil { positions.beginHistory() }
                sink.sourceUp(
                    gap: gap == "slot_created" && (marker != nil || streamedBefore) ? "slot_lost" : gap,
                    historyStart: gap != nil ? EventID(epoch: confirmed, sequence: 0) : nil
                )
                // Behind the repair in the writer's order: the record goes once the flush was applied.
                if gap != nil { writer.submit(RedisJob(operations: [.unlink(repairKey)], event: nil)) }
            },
            disconnected: { _ in sink.sourceDown() },
            transaction: { [positions] piece, handedEarlier, tick in
                var jobs = planner.jobs(for: piece, tick: tick)
                let lastEvent = jobs.last { $0.event != nil }?.event?.id
                if piece.final && (handedEarlier || !jobs.isEmpty) {
                    // The transaction's confirmation rides on its last job (an empty one when the last piece has none).
                    if jobs.isEmpty { jobs.append(RedisJob(operations: [], event: nil)) }
                    jobs[jobs.count - 1].confirms = .transaction(piece.commit, history: positions.history)
                }
                guard !jobs.isEmpty else { return (false, nil) }
                sink.submit(jobs)
                return (true, lastEvent)
            },
            canTakeMore: { [maxPending = config.redis.maxPending] in writer.pending < maxPending },
            applied: { [positions] in positions.applied },
            storePosition: { [self] lsn, lastEvent in
                var job = RedisJob(
                    operations: [.set(key: positionKey, value: StoredPosition(lsn: lsn, lastEvent: lastEvent).text, ttlMilliseconds: nil)],
                    event: nil
                )
                job.confirms = .stored(lsn, history: positions.history)
                writer.submit(job)
            },
            stored: { [positions] in positions.stored },
            notReady: { [readiness] reason in readiness.update { $0.slotProblem = reason } },
            positions: { [metrics] confirmed, server, retained in
                metrics.replicationPositions(confirmed: confirmed, server: server, retained: retained)
            },
            fatal: { field, message in fatal.problem.withLock { $0 = ConfigProblem(field: field, message: message) } },
            mayConnect: { [fence = context.fence] in fence?.isOpen ?? true },
            willMakeSlot: { [self] cause in
                try recordRepair(cause)
                pending.withLock { $0 = cause }  // repaired at this process's next streaming, whenever that is
            }
        )
    }
}

/// Set the first time something happens; `mark` says whether it had happened before.
final class OnceFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    /// Sets the flag; returns whether it was already set.
    func mark() -> Bool { flag.exchange(true, ordering: .relaxed) }
}

/// A problem the reader gave up on (the pipeline then exits with it).
final class FatalProblem: Sendable {
    let problem = Mutex<ConfigProblem?>(nil)
}

/// What Redis applied and stored for the replication source, written by the writer's thread and read by the reader's.
///
/// Positions belong to a slot history: when the slot had to be made again (`beginHistory`, at the reader's gap), the
/// new slot's positions may be lower than the old one's (a failover to a standby that had not received everything),
/// so what was applied before no longer proves anything, and confirmations still in flight from the old history are
/// ignored when they arrive.
final class ReplicationPositions: Sendable {
    private struct State {
        var history: UInt64 = 0
        var applied: UInt64 = 0
        var stored: UInt64 = 0
    }

    private let state = Mutex(State())

    var applied: UInt64 { state.withLock { $0.applied } }
    var stored: UInt64 { state.withLock { $0.stored } }
    /// The current history, for the confirmations of jobs submitted now.
    var history: UInt64 { state.withLock { $0.history } }

    /// A new slot history begins (on the reader's thread, before any of its transactions is handed over).
    func beginHistory() {
        state.withLock { $0 = State(history: $0.history + 1) }
    }

    /// For `RedisWriter.onApplied`.
    func record(_ confirmation: JobConfirmation) {
        state.withLock { state in
            switch confirmation {
            case .transaction(let lsn, let history) where history == state.history: state.applied = max(state.applied, lsn)
            case .stored(let lsn, let history) where history == state.history: state.stored = max(state.stored, lsn)
            default: break
            }
        }
    }
}

/// `freshet:{slot}:position`: the confirmed position and the id of the last event before it, as `LSN EVENT-ID`.
struct StoredPosition: Sendable, Equatable {
    var lsn: UInt64
    var lastEvent: EventID?

    var text: String { "\(lsn) \(lastEvent?.description ?? "-")" }

    init(lsn: UInt64, lastEvent: EventID?) {
        self.lsn = lsn
        self.lastEvent = lastEvent
    }

    init?(parsing text: String) {
        let parts = text.split(separator: " ")
        guard parts.count == 2, let lsn = UInt64(parts[0]) else { return nil }
        self.lsn = lsn
        self.lastEvent = EventID(parsing: String(parts[1]))
    }
}
