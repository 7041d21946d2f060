import Foundation
import FreshetCore
import FreshetSystem
import Glibc
import Logging
import Synchronization

/// What the replication reader needs from the rest of Freshet. Called on the reader's thread.
package struct ReplicationHooks: Sendable {
    /// The slot streams. `gap` is `slot_created` or `slot_lost` when the slot had to be (re)made: nothing before it
    /// can be replayed, so the caches must be repaired. `confirmed` is the slot's confirmed position at start (the
    /// consistent point of a new slot), `server` the server's WAL position then (no event id can be beyond it yet).
    package var streaming: @Sendable (_ gap: String?, _ confirmed: UInt64, _ server: UInt64) -> Void
    /// The stream stopped (it reconnects by itself).
    package var disconnected: @Sendable (_ reason: String) -> Void
    /// Changes of a committed transaction, in commit order: a piece of a large one, or the rest at its commit
    /// (`final`). `handedEarlier`: earlier pieces handed work to the writer (the final piece must then carry the
    /// transaction's confirmation even without changes of its own). Returns whether it handed work to the Redis
    /// writer and the id of its last event. `tick` is to be called now and then during long work (read-backs): it
    /// keeps status updates flowing so that the walsender does not time out.
    package var transaction: @Sendable (CommittedTransaction, _ handedEarlier: Bool, _ tick: () -> Void) -> (handedOver: Bool, lastEvent: EventID?)
    /// Whether the writer takes more now; while false the reader stops reading (status updates go on).
    package var canTakeMore: @Sendable () -> Bool
    /// The newest commit LSN whose work Redis applied (in order).
    package var applied: @Sendable () -> UInt64
    /// Store the position about to be confirmed and the last event id before it, durably (in Redis).
    package var storePosition: @Sendable (_ lsn: UInt64, _ lastEvent: EventID?) -> Void
    /// The newest position stored so far: nothing past it is confirmed.
    package var stored: @Sendable () -> UInt64
    /// Why Freshet is not ready because of the slot (creating it, in use, too much WAL retained); nil when fine.
    package var notReady: @Sendable (String?) -> Void
    /// The slot's numbers: confirmed LSN, the server's current LSN, retained bytes.
    package var positions: @Sendable (_ confirmed: UInt64, _ server: UInt64, _ retained: Int64) -> Void
    /// A problem only the operator can fix (`wal_level`, the slot's plugin, a publication that differs): `run`
    /// exits 2 with it.
    package var fatal: @Sendable (_ field: String, _ message: String) -> Void
    /// Whether the reader may connect (and make the slot) now: with `http.relay: redis`, only while this process holds
    /// the writer lock, so that a writer that lost it does not make the slot of the next one.
    package var mayConnect: @Sendable () -> Bool
    /// Called just before a slot is made (`slot_created` or `slot_lost`): the repair it will need must be recorded
    /// durably first, so that a process that dies before the repair is done leaves it to the next one. Throwing
    /// postpones making the slot (retried).
    package var willMakeSlot: @Sendable (_ cause: String) throws -> Void

    package init(
        streaming: @escaping @Sendable (String?, UInt64, UInt64) -> Void, disconnected: @escaping @Sendable (String) -> Void,
        transaction: @escaping @Sendable (CommittedTransaction, Bool, () -> Void) -> (handedOver: Bool, lastEvent: EventID?),
        canTakeMore: @escaping @Sendable () -> Bool,
        applied: @escaping @Sendable () -> UInt64, storePosition: @escaping @Sendable (UInt64, EventID?) -> Void,
        stored: @escaping @Sendable () -> UInt64, notReady: @escaping @Sendable (String?) -> Void,
        positions: @escaping @Sendable (UInt64, UInt64, Int64) -> Void, fatal: @escaping @Sendable (String, String) -> Void,
        mayConnect: @escaping @Sendable () -> Bool = { true }, willMakeSlot: @escaping @Sendable (String) throws -> Void = { _ in }
    ) {
        self.mayConnect = mayConnect
        self.willMakeSlot = willMakeSlot
        self.streaming = streaming
        self.disconnected = disconnected
        self.transaction = transaction
        self.canTakeMore = canTakeMore
        self.applied = applied
        self.storePosition = storePosition
        self.stored = stored
        self.notReady = notReady
        self.positions = positions
        self.fatal = fatal
    }
}

/// Reads changes from a permanent logical replication slot (pgoutput, protocol 1) on a thread that owns both of its
/// libpq connections: a walsender session for the stream and a plain one for the catalog.
///
/// It keeps the publication equal to the configured tables (when `manage` is set), creates the slot when missing
/// (a `slot_created` gap) and recreates it when PostgreSQL invalidated it (`slot_lost`), then streams: each committed
/// transaction goes to `hooks.transaction`; the position confirmed to the slot (the standby status update's flush
/// LSN) is the `ConfirmTracker`'s, and only once `hooks.storePosition` stored it. Status updates go out at least every
/// min(`wal_sender_timeout`/3, 10 s), also while the writer cannot take more (the reader then stops reading), so the
/// walsender never times out. On a lost connection it reconnects with backoff and resumes from the slot.
package final class ReplicationReader: @unchecked Sendable {
    package struct Settings: Sendable {
        package var conninfo: String
        package var slot: String
        package var publication: String
        package var manage: Bool
        package var maxRetained: Int
        /// The tables to publish, quoted (`"public"."users"`).
        package var tables: [String]
        /// A temporary slot of the session's own (`freshet tail`): gone when the connection ends, never shared.
        package var temporary = false
        /// The position stored with the last confirmation and the last event before it (from Redis): seeds the
        /// tracker when the slot is at that position, so the next stored position keeps the event.
        package var stored: (lsn: UInt64, lastEvent: EventID?)?

        package init(conninfo: String, slot: String, publication: String, manage: Bool, maxRetained: Int, tables: [String]) {
            self.conninfo = conninfo
            self.slot = slot
            self.publication = publication
            self.manage = manage
            self.maxRetained = maxRetained
            self.tables = tables
        }
    }

    private let settings: Settings
    private let hooks: ReplicationHooks
    private let logger: Logger
    private let wake = WakeSignal()
    private let stopping = Atomic<Bool>(false)
    /// The walsender's backend pid while streaming (tests).
    private let streamingPID = Atomic<Int32>(0)
    /// The slot predates a publication created now: it must be recreated, also when the first try failed. Reader
    /// thread only.
    private var recreateSlot = false

    package init(settings: Settings, hooks: ReplicationHooks, logger: Logger) {
        self.settings = settings
        self.hooks = hooks
        self.logger = logger
    }

    /// The walsender session's backend pid while streaming.
    package var walsenderPID: Int32? {
        let pid = streamingPID.load(ordering: .relaxed)
        return pid == 0 ? nil : pid
    }

    /// Runs until `stop()`.
    package func run() async {
        await runOnDedicatedThread(name: "freshet-replication", body: { self.loop() }, stop: { self.stop() })
    }

    package func stop() {
        stopping.store(true, ordering: .relaxed)
        wake.signal()
    }

    private var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Gives up for good on a problem only the operator can fix.
    private struct Fatal: Error {
        var field: String
        var message: String
    }

    private func loop() {
        var backoff = Backoff(base: 0.2, cap: 5)
        var assembler = TransactionAssembler()
        var tracker: ConfirmTracker?
        /// The newest commit handed to the writer: after a reconnect the slot sends again from its confirmed
        /// position, and what was already handed over is not planned (nor published) twice.
        var handedThrough: UInt64 = 0
        let redacted = Redaction.connectionString(settings.conninfo)
        while !isStopping {
            if !hooks.mayConnect() {
                if wake.wait(seconds: 0.05) { break }
                continue
            }
            do {
                let catalog = try PGConnection.connect(settings.conninfo, applicationName: "freshet_replication_catalog")
                var (gap, confirmed): (String?, UInt64) = (nil, 0)
                if settings.temporary {
                    try checkLevel(catalog)
                    _ = try keepPublication(catalog)
                } else {
                    (gap, confirmed) = try prepare(catalog)
                }
                let server = (try? catalog.execute("SELECT pg_catalog.pg_current_wal_lsn()::text").first?.first ?? nil)
                    .flatMap { LSN(parsing: $0) }?.value ?? confirmed
                if tracker == nil || gap != nil {
                    // A new slot starts a new history: nothing handed over before counts, and positions may even go
                    // backwards (a failover to another server).
                    let seed = settings.stored.flatMap { $0.lsn >= confirmed && gap == nil ? $0.lastEvent : nil }
                    tracker = ConfirmTracker(confirmed: confirmed, lastEvent: seed)
                    handedThrough = 0
                }
                let stream = try PGConnection.connectReplication(settings.conninfo)
                if settings.temporary {
                    try stream.command("CREATE_REPLICATION_SLOT \(SQL.quoteIdentifier(settings.slot)) TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing')")
                }
                // Values as notify mode sees them; interval as to_jsonb prints it with the default style.
                try stream.command("SET DateStyle = 'ISO'; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex'")
                let timeout = (try? stream.command("SHOW wal_sender_timeout").first?.first ?? nil).flatMap { Self.milliseconds($0) } ?? 60_000
                let interval = timeout > 0 ? min(Double(timeout) / 3000, 10) : 10
                try stream.startReplication(
                    "START_REPLICATION SLOT \(SQL.quoteIdentifier(settings.slot)) LOGICAL 0/0 (proto_version '1', publication_names \(SQL.quoteLiteral(SQL.quoteIdentifier(settings.publication))))"
                )
                streamingPID.store(stream.backendPID, ordering: .relaxed)
                hooks.notReady(nil)
                logger.info("streaming from the replication slot", metadata: [
                    "slot": "\(settings.slot)", "confirmed": "\(LSN(confirmed))", "status_interval": "\(interval)s",
                ])
                hooks.streaming(gap, confirmed, server)
                recreateSlot = false
                let (reason, progressed) = serve(
                    stream, catalog: catalog, assembler: &assembler, tracker: &tracker!, handedThrough: &handedThrough, interval: interval
                )
                if progressed { backoff.reset() }  // a stream that fails at once (a bad message) backs off like any failure
                streamingPID.store(0, ordering: .relaxed)
                assembler.reset()
                tracker!.disconnected()
                if isStopping { break }
                let delay = backoff.next()
                logger.error("replication stream lost; reconnecting", metadata: ["error": "\(reason)", "retry_in": "\(String(format: "%.2f", delay))s"])
                hooks.disconnected(reason)
                if wake.wait(seconds: delay) { break }
            } catch let fatal as Fatal {
                hooks.fatal(fatal.field, fatal.message)
                return
            } catch {
                streamingPID.store(0, ordering: .relaxed)
                let message = (error as? PostgresError)?.message ?? "\(error)"
                let delay = backoff.next()
                logger.warning("cannot stream from the replication slot; retrying", metadata: [
                    "postgres": "\(redacted)", "slot": "\(settings.slot)", "error": "\(message)",
                    "retry_in": "\(String(format: "%.2f", delay))s",
                ])
                hooks.disconnected(message)
                if wake.wait(seconds: delay) { break }
            }
        }
    }

    // MARK: - Publication and slot

    /// Checks the server, keeps the publication, and makes sure the slot exists and is usable. Returns the gap its
    /// (re)creation opened, if any, and the slot's confirmed position.
    private func checkLevel(_ db: PGConnection) throws {
        let level = try db.execute("SHOW wal_level").first?.first ?? nil
        guard level == "logical" else {
            throw Fatal(field: "postgres.source", message: """
                the replication source needs wal_level = logical (it is \(level ?? "unknown")): ALTER SYSTEM SET wal_level = logical; \
                then restart PostgreSQL (RDS: rds.logical_replication = 1; Cloud SQL: cloudsql.logical_decoding = on)
                """)
        }
    }

    private func prepare(_ db: PGConnection) throws -> (gap: String?, confirmed: UInt64) {
        try checkLevel(db)
        if try keepPublication(db) { recreateSlot = true }
        let rows = try db.query("""
            SELECT plugin, database = current_database(), coalesce(wal_status, ''), coalesce(confirmed_flush_lsn::text, ''), \
            coalesce(active_pid::text, ''), temporary FROM pg_catalog.pg_replication_slots WHERE slot_name = $1
            """, parameters: [settings.slot])
        var gap: String?
        if let slot = rows.first {
            guard slot[0] == "pgoutput", slot[1] == "t", slot[5] == "f" else {
                throw Fatal(field: "postgres.replication.slot", message: """
                    slot "\(settings.slot)" exists but is not a permanent pgoutput slot of this database; \
                    choose another name or drop it: SELECT pg_drop_replication_slot('\(settings.slot)');
                    """)
            }
            if let pid = slot[4], !pid.isEmpty {
                hooks.notReady("replication slot \"\(settings.slot)\" is in use by backend \(pid)")
                throw PostgresError(code: .queryFailed, message: "slot \(settings.slot) is in use by backend \(pid)")
            }
            if slot[2] == "lost" || recreateSlot {
                // Invalidated (its WAL is gone), or older than its publication (decoding would not find it).
                logger.error("the replication slot cannot be used; recreating it, then every key is flushed", metadata: [
                    "slot": "\(settings.slot)", "wal_status": "\(slot[2] ?? "")", "publication_created": "\(recreateSlot)",
                ])
                try hooks.willMakeSlot("slot_lost")  // recorded before the old slot is gone
                _ = try db.query("SELECT pg_catalog.pg_drop_replication_slot($1)", parameters: [settings.slot])
                gap = "slot_lost"
            } else {
                return (nil, LSN(parsing: slot[3] ?? "")?.value ?? 0)
            }
        }
        try hooks.willMakeSlot(gap ?? "slot_created")
        hooks.notReady("creating replication slot \"\(settings.slot)\" (it waits for open transactions to end)")
        let stream = try PGConnection.connectReplication(settings.conninfo)
        let created = try stream.command(
            "CREATE_REPLICATION_SLOT \(SQL.quoteIdentifier(settings.slot)) LOGICAL pgoutput (SNAPSHOT 'nothing')"
        )
        let consistent = created.first.flatMap { $0.count > 1 ? $0[1] : nil }.flatMap { LSN(parsing: $0) }?.value ?? 0
        logger.warning("replication slot created", metadata: ["slot": "\(settings.slot)", "consistent_point": "\(LSN(consistent))"])
        return (gap ?? "slot_created", consistent)
    }

    /// Creates the publication, or makes it publish exactly the configured tables and operations (`manage`); else
    /// checks it. Returns true when it was created now.
    private func keepPublication(_ db: PGConnection) throws -> Bool {
        let name = SQL.quoteIdentifier(settings.publication)
        let tableList = settings.tables.joined(separator: ", ")
        let exists = try !db.query("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1", parameters: [settings.publication]).isEmpty
        if settings.manage {
            if !exists {
                try db.execute("CREATE PUBLICATION \(name) FOR TABLE \(tableList) WITH (publish = 'insert, update, delete, truncate')")
                logger.info("publication created", metadata: ["publication": "\(settings.publication)"])
                return true
            }
            try db.execute("ALTER PUBLICATION \(name) SET TABLE \(tableList); ALTER PUBLICATION \(name) SET (publish = 'insert, update, delete, truncate')")
            return false
        }
        guard exists else {
            throw Fatal(field: "postgres.replication.publication", message: """
                publication "\(settings.publication)" does not exist (postgres.replication.manage is false): \
                CREATE PUBLICATION \(name) FOR TABLE \(tableList) WITH (publish = 'insert, update, delete, truncate');
                """)
        }
        return false
    }

    // MARK: - The stream

    /// Serves the COPY BOTH stream until it fails (returns why) or the reader stops (returns ""), and whether it
    /// made progress (handled a message).
    private func serve(
        _ stream: PGConnection, catalog: PGConnection, assembler: inout TransactionAssembler, tracker: inout ConfirmTracker,
        handedThrough: inout UInt64, interval: Double
    ) -> (String, Bool) {
        var status = StatusState()
        var progressed = false
        /// The transaction being received: whether its pieces handed work over, and its last event.
        var current: (handed: Bool, lastEvent: EventID?) = (false, nil)
        var lastCheck = ContinuousClock.now - .seconds(3600)
        var retainedWarned = false
        /// Confirms what Redis applied (once stored) and sends a status update when one is due.
        func confirmAndReport(force: Bool = false) throws(PostgresError) {
            tracker.acknowledged(through: hooks.applied())
            let now = ContinuousClock.now
            if tracker.confirmed > status.requested && (now - status.lastStore >= .seconds(1) || status.replyNow || force) {
                status.requested = tracker.confirmed
                status.lastStore = now
                hooks.storePosition(tracker.confirmed, tracker.lastConfirmedEvent)
            }
            let flush = min(tracker.confirmed, hooks.stored())
            guard force || status.replyNow || now - status.lastStatus >= .seconds(interval)
                || (flush > status.lastSentFlush && now - status.lastStatus >= .seconds(1)) else { return }
            let write = max(status.received, flush)
            status.outputPending = try !stream.sendCopyData(StandbyStatus.update(
                write: LSN(write), flush: LSN(flush), apply: LSN(flush), unixMicroseconds: Self.unixMicroseconds()
            ))
            status.lastStatus = now
            status.lastSentFlush = max(status.lastSentFlush, flush)
            status.replyNow = false
        }
        do {
            while !isStopping {
                // 1. Read what is buffered, unless the writer is full (TCP then pushes back on the walsender).
                var handled = 0
                if hooks.canTakeMore() {
                    reading: while handled < 512 {
                        switch try stream.readCopyData() {
                        case .wouldBlock: break reading
                        case .message(let bytes):
                            handled += 1
                            progressed = true
                            switch try ReplicationMessage.parse(bytes) {
                            case .keepalive(let end, _, let reply):
                                status.received = max(status.received, end.value)
                                tracker.keepalive(walEnd: end.value)
                                if reply { status.replyNow = true }
                            case .xLogData(_, let end, _, let data):
                                status.received = max(status.received, end.value)
                                switch try assembler.feed(try PgOutputMessage.decode(data)) {
                                case .none: break
                                case .began:
                                    tracker.begin()
                                    current = (false, nil)
                                case .changes(let piece):
                                    if piece.commit <= handedThrough {
                                        // Sent again after a reconnect: already with the writer.
                                        if piece.final { tracker.skipped() }
                                        break
                                    }
                                    var failure: PostgresError?
                                    let result = hooks.transaction(piece, current.handed) {
                                        do throws(PostgresError) { try confirmAndReport() } catch { failure = failure ?? error }
                                    }
                                    if let failure { throw failure }
                                    current.handed = current.handed || result.handedOver
                                    current.lastEvent = result.lastEvent ?? current.lastEvent
                                    if piece.final {
                                        handedThrough = piece.commit
                                        tracker.commit(piece.commit, lastEvent: current.lastEvent, hasCommands: current.handed)
                                    }
                                }
                            }
                            if !hooks.canTakeMore() { break reading }
                        }
                    }
                }
                // 2. Confirm what Redis applied; status updates on time, also while not reading.
                try confirmAndReport()
                if status.outputPending { status.outputPending = try !stream.flushOutput() }
                // 3. The slot's numbers, every status interval; a catalog connection that fails is made anew.
                let now = ContinuousClock.now
                if now - lastCheck >= .seconds(interval) {
                    lastCheck = now
                    let row = try catalog.execute(
                        "SELECT pg_catalog.pg_current_wal_lsn()::text, coalesce((pg_catalog.pg_current_wal_lsn() - restart_lsn)::bigint, 0) FROM pg_catalog.pg_replication_slots WHERE slot_name = \(SQL.quoteLiteral(settings.slot))",
                        timeout: max(1, interval / 2)
                    ).first
                    if let row, let serverText = row[0], let server = LSN(parsing: serverText), let retained = row[1].flatMap({ Int64($0) }) {
                        hooks.positions(min(tracker.confirmed, hooks.stored()), server.value, retained)
                        let over = retained > Int64(settings.maxRetained)
                        if over != retainedWarned {
                            retainedWarned = over
                            if over {
                                logger.warning("the replication slot holds back more WAL than postgres.replication.max_retained", metadata: [
                                    "retained_bytes": "\(retained)", "max_retained": "\(settings.maxRetained)",
                                ])
                            }
                            hooks.notReady(over ? "replication slot retains \(retained) bytes of WAL (postgres.replication.max_retained \(settings.maxRetained))" : nil)
                        }
                    }
                }
                // 4. Wait for data, room to send, the next status update, or the writer.
                if handled >= 512 { continue }
                let reading = hooks.canTakeMore()
                let sinceStatus = ContinuousClock.now - status.lastStatus
                let untilStatus = max(0, interval - Double(sinceStatus.components.seconds) - Double(sinceStatus.components.attoseconds) / 1e18)
                let waitSeconds = min(untilStatus, reading && tracker.confirmed <= status.requested ? 1.0 : 0.05)
                var events = Int16(reading ? POLLIN : 0)
                if status.outputPending { events |= Int16(POLLOUT) }
                var fds = [
                    pollfd(fd: stream.socket, events: events, revents: 0),
                    pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0),
                ]
                if poll(&fds, 2, Int32(max(1, waitSeconds * 1000))) < 0 && errno != EINTR { return ("poll failed: errno \(errno)", progressed) }
                if fds[1].revents != 0 { break }
                if fds[0].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 { try stream.consumeInput() }
            }
            // Stopping: one last status update with what is confirmed.
            try? confirmAndReport(force: true)
            _ = try? stream.flushOutput()
            return ("", progressed)
        } catch let error as PostgresError {
            return (error.sqlState.map { "\(error.message) (SQLSTATE \($0))" } ?? error.message, progressed)
        } catch {
            return ("\(error)", progressed)
        }
    }

    /// The status-update bookkeeping of one stream.
    private struct StatusState {
        var received: UInt64 = 0
        var lastStatus = ContinuousClock.now - .seconds(3600)
        var lastSentFlush: UInt64 = 0
        var lastStore = ContinuousClock.now - .seconds(3600)
        var requested: UInt64 = 0
        var replyNow = true
        var outputPending = false
    }

    private static func unixMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// `60s`, `5000ms`, `1min`, or a bare number of milliseconds, as `SHOW wal_sender_timeout` prints it.
    static func milliseconds(_ text: String) -> Int? {
        let digits = text.prefix { $0.isNumber }
        guard let value = Int(digits) else { return nil }
        switch text.dropFirst(digits.count) {
        case "", "ms": return value
        case "s": return value * 1000
        case "min": return value * 60_000
        case "h": return value * 3_600_000
        default: return nil
        }
    }
}
