import FreshetCore
import FreshetHTTP
import FreshetPostgres
import FreshetRedis
import Logging
import ServiceLifecycle

/// The stage between the listener and the Redis writer: resolves the tables, installs the triggers, then turns each
/// notification into a Redis job, in the order the notifications arrived.
///
/// It ends when the listener's events end (the listener stops first on shutdown), so nothing already received is lost.
final class ChangePipeline: Service {
    let config: FreshetConfig
    let listener: PostgresListener
    let writer: RedisWriter
    let hub: EventHub
    let queries: PostgresQueryConnection
    let readiness: ReadinessState
    let installTriggers: Bool
    let logger: Logger
    let metrics: FreshetMetrics
    let stats: PipelineStats

    init(
        config: FreshetConfig, listener: PostgresListener, writer: RedisWriter, hub: EventHub,
        queries: PostgresQueryConnection, readiness: ReadinessState, installTriggers: Bool, logger: Logger,
        metrics: FreshetMetrics, stats: PipelineStats
    ) {
        self.config = config
        self.listener = listener
        self.writer = writer
        self.hub = hub
        self.queries = queries
        self.readiness = readiness
        self.installTriggers = installTriggers
        self.logger = logger
        self.metrics = metrics
        self.stats = stats
    }

    func run() async throws {
        let catalog: TableCatalog
        do {
            catalog = try await cancelWhenGracefulShutdown {
                try await self.start()
            }
        } catch is CancellationError {
            // Shut down while still waiting for PostgreSQL: a clean stop, once it is this service's turn.
            try? await gracefulShutdown()
            return
        }
        let processor = ChangeProcessor(catalog: catalog, queries: queries, logger: logger, metrics: metrics, stats: stats)
        // High priority, in a child task so that cancellation still reaches it: invalidation must not queue behind
        // other work on the cooperative pool. The loop ends when the listener's events end.
        await withTaskGroup(of: Void.self) { group in
            group.addTask(priority: .high) { await self.consume(catalog: catalog, processor: processor) }
        }
        queries.close()
        // The listener stops first; end only when the group asks this service to, or it counts as a failure.
        try? await gracefulShutdown()
    }

    private func consume(catalog: TableCatalog, processor: ChangeProcessor) async {
        for await event in listener.events {
            switch event {
            case .connected(_, let reconnected):
                let repairs = reconnected || config.onGap == .flush
                // One update: a repair is pending from the moment LISTEN counts as up (never ready in between).
                readiness.update {
                    $0.listening = true
                    if repairs { $0.repairsPending += 1 }
                }
                metrics.listenConnected(true)
                if reconnected {
                    metrics.gapRecorded(cause: "listen_reconnect")
                    logger.warning("changes made while the LISTEN connection was down were not seen; repairing", metadata: [
                        "gap": "listen_reconnect",
                    ])
                    await repair(catalog, cause: "listen_reconnect")
                } else if config.onGap == .flush {
                    metrics.gapRecorded(cause: "startup")
                    await repair(catalog, cause: "startup")
                }
            case .disconnected:
                readiness.update { $0.listening = false }
                metrics.listenConnected(false)
            case .notification(let payload):
                let plans = await processor.process(payload)
                if !plans.isEmpty { writer.submit(plans.map { RedisJob(operations: $0.operations, event: $0.event) }) }
            }
        }
    }

    /// The gap causes whose repair the pipeline submits (the writer repairs `redis_*` gaps itself).
    static let repairCauses: Set<String> = ["startup", "listen_reconnect", "slot_created", "slot_lost"]

    /// Queues a gap repair behind everything already queued: flush every key template's pattern (unless
    /// `on_gap: none`), then a resync to every subscriber. `/readyz` says 503 until it is done.
    private func repair(_ catalog: TableCatalog, cause: String) async {
        Self.submitRepair(catalog, cause: cause, config: config, writer: writer, readiness: readiness, counted: true)
    }

    /// Queues a gap repair (either source): flush every key template's pattern unless `on_gap: none`, then a resync;
    /// `/readyz` holds until the publisher sees it done.
    /// - Parameter counted: the caller already counted it in `repairsPending`.
    static func submitRepair(
        _ catalog: TableCatalog, cause: String, config: FreshetConfig, writer: RedisWriter, readiness: ReadinessState,
        counted: Bool = false
    ) {
        let operations = config.onGap == .flush ? repairPatterns(catalog).map { RedisOperation.unlinkMatching(pattern: $0) } : []
        if !counted { readiness.update { $0.repairsPending += 1 } }
        writer.submit(RedisJob(operations: operations, event: nil, repairCause: cause))
    }

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

    private func start() async throws -> TableCatalog {
        let catalog = try await TableCatalog.resolve(config, using: queries, logger: logger) { [readiness] message in
            readiness.update { $0.startError = message }
        }
        readiness.update { $0.startError = nil }
        writer.configureRepair(patterns: Self.repairPatterns(catalog), flush: config.onGap == .flush)
        hub.setTableShapes(Dictionary(catalog.tables.map { ($0.name, $0.topics.map(\.topicShape)) }, uniquingKeysWith: { a, _ in a }))
        if installTriggers {
            let tables = catalog.tables
            let channel = config.postgres.channel
            try await queries.run { connection throws(PostgresError) in
                try TriggerInstaller.install(tables, channel: channel, on: connection)
            }
            logger.info("triggers installed", metadata: ["tables": "\(tables.map(\.name).joined(separator: ", "))"])
        }
        readiness.update { $0.tablesResolved = true }
        return catalog
    }
}

/// Publishes each change's event once Redis has acknowledged its operations: invalidate first, then tell.
/// Ends when the writer has drained.
///
/// A gap repair's completion becomes one `resync` to every subscriber. An event released while Redis is away (not
/// acknowledged) is published all the same: its keys are put right when Redis returns.
final class EventPublisher: Service {
    let writer: RedisWriter
    let hub: EventHub
    let metrics: FreshetMetrics
    let readiness: ReadinessState
    let logger: Logger
    let onEvent: @Sendable (ChangeEvent) -> Void
    /// `http.relay: redis`: the writer appended events and resyncs to the relay stream; every process's
    /// `RelayReader` publishes them to its hub, so this publisher only keeps the books.
    let relayed: Bool

    init(
        writer: RedisWriter, hub: EventHub, metrics: FreshetMetrics, readiness: ReadinessState, logger: Logger,
        relayed: Bool = false, onEvent: @escaping @Sendable (ChangeEvent) -> Void = { _ in }
    ) {
        self.relayed = relayed
        self.writer = writer
        self.hub = hub
        self.metrics = metrics
        self.readiness = readiness
        self.logger = logger
        self.onEvent = onEvent
    }

    func run() async throws {
        // Default priority, below the pipeline's: under load, feeding Redis goes first (invalidate, then tell). The
        // subscribers' socket writes run on the HTTP event loops, not here.
        await publishAll()
        try? await gracefulShutdown()
    }

    private func publishAll() async {
        for await batch in writer.completions {
            for completion in batch { publish(completion) }
        }
    }

    private func resync(_ reason: String, eventsDropped: Bool = false) {
        if !relayed { hub.publishResync(reason: reason, eventsDropped: eventsDropped) }
    }

    private func publish(_ completion: RedisCompletion) {
        if completion.job.repairCause == "events_dropped" {
            resync("events dropped", eventsDropped: true)
            return
        }
        if let cause = completion.job.repairCause {
            resync("gap: \(cause)")
            logger.warning("gap repaired; subscribers told to resync", metadata: [
                "gap": "\(cause)", "keys_flushed": "\(completion.keysFlushed)",
            ])
            if ChangePipeline.repairCauses.contains(cause) {  // the pipelines' own repairs hold readiness
                readiness.update { $0.repairsPending = max(0, $0.repairsPending - 1) }
            }
            return
        }
        guard let event = completion.job.event else { return }
        if completion.acknowledged { metrics.changeLag(at: event.at) }
        if !relayed { hub.publish(event) }
        onEvent(event)
    }
}
