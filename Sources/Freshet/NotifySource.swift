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
    let context: SourceContext
    let listener: PostgresListener
    let installTriggers: Bool

    init(context: SourceContext, listener: PostgresListener, installTriggers: Bool) {
        self.context = context
        self.listener = listener
        self.installTriggers = installTriggers
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
        let sink = ChangeSink(catalog: catalog, context: context)
        let processor = ChangeProcessor(
            catalog: catalog, queries: context.queries, logger: context.logger, metrics: context.metrics, stats: context.stats
        )
        let flushOnStart = context.config.onGap == .flush
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
        context.queries.close()
        // End only when the group asks this service to, or it counts as a failure.
        try? await gracefulShutdown()
    }

    private func start() async throws -> TableCatalog {
        let catalog = try await ChangeSink.prepare(context, replication: false)
        if installTriggers {
            let tables = catalog.tables
            let channel = context.config.postgres.channel
            try await context.queries.run { connection throws(PostgresError) in
                try TriggerInstaller.install(tables, channel: channel, on: connection)
            }
            context.logger.info("triggers installed", metadata: ["tables": "\(tables.map(\.name).joined(separator: ", "))"])
        }
        context.readiness.update { $0.tablesResolved = true }
        return catalog
    }
}
