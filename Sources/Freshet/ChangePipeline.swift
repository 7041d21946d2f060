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
        for await event in listener.events {
            switch event {
            case .connected(_, let reconnected):
                readiness.update { $0.listening = true }
                metrics.listenConnected(true)
                if reconnected {
                    metrics.gap(cause: "listen_reconnect")
                    logger.warning("changes made while the LISTEN connection was down were not seen", metadata: ["gap": "listen_reconnect"])
                }
            case .disconnected:
                readiness.update { $0.listening = false }
                metrics.listenConnected(false)
            case .notification(let payload):
                guard let plan = await processor.process(payload) else { continue }
                await writer.submit(RedisJob(operations: plan.operations, event: plan.event))
            }
        }
        queries.close()
        // The listener stops first; end only when the group asks this service to, or it counts as a failure.
        try? await gracefulShutdown()
    }

    private func start() async throws -> TableCatalog {
        let catalog = try await TableCatalog.resolve(config, using: queries, logger: logger) { [readiness] message in
            readiness.update { $0.startError = message }
        }
        readiness.update { $0.startError = nil }
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
final class EventPublisher: Service {
    let writer: RedisWriter
    let hub: EventHub
    let metrics: FreshetMetrics
    let onEvent: @Sendable (ChangeEvent) -> Void

    init(writer: RedisWriter, hub: EventHub, metrics: FreshetMetrics, onEvent: @escaping @Sendable (ChangeEvent) -> Void = { _ in }) {
        self.writer = writer
        self.hub = hub
        self.metrics = metrics
        self.onEvent = onEvent
    }

    func run() async throws {
        for await completion in writer.completions {
            guard let event = completion.job.event else { continue }
            metrics.changeLag(at: event.at)
            hub.publish(event)
            onEvent(event)
        }
        try? await gracefulShutdown()
    }
}
