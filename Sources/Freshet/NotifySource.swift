import FreshetCore
import FreshetHTTP
import FreshetPostgres
import FreshetRedis
import Logging
import ServiceLifecycle

/// The `notify` source (`postgres.source: notify`): resolves the tables, installs the triggers, then runs the LISTEN
/// connection and, **on its thread**, decodes and plans each notification and hands the jobs straight to the Redis
/// writer (`ChangeSink`): one hand-off between PostgreSQL and Redis, none through a task.
///
/// On shutdown the listener stops first (after handing on what libpq already received), then this service ends, so
/// nothing already received is lost.
final class NotifySource: Service {
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
            catalog = try await cancelWhenGracefulShutdown { try await self.start() }
        } catch is CancellationError {
            // Shut down while still waiting for PostgreSQL: a clean stop, once it is this service's turn.
            try? await gracefulShutdown()
            return
        }
        let sink = ChangeSink(catalog: catalog, config: config, writer: writer, readiness: readiness, metrics: metrics, logger: logger)
        let processor = ChangeProcessor(catalog: catalog, queries: queries, logger: logger, metrics: metrics, stats: stats)
        let flushOnStart = config.onGap == .flush
        await withGracefulShutdownHandler {
            await listener.run { event in
                switch event {
                case .connected(_, let reconnected):
                    // Notifications sent while LISTEN was down are gone; at start, keys cached before may be stale.
                    sink.sourceUp(gap: reconnected ? "listen_reconnect" : (flushOnStart ? "startup" : nil))
                case .disconnected:
                    sink.sourceDown()
                case .notification(let payload):
                    sink.submit(processor.process(payload).map { RedisJob(operations: $0.operations, event: $0.event) })
                }
            }
        } onGracefulShutdown: { [listener] in
            listener.stop()
        }
        queries.close()
        // End only when the group asks this service to, or it counts as a failure.
        try? await gracefulShutdown()
    }

    private func start() async throws -> TableCatalog {
        let catalog = try await ChangeSink.prepare(
            config: config, queries: queries, writer: writer, hub: hub, readiness: readiness, logger: logger, replication: false
        )
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
