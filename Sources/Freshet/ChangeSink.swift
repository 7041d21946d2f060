import FreshetCore
import FreshetHTTP
import FreshetPostgres
import FreshetRedis
import Logging

/// What every capture source works with: built once by `FreshetApplication`, shared by the source and its sink.
struct SourceContext: Sendable {
    let config: FreshetConfig
    let writer: RedisWriter
    let hub: EventHub
    /// The query connection (table resolution, read-backs); the source closes it when it ends.
    let queries: PostgresQueryConnection
    let readiness: ReadinessState
    let logger: Logger
    let metrics: FreshetMetrics
    let stats: PipelineStats
    /// `http.relay: redis`: open while this process holds the writer lock (nil: always the writer).
    let fence: WriterFence?
}

/// The one interface between a capture source and everything after it (writer, publisher, hub).
///
/// Both sources (`NotifySource`, `ReplicationSource`) resolve their tables with `prepare`, then call the sink **on
/// their own thread**, in order: `sourceUp` when changes flow (with the gap to repair, if any), `submit` with the
/// planned Redis jobs of each change, `sourceDown` when the connection is lost. `submit` never waits (the writer's
/// queue is bounded by `redis.max_pending`), so a source always keeps draining PostgreSQL.
final class ChangeSink: Sendable {
    let catalog: TableCatalog
    let context: SourceContext

    init(catalog: TableCatalog, context: SourceContext) {
        self.catalog = catalog
        self.context = context
    }

    /// Resolves the configured tables (retrying while PostgreSQL is away, `/readyz` saying why), and sets up what the
    /// shared stages need from them: the writer's repair patterns, the hub's topic shapes.
    static func prepare(_ context: SourceContext, replication: Bool) async throws -> TableCatalog {
        let (config, readiness) = (context.config, context.readiness)
        let catalog = try await TableCatalog.resolve(config, using: context.queries, logger: context.logger, replication: replication) { message in
            readiness.update { $0.startError = message }
        }
        readiness.update { $0.startError = nil }
        context.writer.configureRepair(patterns: repairPatterns(catalog), flush: config.onGap == .flush)
        context.hub.setTableShapes(Dictionary(catalog.tables.map { ($0.name, $0.topics.map(\.topicShape)) }, uniquingKeysWith: { a, _ in a }))
        return catalog
    }

    /// The source delivers changes from now on. `gap`: changes before this may be missing (`startup`,
    /// `listen_reconnect`, `slot_created`, `slot_lost`): repaired behind everything already queued, and `/readyz` says
    /// 503 until the repair is done — counted in the same update that marks the source up, so never ready in between.
    /// `historyStart`: with a gap of the replication source, the new slot's first position (its ids may be lower
    /// than those already published).
    func sourceUp(gap: String?, historyStart: EventID? = nil) {
        context.readiness.update {
            $0.listening = true
            if gap != nil { $0.repairsPending += 1 }
        }
        context.metrics.listenConnected(true)
        guard let gap else { return }
        context.metrics.gapRecorded(cause: gap)
        if let why = Self.gapReasons[gap] {
            context.logger.warning("\(why); repairing", metadata: ["gap": "\(gap)"])
        }
        // Behind everything already queued: flush every key template's pattern unless `on_gap: none`, then a resync
        // (the publisher sees it done and releases `/readyz`).
        let operations = context.config.onGap == .flush ? Self.repairPatterns(catalog).map { RedisOperation.unlinkMatching(pattern: $0) } : []
        var repair = RedisJob(operations: operations, event: nil, repairCause: gap)
        repair.historyStart = historyStart
        context.writer.submit(repair)
    }

    /// The source's connection is gone (it reconnects by itself).
    func sourceDown() {
        context.readiness.update { $0.listening = false }
        context.metrics.listenConnected(false)
    }

    /// Hands planned jobs to the Redis writer, in order. Never waits.
    func submit(_ jobs: [RedisJob]) {
        if !jobs.isEmpty { context.writer.submit(jobs) }
    }

    /// What each gap cause means, for the log (a start-up repair is expected and not warned about).
    static let gapReasons = [
        "listen_reconnect": "changes made while the LISTEN connection was down were not seen",
        "slot_created": "changes before the replication slot was made cannot be replayed",
        "slot_lost": "the replication slot was lost; changes since it was last read cannot be replayed",
    ]

    /// The gap causes whose repair the sources submit (the writer repairs `redis_*` gaps itself).
    static let repairCauses: Set<String> = ["startup", "listen_reconnect", "slot_created", "slot_lost"]

    /// Every key template's pattern, once each.
    static func repairPatterns(_ catalog: TableCatalog) -> [String] {
        var patterns: [String] = []
        for table in catalog.tables {
            for rule in table.config.redis where !patterns.contains(rule.key.globPattern) {
                patterns.append(rule.key.globPattern)
            }
        }
        return patterns
    }
}
