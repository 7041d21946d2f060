import CoreMetrics
import Foundation
import FreshetPostgres
import FreshetRedis
import FreshetSystem
import Logging
import ServiceLifecycle
import Synchronization

/// `http.relay: redis`: the writer side of a process — capture (the pipeline, and the listener for the notify
/// source), the Redis writer, the publisher and the relay appender — runs only while this process holds the writer
/// lock (`WriterLock`). Until then the process stands by: it serves `/events` from the relay stream, `/readyz` 200,
/// `freshet_writer` 0.
///
/// A writer whose lock session breaks (PostgreSQL restarted, the network cut) closes its `WriterFence` at once — its
/// Redis writer applies nothing more — and stops with an error, so that its supervisor restarts it as a standby:
/// another process may already have taken over, and two writers must not run.
/// In replication mode the new writer resumes from the slot (nothing lost, no flush); in notify mode its start is a
/// `startup` gap (flush + resync), as for any start.
final class WriterRole: Service, @unchecked Sendable {
    let lock: WriterLock
    /// Open while this process holds the lock; the Redis writer applies nothing while it is closed.
    let fence: WriterFence
    let services: [ServiceGroupConfiguration.ServiceConfiguration]
    let readiness: ReadinessState
    let logger: Logger
    let shutdownTimeout: Double
    private let writerGauge = Gauge(label: "freshet_writer")

    init(
        lock: WriterLock, fence: WriterFence, services: [ServiceGroupConfiguration.ServiceConfiguration], readiness: ReadinessState,
        logger: Logger, shutdownTimeout: Double
    ) {
        self.lock = lock
        self.fence = fence
        self.services = services
        self.readiness = readiness
        self.logger = logger
        self.shutdownTimeout = shutdownTimeout
        writerGauge.record(0)
    }

    func run() async throws {
        let stop = Mutex(false)
        let outcome = Mutex<Result<Bool, Error>>(.success(false))
        let lock = self.lock
        await withGracefulShutdownHandler {
            await runOnDedicatedThread(name: "freshet-writer-lock", body: {
                outcome.withLock { $0 = Result { try lock.acquire(stopped: { stop.withLock { $0 } }) } }
            }, stop: { stop.withLock { $0 = true } })
        } onGracefulShutdown: {
            stop.withLock { $0 = true }
        }
        let acquired: Bool
        do {
            acquired = try outcome.withLock { $0 }.get()
        } catch {
            throw StartupError(message: "writer election: \(error)")
        }
        guard acquired else { return }

        fence.open()
        readiness.update { $0.standby = false }
        writerGauge.record(1)
        logger.notice("this process is the writer now (it holds the writer lock)")
        var configuration = ServiceGroupConfiguration(services: services, logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(shutdownTimeout + 5)
        configuration.maximumCancellationDuration = nil
        let group = ServiceGroup(configuration: configuration)
        defer {
            fence.close()
            lock.release()
            writerGauge.record(0)
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await withGracefulShutdownHandler {
                    try await group.run()
                } onGracefulShutdown: {
                    Task { await group.triggerGracefulShutdown() }
                }
            }
            tasks.addTask { [fence] in
                // The lock's session, watched on a thread of its own: a writer that lost it applies nothing more
                // (the fence closes at once) and stops.
                let lost = Mutex(false)
                let stop = Mutex(false)
                await runOnDedicatedThread(name: "freshet-writer-lock", body: {
                    let broke = lock.watch(stopped: { stop.withLock { $0 } })
                    if broke { fence.close() }
                    lost.withLock { $0 = broke }
                }, stop: { stop.withLock { $0 = true } })
                if lost.withLock({ $0 }) {
                    throw StartupError(message: "lost the writer lock (its PostgreSQL session ended); stopping so that another process takes over")
                }
            }
            try await tasks.next()
            tasks.cancelAll()
        }
    }
}
