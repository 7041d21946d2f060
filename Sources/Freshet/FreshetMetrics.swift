import CoreMetrics
import Foundation
import FreshetCore
import FreshetRedis

/// Freshet's metrics, through swift-metrics. The executable bootstraps the Prometheus backend; without one these are
/// no-ops. Labels are constants here so that names never drift.
public struct FreshetMetrics: RedisWriterObserver {
    public init() {}

    func changes(table: String, op: ChangeOp, count: Int) {
        Counter(label: "freshet_changes_total", dimensions: [("table", table), ("op", op.rawValue)]).increment(by: count)
    }

    func rejected(reason: String) {
        Counter(label: "freshet_notifications_rejected_total", dimensions: [("reason", reason)]).increment()
    }

    public func gapRecorded(cause: String) {
        Counter(label: "freshet_gaps_total", dimensions: [("cause", cause)]).increment()
    }

    func listenConnected(_ connected: Bool) {
        Gauge(label: "freshet_listen_connected").record(connected ? 1 : 0)
    }

    public func commandsCompleted(action: String, ok: Int, failed: Int) {
        if ok > 0 { Counter(label: "freshet_redis_commands_total", dimensions: [("action", action), ("result", "ok")]).increment(by: ok) }
        if failed > 0 {
            Counter(label: "freshet_redis_commands_total", dimensions: [("action", action), ("result", "error")]).increment(by: failed)
        }
    }

    public func pendingChanged(_ pending: Int) {
        Gauge(label: "freshet_redis_pending").record(pending)
    }

    public func connectionChanged(connected: Bool) {
        Gauge(label: "freshet_redis_connected").record(connected ? 1 : 0)
    }

    public func keysFlushed(_ count: Int) {
        Counter(label: "freshet_keys_flushed_total").increment(by: count)
    }

    /// Trigger time → Redis acknowledged.
    func changeLag(at: String) {
        guard let then = Timestamp.secondsSinceEpoch(at) else { return }
        let lag = max(0, Date().timeIntervalSince1970 - then)
        Timer(label: "freshet_change_lag_seconds").recordNanoseconds(Int64(lag * 1e9))
    }
}
