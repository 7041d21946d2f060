import Foundation
import FreshetCore
import FreshetSystem
import Glibc
import Logging
import Synchronization

/// Holds Freshet's one LISTEN connection and hands what arrives to a handler **on the connection's own thread**.
///
/// The connection lives on a thread of its own: `poll()` on the libpq socket and a wake-up eventfd,
/// `PQconsumeInput`, then every buffered notification goes to the handler, in order. The handler decodes and plans
/// there (no hand-off to another thread or task before the Redis writer); while it works, PostgreSQL keeps the
/// notifications queued, so nothing is dropped and Freshet's memory stays bounded. When the connection fails it
/// reports `disconnected`, reconnects with capped exponential backoff and jitter, and LISTENs again. While idle it runs
/// a cheap health check every `checkInterval` seconds, so a dead peer is noticed even where keepalives are slow.
package final class PostgresListener: Sendable {
    private let conninfo: String
    private let channel: String
    private let checkInterval: Double
    private let onQueueUsage: @Sendable (Double) -> Void
    private let logger: Logger
    private let wake = WakeSignal()
    private let state = Mutex(State())

    struct State {
        var stopping = false
        var backendPID: Int32?
    }

    /// - Parameters:
    ///   - conninfo: a libpq URL or key=value string.
    ///   - checkInterval: seconds between health checks; a check that gets no answer within twice this ends the
    ///     connection.
    ///   - onQueueUsage: `pg_notification_queue_usage()` from each health check.
    package init(
        conninfo: String, channel: String, checkInterval: Double = 5, logger: Logger,
        onQueueUsage: @escaping @Sendable (Double) -> Void = { _ in }
    ) {
        self.conninfo = conninfo
        self.channel = channel
        self.checkInterval = checkInterval
        self.onQueueUsage = onQueueUsage
        self.logger = logger
    }

    /// The backend pid of the LISTEN session while connected.
    package var backendPID: Int32? { state.withLock { $0.backendPID } }

    /// Runs the connection on a thread of its own until `stop()` (or cancellation), calling `handle` on that thread
    /// with each event, in order. Returns once the thread has ended: no call to `handle` comes after.
    package func run(_ handle: @escaping @Sendable (ListenerEvent) -> Void) async {
        await runOnDedicatedThread(name: "freshet-listen", body: { self.loop(handle) }, stop: { self.stop() })
    }

    /// Ends the thread after the event being handled, if any.
    package func stop() {
        state.withLock { $0.stopping = true }
        wake.signal()
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func loop(_ handle: (ListenerEvent) -> Void) {
        var backoff = Backoff(base: 0.1, cap: 5)
        var everConnected = false
        let redacted = Redaction.connectionString(conninfo)
        while !stopping {
            let connection: PGConnection
            do {
                connection = try PGConnection.connect(conninfo, applicationName: "freshet-listener")
                try connection.execute("LISTEN \(SQL.quoteIdentifier(channel))")
            } catch {
                let delay = backoff.next()
                logger.warning("cannot LISTEN on PostgreSQL; retrying", metadata: [
                    "postgres": "\(redacted)", "error": "\(error.message)", "retry_in": "\(String(format: "%.2f", delay))s",
                ])
                if wake.wait(seconds: delay) { break }
                continue
            }
            backoff.reset()
            state.withLock { $0.backendPID = connection.backendPID }
            let reconnected = everConnected
            let reason = serve(connection, handle: handle) { [self] in
                // The probe came back: LISTEN really delivers. Only now is the listener up.
                logger.info(reconnected ? "LISTEN connection re-established" : "listening for changes", metadata: [
                    "channel": "\(channel)", "backend_pid": "\(connection.backendPID)",
                ])
                everConnected = true
                handle(.connected(backendPID: connection.backendPID, reconnected: reconnected))
            }
            state.withLock { $0.backendPID = nil }
            if stopping { break }
            logger.error("LISTEN connection lost; reconnecting", metadata: ["error": "\(reason)"])
            handle(.disconnected(reason: reason))
        }
    }

    /// Payloads of the self-check probe start with this; they are never passed on.
    static let probePrefix = #"{"freshet_probe":"#

    /// Serves one connection until it fails (returns why) or the listener stops (returns "").
    ///
    /// First it sends itself a probe NOTIFY and calls `verified` when the probe arrives: behind a transaction-mode
    /// PgBouncer, or on a standby, LISTEN never delivers, and that is reported instead of a silently dead listener.
    private func serve(_ connection: PGConnection, handle: (ListenerEvent) -> Void, verified: () -> Void) -> String {
        var lastCheck = ContinuousClock.now
        var queueWarned = false
        var probe: String?
        var probeSent = ContinuousClock.now
        var probeWarned = false
        func sendProbe() throws(PostgresError) {
            let nonce = "\(connection.backendPID)-\(UInt32.random(in: 0...UInt32.max))"
            probe = Self.probePrefix + "\"\(nonce)\"}"
            try connection.query("SELECT pg_catalog.pg_notify($1, $2)", parameters: [channel, probe])
            probeSent = .now
        }
        do {
            try sendProbe()
        } catch {
            return "self-check NOTIFY failed: \(error.message) (Freshet must connect to the primary)"
        }
        /// Hands on what libpq has buffered.
        func drain() {
            for notification in connection.drainNotifications() where notification.channel == channel {
                if notification.payload.hasPrefix(Self.probePrefix) {
                    if notification.payload == probe {
                        probe = nil
                        verified()
                    }
                    continue
                }
                handle(.notification(notification.payload))
            }
        }
        while !stopping {
            // A query on this connection (the probe, the health check) may have buffered notifications already.
            drain()
            if stopping { break }
            var fds = [
                pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, Int32(min(checkInterval, 1) * 1000))
            if ready < 0 && errno != EINTR { return "poll failed: errno \(errno)" }
            if fds[1].revents != 0 { break }
            do {
                if fds[0].revents != 0 {
                    try connection.consumeInput()
                }
                if ContinuousClock.now - lastCheck >= .seconds(checkInterval) {
                    // A health check that cannot hang (a silent partition ends it), and the NOTIFY queue's fill:
                    // when it is full, every commit that notifies fails, the application's included.
                    let rows = try connection.execute("SELECT pg_catalog.pg_notification_queue_usage()", timeout: checkInterval * 2)
                    lastCheck = .now
                    if let text = rows.first?.first ?? nil, let usage = Double(text) {
                        onQueueUsage(usage)
                        if usage > 0.5 && !queueWarned {
                            logger.warning("PostgreSQL's NOTIFY queue is more than half full; commits fail when it is full", metadata: [
                                "usage": "\(text)", "hint": "a session that LISTENs and does not read (or a long transaction in a listening session) holds it",
                            ])
                        }
                        queueWarned = usage > 0.5
                    }
                }
                if probe != nil, ContinuousClock.now - probeSent >= .seconds(5) {
                    if !probeWarned {
                        logger.error("""
                            LISTEN receives nothing: the self-check NOTIFY did not come back. Connect Freshet to the \
                            primary directly or through a session-mode pool (not a transaction-mode PgBouncer, not a standby)
                            """, metadata: ["channel": "\(channel)"])
                        probeWarned = true
                    }
                    try sendProbe()
                }
            } catch {
                return error.message
            }
            if !connection.isConnected { return "connection closed" }
        }
        // Stopping: hand on what already arrived (committed changes) before the connection goes.
        try? connection.consumeInput()
        drain()
        return ""
    }
}
