import Dispatch
import Foundation
import Logging
import Metrics
import Prometheus

/// The Prometheus registry behind `/metrics`.
public struct MetricsExport: Sendable {
    let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Makes swift-metrics report into a new Prometheus registry. Call once, from the executable.
    public static func bootstrap() -> MetricsExport {
        let export = MetricsExport()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: export.registry))
        return export
    }

    /// The registry in Prometheus text format.
    public func text() -> [UInt8] { registry.emitToBuffer() }
}

/// Exits at once on a second SIGTERM or SIGINT, while the first one's graceful shutdown is still running.
public enum SecondSignal {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    public static func install(logger: Logger) {
        let count = ManagedCounter()
        for sig in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if count.increment() >= 2 {
                    logger.warning("second signal: exiting without waiting for the Redis flush")
                    exit(0)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    private final class ManagedCounter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func increment() -> Int {
            lock.lock()
            defer { lock.unlock() }
            value += 1
            return value
        }
    }
}
