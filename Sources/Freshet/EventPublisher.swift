import FreshetCore
import FreshetHTTP
import FreshetRedis
import Logging
import ServiceLifecycle

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
            if ChangeSink.repairCauses.contains(cause) {  // the pipelines' own repairs hold readiness
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
