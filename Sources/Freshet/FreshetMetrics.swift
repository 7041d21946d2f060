import CoreMetrics
import Foundation
import FreshetCore
import FreshetRedis
import Synchronization

/// Freshet's metrics, through swift-metrics. The executable bootstraps the Prometheus backend; without one these are
/// no-ops. Labels are constants here so that names never drift. Handles are made once (per label set) and kept, so
/// the per-change path does no registry lookup.
package final class FreshetMetrics: RedisWriterObserver {
    private let counters = Mutex<[String: Counter]>([:])
    private let pending = Gauge(label: "freshet_redis_pending")
    private let redisConnected = Gauge(label: "freshet_redis_connected")
    private let redisNodes = Gauge(label: "freshet_redis_nodes")
    private let listenConnectedGauge = Gauge(label: "freshet_listen_connected")
    private let keysFlushedCounter = Counter(label: "freshet_keys_flushed_total")
    private let notifyQueue = Gauge(label: "freshet_postgres_notify_queue_usage")
    private let confirmedLSN = Gauge(label: "freshet_replication_confirmed_lsn")
    private let lagBytes = Gauge(label: "freshet_replication_lag_bytes")
    private let retainedBytes = Gauge(label: "freshet_replication_retained_bytes")
    private let lag = Timer(label: "freshet_change_lag_seconds")
    private let lastAt = TimestampCache()

    package init() {}

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|" + $0.0 + "=" + $0.1 }.joined()
        return counters.withLock { cache in
            if let counter = cache[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions)
            cache[key] = counter
            return counter
        }
    }

    func changes(table: String, op: ChangeOp, count: Int) {
        counter("freshet_changes_total", [("table", table), ("op", op.rawValue)]).increment(by: count)
    }

    func rejected(reason: String) {
        counter("freshet_notifications_rejected_total", [("reason", reason)]).increment()
    }

    package func gapRecorded(cause: String) {
        counter("freshet_gaps_total", [("cause", cause)]).increment()
    }

    func listenConnected(_ connected: Bool) {
        listenConnectedGauge.record(connected ? 1 : 0)
    }

    package func commandsCompleted(action: String, ok: Int, failed: Int) {
        if ok > 0 { counter("freshet_redis_commands_total", [("action", action), ("result", "ok")]).increment(by: ok) }
        if failed > 0 { counter("freshet_redis_commands_total", [("action", action), ("result", "error")]).increment(by: failed) }
    }

    package func errorReplied(_ reply: RedisErrorReply) {
        counter("freshet_redis_errors_total", [("reply", reply.word)]).increment()
    }

    package func operationsDropped(_ count: Int) {
        counter("freshet_redis_operations_dropped_total", []).increment(by: count)
    }

    /// A Redis Cluster node redirected a command (`moved`, `ask`) or asked for a retry (`tryagain`, `clusterdown`,
    /// `loading`).
    package func redirected(kind: String) {
        counter("freshet_redis_redirects_total", [("kind", kind)]).increment()
    }

    package func nodesChanged(_ count: Int) {
        redisNodes.record(count)
    }

    /// A master changed (Sentinel or Cluster failover) and the recent operations were applied again.
    package func failoverReplayed(operations: Int) {
        counter("freshet_redis_failover_replays_total", []).increment()
        counter("freshet_redis_failover_replayed_operations_total", []).increment(by: operations)
    }

    /// Relay entries Redis refused as not newer than the stream's top: changes the slot delivered again.
    func relayDuplicates(_ count: Int) {
        counter("freshet_relay_duplicates_total", []).increment(by: count)
    }

    package func bufferDropped(_ buffer: String, count: Int) {
        counter("freshet_buffer_dropped_total", [("buffer", buffer)]).increment(by: count)
    }

    /// The replication slot: the position confirmed, how far the server is ahead of it, and the WAL it retains.
    func replicationPositions(confirmed: UInt64, server: UInt64, retained: Int64) {
        confirmedLSN.record(Double(confirmed))
        lagBytes.record(Double(server > confirmed ? server - confirmed : 0))
        retainedBytes.record(Double(retained))
    }

    /// `pg_notification_queue_usage()`: the share of PostgreSQL's NOTIFY queue in use (commits fail at 1).
    func notifyQueueUsage(_ usage: Double) {
        notifyQueue.record(usage)
    }

    package func pendingChanged(_ pending: Int) {
        self.pending.record(pending)
    }

    package func connectionChanged(connected: Bool) {
        redisConnected.record(connected ? 1 : 0)
    }

    package func keysFlushed(_ count: Int) {
        keysFlushedCounter.increment(by: count)
    }

    /// Trigger time → Redis acknowledged.
    func changeLag(at: String) {
        guard let then = lastAt.seconds(at) else { return }
        let lag = max(0, Date().timeIntervalSince1970 - then)
        self.lag.recordNanoseconds(Int64(lag * 1e9))
    }
}
