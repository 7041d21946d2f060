import Foundation
import FreshetCore
import FreshetPostgres
import FreshetRedis
import Testing

/// The replication source against a real PostgreSQL 15 (wal_level=logical) and Redis: no triggers, commit order,
/// durable `LSN-N` ids, restarts that lose nothing and flush nothing, replica identity rules.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct ReplicationTests {
    /// A database of its own and a slot name of its own (slots are per cluster); the slot is dropped afterwards (a
    /// database with a slot cannot be dropped).
    static func withSlot(_ body: (_ url: String, _ slot: String) async throws -> Void) async throws {
        let slot = "t_" + TestServers.uniquePrefix()
        try await TestServers.withDatabase { url in
            do {
                try await body(url, slot)
            } catch {
                try? await dropSlot(slot, url)
                throw error
            }
            try await dropSlot(slot, url)
        }
    }

    static func dropSlot(_ slot: String, _ url: String) async throws {
        try await offThePool {
            let db = try PGConnection.connect(url)
            // The walsender may take a moment to exit after Freshet stopped.
            for _ in 0..<50 {
                let active = try db.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", parameters: [slot])
                if active.isEmpty { return }
                if active[0][0] == "f" {
                    _ = try db.query("SELECT pg_drop_replication_slot($1)", parameters: [slot])
                    return
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    static func source(_ slot: String) -> String {
        "  source: replication\n  replication: {slot: \(slot), publication: \(slot)}"
    }

    /// `user:N` deleted, `name:N` rewritten: the same tables as the refusal tests.
    static let tables = RedisRefusalTests.tables

    func keys(_ f: FreshetFixture) throws -> RedisConnection { try TestRedis().connection }

    func get(_ f: FreshetFixture, _ key: String) throws -> String? {
        try keys(f).command(["GET", "\(f.prefix):\(key)"]).text
    }

    func set(_ f: FreshetFixture, _ key: String, _ value: String = "old") throws {
        _ = try keys(f).command(["SET", "\(f.prefix):\(key)", value])
    }

    func ids(_ client: SSEClient) -> [EventID] { client.changes.compactMap { $0.id.flatMap(EventID.init(parsing:)) } }

    @Test func insertUpdateDeleteTruncateWithoutATrigger() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a'), (2, 'b')") }
            try await FreshetFixture(databaseURL: url, tablesYAML: Self.tables, postgres: Self.source(slot)).running { f in
                let triggers = try await offThePool { try PGConnection.connect(url).execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal")[0][0] }
                #expect(triggers == "0")  // the application's writes pay nothing
                try set(f, "user:1")
                try set(f, "user:2")
                try set(f, "name:1")
                let client = try await f.subscribe()
                try await f.sql("INSERT INTO users VALUES (3, 'c'); UPDATE users SET name = 'new' WHERE id = 1; DELETE FROM users WHERE id = 2")
                try await eventually("three events") { client.changes.count == 3 }
                #expect(try get(f, "user:1") == nil)
                #expect(try get(f, "user:2") == nil)
                #expect(try get(f, "name:1") == #"{"name":"new"}"#)
                #expect(try get(f, "name:3") == #"{"name":"c"}"#)
                #expect(try client.changes.map { try json($0)["op"] } == [.string("insert"), .string("update"), .string("delete")])
                // One transaction: one commit LSN, indexes 1, 2, 3.
                let first = ids(client)
                #expect(first.map(\.sequence) == [1, 2, 3] && Set(first.map(\.epoch)).count == 1)
                try set(f, "user:1")
                try await f.sql("TRUNCATE users")
                try await eventually("truncate event") { client.changes.count == 4 }
                #expect(try json(client.changes[3])["op"] == .string("truncate"))
                #expect(try get(f, "user:1") == nil)
                #expect(ids(client)[3] > first[2])  // later commit, larger id
            }
        }
    }

    @Test func aKeyThatMovesUnderReplicaIdentityFull() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool {
                try PGConnection.connect(url).execute("""
                    CREATE TABLE members (id int PRIMARY KEY, org_id int); INSERT INTO members VALUES (1, 7);
                    ALTER TABLE members REPLICA IDENTITY FULL;
                    """)
            }
            let tables = "  - name: members\n    redis: [{key: \"{prefix}:org:{org_id}:members\"}]"
            try await FreshetFixture(databaseURL: url, tablesYAML: tables, postgres: Self.source(slot)).running { f in
                try set(f, "org:7:members")
                try set(f, "org:8:members")
                let client = try await f.subscribe()
                try await f.sql("UPDATE members SET org_id = 8 WHERE id = 1")
                try await eventually("event") { client.changes.count == 1 }
                #expect(try get(f, "org:7:members") == nil)  // the old row's key, from the full old row
                #expect(try get(f, "org:8:members") == nil)
                try set(f, "org:8:members")
                try await f.sql("DELETE FROM members WHERE id = 1")
                try await eventually("delete") { client.changes.count == 2 }
                #expect(try get(f, "org:8:members") == nil)
            }
        }
    }

    @Test func aTemplateBeyondTheKeyNeedsReplicaIdentityFullAndSaysHow() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE members (id int PRIMARY KEY, org_id int); CREATE TABLE nokey (v int)") }
            let tables = "  - name: members\n    redis: [{key: \"{prefix}:org:{org_id}:members\"}]"
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: tables, postgres: Self.source(slot))
            let error = await fixture.runToCompletion()
            let problem = try #require(error as? ConfigError, "\(String(describing: error))")
            #expect(problem.description.contains("org_id"))
            #expect(problem.description.contains(#"ALTER TABLE "public"."members" REPLICA IDENTITY FULL;"#))
            // The CLI: run and check exit 2 with the same hint; a table without a key is refused too.
            let config = try writeConfig("""
                postgres: {url: "\(url)", source: replication, replication: {slot: \(slot)}}
                tables:
                  - {name: members, redis: [{key: "m:{org_id}"}]}
                  - {name: nokey, key: [v], redis: [{key: "n:{v}"}]}
                """)
            for command in ["run", "check"] {
                let result = try await CLIProcess.run([command, "--config", config], timeout: 30)
                #expect(result.status == 2, "\(command): \(result.stderr)")
                #expect(result.stderr.contains("REPLICA IDENTITY FULL"), "\(command): \(result.stderr)")
                #expect(result.stderr.contains("nokey"), "\(command): \(result.stderr)")
            }
        }
    }

    @Test func checkReportsTheServerThePublicationAndTheSlot() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)") }
            let (_, redis) = try TestServers.require()
            func config(manage: Bool) throws -> String {
                try writeConfig("""
                    postgres: {url: "\(url)", source: replication, replication: {slot: \(slot), publication: \(slot), manage: \(manage)}}
                    redis: {url: "\(redis)"}
                    tables: [{name: users, redis: [{key: "c:{id}"}]}]
                    """)
            }
            let ok = try await CLIProcess.run(["check", "--config", try config(manage: true)], timeout: 30)
            #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
            for line in ["wal_level = logical", "may replicate", "replication connection", "publication", "slot \(slot) does not exist yet", "no triggers"] {
                #expect(ok.stdout.contains(line), "\(line): \(ok.stdout)")
            }
            let unmanaged = try await CLIProcess.run(["check", "--config", try config(manage: false)], timeout: 30)
            #expect(unmanaged.status == 2)
            #expect(unmanaged.stderr.contains("CREATE PUBLICATION"), "\(unmanaged.stderr)")
        }
    }

    /// A TOASTed column left unchanged arrives as "unchanged" in the WAL: a `set` rule that needs it reads the row
    /// back, so the cached value is complete.
    @Test func anUnchangedToastedColumnIsReadBack() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool {
                try PGConnection.connect(url).execute("""
                    CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
                    ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
                    INSERT INTO docs SELECT 1, 't', string_agg(md5(g::text), '') FROM generate_series(1, 400) g;
                    """)
            }
            let tables = "  - name: docs\n    redis: [{key: \"{prefix}:doc:{id}\", action: set, columns: [title, body]}]"
            try await FreshetFixture(databaseURL: url, tablesYAML: tables, postgres: Self.source(slot)).running { f in
                let client = try await f.subscribe()
                try await f.sql("UPDATE docs SET title = 'new' WHERE id = 1")  // body unchanged: not in the WAL record
                try await eventually("event") { client.changes.count == 1 }
                let cached = try #require(try get(f, "doc:1"))
                guard case .object(let row) = try JSONParser.parse(cached) else { throw TestFailure("not an object: \(cached)") }
                #expect(row["title"] == .string("new"))
                #expect(row["body"]?.stringValue?.count == 400 * 32)
            }
        }
    }

    /// The server's DateStyle and TimeZone do not change keys or events: the reader pins its session's.
    @Test func keysAreTheSameWhateverTheServersDateStyleAndTimeZone() async throws {
        try await Self.withSlot { url, slot in
            let name = String(url.split(separator: "/").last!)
            try await offThePool {
                try PGConnection.connect(url).execute("""
                    ALTER DATABASE \(name) SET DateStyle = 'SQL, DMY'; ALTER DATABASE \(name) SET TimeZone = 'Asia/Tokyo';
                    CREATE TABLE stamps (id int PRIMARY KEY, at timestamptz, day date, amount numeric, flag bool);
                    ALTER TABLE stamps REPLICA IDENTITY FULL;
                    """)
            }
            let tables = "  - name: stamps\n    redis: [{key: \"{prefix}:s:{id}:{day}:{flag}\", action: set}]"
            try await FreshetFixture(databaseURL: url, tablesYAML: tables, postgres: Self.source(slot)).running { f in
                let client = try await f.subscribe()
                try await f.sql("INSERT INTO stamps VALUES (1, '2026-12-01 12:34:56.789+00', '2026-12-01', 12.50, true)")
                try await eventually("event") { client.changes.count == 1 }
                let cached = try #require(try get(f, "s:1:2026-12-01:true"))
                #expect(cached == #"{"id":1,"at":"2026-12-01T12:34:56.789+00:00","day":"2026-12-01","amount":12.50,"flag":true}"#)
            }
        }
    }

    /// One 200,000-row UPDATE decoded with a tiny logical_decoding_work_mem (the server spills to disk): every key
    /// invalidated.
    @Test func aLargeTransactionWithSmallDecodingMemory() async throws {
        try await Self.withSlot { url, slot in
            let name = String(url.split(separator: "/").last!)
            try await offThePool {
                try PGConnection.connect(url).execute("""
                    ALTER DATABASE \(name) SET logical_decoding_work_mem = '64kB';
                    CREATE TABLE items (id int PRIMARY KEY, v int); INSERT INTO items SELECT g, 0 FROM generate_series(1, 200000) g;
                    """)
            }
            let redis = try await OwnRedis()
            let tables = "  - name: items\n    redis: [{key: \"item:{id}\"}]"
            try await FreshetFixture(
                databaseURL: url, tablesYAML: tables, redisURL: redis.url, postgres: Self.source(slot)
            ).running { f in
                let fill = try redis.connection()
                try await offThePool {
                    for start in stride(from: 1, through: 200_000, by: 5000) {
                        for id in start..<(start + 5000) { try fill.append(["SET", "item:\(id)", "old"]) }
                        for _ in start..<(start + 5000) { _ = try fill.reply() }
                    }
                }
                try await f.sql("UPDATE items SET v = v + 1")
                try await eventually("every key invalidated", timeout: 120) { try redis.run("DBSIZE") == .integer(1) }  // Freshet's position key
            }
        }
    }

    /// `freshet tail` reads through a temporary slot of its own: it prints changes and leaves no slot behind.
    @Test func tailReadsThroughATemporarySlot() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)") }
            let config = try writeConfig("""
                postgres: {url: "\(url)", source: replication, replication: {slot: \(slot), publication: \(slot)}}
                tables: [{name: users, redis: [{key: "t:{id}"}]}]
                """)
            let tail = try CLIProcess(["tail", "--config", config])
            defer { tail.signal(SIGKILL) }
            let temporary = "SELECT count(*) FROM pg_replication_slots WHERE temporary AND database = current_database()"
            try await eventually("tail streams (log: \(tail.stderr))") { try await offThePool { try PGConnection.connect(url).execute(temporary)[0][0] } == "1" }
            try await offThePool { try PGConnection.connect(url).execute("INSERT INTO users VALUES (5, 'e')") }
            try await eventually("a line") { !tail.stdoutLines.isEmpty }
            let line = try #require(try JSONParser.parse(tail.stdoutLines[0]).objectValue)
            #expect(line["op"] == .string("insert"))
            #expect(line["id"]?.stringValue.flatMap(EventID.init(parsing:)) != nil)
            #expect(line["operations"] == .array([.object(["action": .string("delete"), "key": .string("t:5")])]))
            tail.signal(SIGTERM)
            _ = try await tail.wait(timeout: 15)
            let left = try await offThePool { try PGConnection.connect(url).execute("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")[0][0] }
            #expect(left == "0")
        }
    }

    /// Creating a slot waits for the transactions open at that moment: `/readyz` says so until they end.
    @Test func readyWaitsForTheSlotBehindAnOpenTransaction() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)") }
            let open = try await offThePool { () throws -> PGConnection in
                let connection = try PGConnection.connect(url)
                try connection.execute("BEGIN; INSERT INTO users VALUES (1, 'held')")  // an xid, held open
                return connection
            }
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: Self.tables, postgres: Self.source(slot))
            let task = Task { try await fixture.app.run() }
            try await eventually("/readyz says it waits for the slot") {
                fixture.app.notReadyReasons.contains { $0.contains("creating replication slot") }
            }
            try await offThePool { try open.execute("COMMIT") }
            try await eventually("ready once the transaction ended") { fixture.app.notReadyReasons.isEmpty }
            await fixture.app.shutdown()
            _ = try? await task.value
        }
    }

    /// A slot holding back more WAL than `max_retained` makes `/readyz` say so.
    @Test func aSlotRetainingTooMuchWALIsNotReady() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)") }
            let fixture = try FreshetFixture(
                databaseURL: url, tablesYAML: Self.tables,
                postgres: "  source: replication\n  replication: {slot: \(slot), publication: \(slot), max_retained: 1}"
            )
            let task = Task { try await fixture.app.run() }
            try await eventually("/readyz names the retained WAL") {
                fixture.app.notReadyReasons.contains { $0.contains("retains") && $0.contains("max_retained") }
            }
            await fixture.app.shutdown()
            _ = try? await task.value
        }
    }

    /// Freshet stopped, 1,000 writes, Freshet started again: every changed key invalidated, an untouched key kept, no
    /// resync, and a subscriber resuming with the last id it saw gets exactly the missed events.
    @Test func aRestartLosesNothingAndFlushesNothing() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool {
                try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 1001) g")
            }
            let prefix = TestServers.uniquePrefix()
            func fixture() throws -> FreshetFixture {
                try FreshetFixture(databaseURL: url, prefix: prefix, tablesYAML: Self.tables, postgres: Self.source(slot))
            }
            var lastSeen: String?
            try await fixture().running { f in
                let client = try await f.subscribe()
                try await f.sql("UPDATE users SET name = 'first' WHERE id = 1")
                try await eventually("an event before the stop") { client.changes.count == 1 }
                lastSeen = client.changes.last?.id
            }
            let redis = try TestRedis().connection
            for id in 1...1001 { try redis.append(["SET", "\(prefix):user:\(id)", "old"]) }
            for _ in 1...1001 { _ = try redis.reply() }
            try await offThePool {
                let db = try PGConnection.connect(url)
                for id in 1...1000 { try db.execute("UPDATE users SET name = 'down' WHERE id = \(id)") }
            }
            try await fixture().running { f in
                let resumed = try await f.subscribe(headers: ["Last-Event-ID": try #require(lastSeen)])
                try await eventually("the 1,000 missed events", timeout: 60) { resumed.changes.count == 1000 }
                #expect(!resumed.messages.contains { $0.event == "resync" })
                #expect(Set(resumed.changes.compactMap(\.id)).count == 1000)  // none twice
                let stale = try (1...1000).filter { try redis.command(["GET", "\(prefix):user:\($0)"]).text == "old" }
                #expect(stale.isEmpty)
                #expect(try redis.command(["GET", "\(prefix):user:1001"]).text == "old")  // no flush
            }
        }
    }

    /// A process that died between making the slot and applying its repair leaves the repair recorded in Redis: the
    /// next start repairs (flush, resync) although the slot exists, and removes the record; with nothing recorded, a
    /// start flushes nothing.
    @Test func aRepairLeftUndoneIsDoneAtTheNextStart() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool {
                try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a')")
            }
            let prefix = TestServers.uniquePrefix()
            func fixture() throws -> FreshetFixture {
                try FreshetFixture(databaseURL: url, prefix: prefix, tablesYAML: Self.tables, postgres: Self.source(slot))
            }
            let redis = try TestRedis()
            let record = "freshet:\(slot):repair"
            try await fixture().running { _ in
                // Made the slot: its repair was recorded before, applied, and the record removed.
                try await eventually("the slot's record removed once its repair was applied") { try redis.run("EXISTS", record) == .integer(0) }
            }
            try redis.run("SET", "\(prefix):user:1", "cached")
            try redis.run("SET", record, "slot_lost")  // what a process killed between making the slot and its flush leaves
            try await fixture().running { f in
                let client = try await f.subscribe()
                try await eventually("flushed although the slot exists") { try redis.run("EXISTS", "\(prefix):user:1") == .integer(0) }
                try await eventually("the record removed") { try redis.run("EXISTS", record) == .integer(0) }
                try await f.sql("UPDATE users SET name = 'b' WHERE id = 1")
                try await eventually("changes flow after the repair") { client.changes.count == 1 }
            }
            try redis.run("SET", "\(prefix):user:2", "cached")  // a row nobody changes (the slot may send user 1's again)
            try await fixture().running { _ in
                // Ready means every repair the start needed was applied: none, so nothing was flushed.
                let present = try redis.run("EXISTS", "\(prefix):user:2")
                #expect(present == .integer(1))
            }
        }
    }

    /// The slot's confirmed position moves only once Redis applied the change: Redis paused after the commit, Freshet
    /// killed (-9), Redis back, Freshet restarted: the change is applied.
    @Test func aChangeNotAppliedBeforeAKillIsAppliedAfterTheRestart() async throws {
        try await Self.withSlot { url, slot in
            try await offThePool { try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a')") }
            let redis = try await OwnRedis()
            let port = TestServers.freePort()
            let config = try writeConfig("""
                postgres: {url: "\(url)", source: replication, replication: {slot: \(slot), publication: \(slot)}}
                redis: {url: "\(redis.url)", timeout: 0.5}
                http: {listen: "127.0.0.1:\(port)"}
                tables: [{name: users, redis: [{key: "k:{id}"}]}]
                """)
            func started() async throws -> CLIProcess {
                let run = try CLIProcess(["run", "--config", config])
                var body = ""
                try await eventually("ready (\(body); log: \(run.stderr.suffix(1500)))", timeout: 30) {
                    let r = try? await httpGet(port: port, path: "/readyz")
                    body = r?.body ?? ""
                    return r?.status == 200
                }
                return run
            }
            let first = try await started()
            try redis.run("SET", "k:1", "old")
            redis.pause()
            try await offThePool { try PGConnection.connect(url).execute("UPDATE users SET name = 'b' WHERE id = 1") }
            let commitLSN = try await offThePool { try PGConnection.connect(url).execute("SELECT pg_current_wal_lsn()::text")[0][0]! }
            try await Task.sleep(for: .seconds(1))  // the change reaches Freshet, which cannot apply it
            first.signal(SIGKILL)
            _ = try? await first.wait(timeout: 10)
            let confirmed = try await offThePool {
                try PGConnection.connect(url).query("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", parameters: [slot])[0][0]!
            }
            #expect(LSN(parsing: confirmed)! < LSN(parsing: commitLSN)!)  // not confirmed
            redis.resume()
            let second = try await started()
            defer { second.signal(SIGKILL) }
            try await eventually("applied after the restart") { try redis.run("EXISTS", "k:1") == .integer(0) }
            second.signal(SIGTERM)
            _ = try? await second.wait(timeout: 15)
        }
    }
}

/// The slot's life on a PostgreSQL of the test's own (`wal_sender_timeout` 2 s, `max_slot_wal_keep_size` 1 MB):
/// status updates while Redis is away, an idle slot that follows the server, and a slot invalidated or dropped.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct ReplicationSlotTests {
    @Test func keepalivesIdleAdvanceAndLostSlots() async throws {
        let pg = try await OwnPostgres(extraOptions: "-c wal_sender_timeout=2s -c max_slot_wal_keep_size=1MB")
        let redis = try await OwnRedis()
        let url = pg.url
        let slot = "s_" + TestServers.uniquePrefix()
        func sql(_ text: String) async throws -> [[String?]] { try await offThePool { try PGConnection.connect(url).execute(text) } }
        func slotRow() async throws -> (active: String?, confirmed: LSN, status: String?) {
            let row = try await sql("SELECT active_pid::text, confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = '\(slot)'")[0]
            return (row[0], LSN(parsing: row[1] ?? "0/0") ?? .zero, row[2])
        }
        _ = try await sql("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 3) g; CREATE TABLE other (v int)")
        let prefix = TestServers.uniquePrefix()
        let tables = "  - name: users\n    redis: [{key: \"{prefix}:user:{id}\"}]"
        func fixture() throws -> FreshetFixture {
            try FreshetFixture(
                databaseURL: url, prefix: prefix, tablesYAML: tables, redisURL: redis.url, redis: "  timeout: 0.5",
                metrics: true, postgres: ReplicationTests.source(slot)
            )
        }
        func key(_ id: Int) -> String { "\(prefix):user:\(id)" }

        var lastSeen: String?
        try await fixture().running { f in
            // 1. Idle: writes to an unpublished table; the confirmed position follows the server.
            _ = try await sql("INSERT INTO other SELECT generate_series(1, 1000)")
            let after = LSN(parsing: try await sql("SELECT pg_current_wal_lsn()::text")[0][0]!)!
            try await eventually("the idle slot's confirmed position passes \(after)") { try await slotRow().confirmed >= after }
            try await eventually("the slot's metrics") {
                let text = try await httpGet(port: f.port, path: "/metrics").body
                return promSample(text, "freshet_replication_confirmed_lsn") > 0 && text.contains("freshet_replication_retained_bytes")
                    && text.contains("freshet_replication_lag_bytes")
            }

            // 2. Redis away for four wal_sender_timeouts: the same walsender streams on (status updates kept flowing).
            let walsender = try await slotRow().active
            #expect(walsender != nil)
            try redis.run("SET", key(1), "old")
            let client = try await f.subscribe()
            redis.pause()
            _ = try await sql("UPDATE users SET name = 'new' WHERE id = 1")
            try await Task.sleep(for: .seconds(8))  // the fault's length: 4 × wal_sender_timeout
            #expect(try await slotRow().active == walsender)
            redis.resume()
            try await eventually("applied once Redis is back") { try redis.run("EXISTS", key(1)) == .integer(0) }
            try await eventually("the event") { client.changes.count == 1 }
            lastSeen = client.changes.last?.id
        }

        // 3. Invalidated while Freshet is down (its WAL removed): recreated, every key flushed, one resync.
        try redis.run("SET", key(3), "old")  // a row nobody changes: only a flush removes it
        for _ in 0..<4 {
            _ = try await sql("SELECT pg_switch_wal(); INSERT INTO other SELECT generate_series(1, 100000); CHECKPOINT")
            if try await slotRow().status == "lost" { break }
        }
        #expect(try await slotRow().status == "lost")
        try await fixture().running { f in
            #expect(try redis.run("EXISTS", key(3)) == .integer(0))  // flushed before ready
            let metrics = try await httpGet(port: f.port, path: "/metrics").body
            #expect(promSample(metrics, #"freshet_gaps_total{cause="slot_lost"}"#) >= 1)
            let resumed = try await f.subscribe(headers: ["Last-Event-ID": try #require(lastSeen)])
            try await eventually("a resync for an id from before the loss") { resumed.messages.contains { $0.event == "resync" } }
            #expect(resumed.messages.filter { $0.event == "resync" }.count == 1)
        }

        // 4. Dropped while Freshet is down: the same.
        _ = try await sql("SELECT pg_drop_replication_slot('\(slot)')")
        try redis.run("SET", key(2), "old")
        try await fixture().running { _ in
            let exists = try redis.run("EXISTS", key(2))
            let recreated = try await slotRow().status
            #expect(exists == .integer(0))
            #expect(recreated != nil)
        }
        try await ReplicationTests.dropSlot(slot, url)
    }

    /// A failover before PostgreSQL 17: the primary crashes and its standby is promoted. The slot was never copied to
    /// the standby, so changes between Freshet's last confirmation and the crash cannot be replayed: Freshet, reaching
    /// the new primary through the same multi-host URL, recreates the slot there and counts a `slot_lost` gap (flush,
    /// resync) instead of carrying on as if nothing was missed; then it captures the new primary's changes.
    /// A primary (`users` with rows 1 and 2, and `filler`), its streaming standby, a Redis and a Freshet reaching the
    /// pair through a libpq multi-host URL (it tries the hosts in order and keeps the one that takes writes).
    struct FailoverPair {
        let primary: OwnPostgres
        let standby: OwnPostgres
        let redis: OwnRedis
        let slot = "f_" + TestServers.uniquePrefix()
        let prefix = TestServers.uniquePrefix()
        let fixture: FreshetFixture
        let url: String
        let http: String

        /// - Parameter http: lines under `http:` (e.g. the relay).
        init(http: String = "") async throws {
            self.http = http
            primary = try await OwnPostgres(extraOptions: "-c wal_sender_timeout=2s")
            redis = try await OwnRedis()
            _ = try await FailoverPair.sql(primary.url, """
                CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a'), (2, 'b'); CREATE TABLE filler (v int)
                """)
            standby = try await OwnPostgres(standbyOf: primary)
            url = "postgresql://postgres@127.0.0.1:\(primary.port),127.0.0.1:\(standby.port)/postgres?target_session_attrs=read-write"
            fixture = try Self.freshet(url: url, prefix: prefix, http: http, redis: redis, slot: slot)
        }

        /// A Freshet process on the pair (each call a new one, same configuration).
        func another() throws -> FreshetFixture {
            try Self.freshet(url: url, prefix: prefix, http: http, redis: redis, slot: slot)
        }

        private static func freshet(url: String, prefix: String, http: String, redis: OwnRedis, slot: String) throws -> FreshetFixture {
            try FreshetFixture(
                databaseURL: url, prefix: prefix, tablesYAML: "  - name: users\n    redis: [{key: \"{prefix}:user:{id}\"}]",
                http: http, redisURL: redis.url, metrics: true, postgres: ReplicationTests.source(slot)
            )
        }

        func key(_ id: Int) -> String { "\(prefix):user:\(id)" }

        static func sql(_ url: String, _ text: String) async throws -> [[String?]] {
            try await offThePool { try PGConnection.connect(url).execute(text) }
        }
    }

    @Test func aFailoverToAStandbyIsALostSlotRepaired() async throws {
        let pair = try await FailoverPair()
        let (primary, standby, redis, slot) = (pair.primary, pair.standby, pair.redis, pair.slot)
        func key(_ id: Int) -> String { pair.key(id) }
        try await pair.fixture.running { f in
            let client = try await f.subscribe()
            try redis.run("SET", key(1), "old")
            try await f.sql("UPDATE users SET name = 'a2' WHERE id = 1")
            try await eventually("invalidated on the first primary") { try redis.run("EXISTS", key(1)) == .integer(0) }
            try await eventually("its event") { client.changes.count == 1 }

            try redis.run("SET", key(2), "cached")  // a row nobody changes: only the gap's flush removes it
            try await primary.crash()
            try await standby.promote()
            try await eventually("the slot_lost gap on the new primary", timeout: 30) {
                let metrics = try await httpGet(port: f.port, path: "/metrics").body
                return promSample(metrics, #"freshet_gaps_total{cause="slot_lost"}"#) >= 1
            }
            try await eventually("every key flushed") { try redis.run("EXISTS", key(2)) == .integer(0) }
            try await eventually("the subscriber told to resync") { client.messages.contains { $0.event == "resync" } }
            try await eventually("ready on the new primary", timeout: 30) {
                try await httpGet(port: f.port, path: "/readyz").status == 200
            }
            let slots = try await offThePool {
                try PGConnection.connect(standby.url).query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", parameters: [slot])
            }
            #expect(slots.first?.first == "1", "the slot is recreated on the new primary")

            // Changes on the new primary are captured.
            try redis.run("SET", key(1), "old")
            try await f.sql("UPDATE users SET name = 'a3' WHERE id = 1")
            try await eventually("invalidated on the new primary") { try redis.run("EXISTS", key(1)) == .integer(0) }
            try await eventually("its event") { client.changes.count == 2 }
        }
        try await ReplicationTests.dropSlot(slot, standby.url)
    }

    /// A failover to a standby that had **not** received the last changes: the new primary's positions start below
    /// events already published. Nothing of the new slot may be confirmed before Redis applied it (what was applied
    /// in the old history proves nothing), a resume from an old id gets a resync, and subscribers — also one that
    /// resumed from an old id — get the new primary's events although their ids are lower.
    @Test func aFailoverToALaggingStandbyStartsANewHistory() async throws {
        let pair = try await FailoverPair()
        let (primary, standby, redis, slot) = (pair.primary, pair.standby, pair.redis, pair.slot)
        func key(_ id: Int) -> String { pair.key(id) }
        func sql(_ url: String, _ text: String) async throws -> [[String?]] { try await FailoverPair.sql(url, text) }
        try await pair.fixture.running { f in
            let live = try await f.subscribe()
            try await standby.stop()  // from here on the standby falls behind
            _ = try await sql(primary.url, "INSERT INTO filler SELECT generate_series(1, 200000)")  // WAL it will never have
            try await f.sql("UPDATE users SET name = 'a2' WHERE id = 1")
            try await eventually("the old primary's event") { live.changes.count == 1 }
            let oldID = try #require(live.changes.last?.id)
            let oldLSN = try #require(UInt64(oldID.split(separator: "-")[0]))
            // Freshet has confirmed and stored a position past it: the old history's positions are all above the
            // new primary's.
            try await eventually("the position stored past the old event") {
                let stored = try redis.run("GET", "freshet:\(slot):position").text?.split(separator: " ").first.flatMap { UInt64($0) }
                return (stored ?? 0) >= oldLSN
            }

            try await primary.crash()
            try await standby.start()
            try await standby.promote()
            try await eventually("the slot_lost gap", timeout: 30) {
                promSample(try await httpGet(port: f.port, path: "/metrics").body, #"freshet_gaps_total{cause="slot_lost"}"#) >= 1
            }
            try await eventually("ready on the new primary", timeout: 30) { try await httpGet(port: f.port, path: "/readyz").status == 200 }
            let resumed = try await f.subscribe(headers: ["Last-Event-ID": oldID])
            try await eventually("a resync for an id of the old history") { resumed.messages.contains { $0.event == "resync" } }

            // Redis away: a change on the new primary, below the old position, must not be confirmed to the slot.
            redis.pause()
            try await f.sql("UPDATE users SET name = 'a3' WHERE id = 1")
            let commitLSN = try #require(LSN(parsing: try await sql(standby.url, "SELECT pg_current_wal_lsn()::text")[0][0] ?? ""))
            func walsender() async throws -> (write: LSN, confirmed: LSN) {
                let row = try await sql(standby.url, """
                    SELECT coalesce(r.write_lsn, '0/0')::text, s.confirmed_flush_lsn::text FROM pg_replication_slots s
                    LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = '\(slot)'
                    """)[0]
                return (LSN(parsing: row[0] ?? "0/0") ?? .zero, LSN(parsing: row[1] ?? "0/0") ?? .zero)
            }
            try await eventually("Freshet received the change (its status update says so)") { try await walsender().write >= commitLSN }
            let confirmedWhileAway = try await walsender().confirmed
            redis.resume()
            try await eventually("applied once Redis is back") { try redis.run("EXISTS", key(1)) == .integer(0) }
            try await eventually("the new event reaches both subscribers") {
                live.changes.count == 2 && resumed.changes.count == 1
            }
            // The event's id carries the transaction's commit LSN: the slot was not confirmed up to it while Redis was away.
            let newID = try #require(live.changes.last?.id)
            let newCommit = try #require(UInt64(newID.split(separator: "-")[0]))
            #expect(newCommit < oldLSN)
            #expect(confirmedWhileAway.value < newCommit, "confirmed \(confirmedWhileAway) before Redis applied commit \(LSN(newCommit))")
        }
        try await ReplicationTests.dropSlot(slot, standby.url)
    }

    /// The same failover with `http.relay: redis` and two processes: the writer's lock session dies with the old
    /// primary (it stops, as designed, for its supervisor to restart it as a standby); the standby takes over on the new
    /// primary. The new slot's ids are below the relay stream's entries, so the stream starts over and every reader
    /// follows: the new primary's events reach a live subscriber of the survivor and one that resumed there from an
    /// old id, and none is refused as a duplicate of the old history.
    @Test func aFailoverToALaggingStandbyStartsTheRelayStreamOver() async throws {
        let pair = try await FailoverPair(http: RelayTests.relay)
        let (primary, standby, redis, slot) = (pair.primary, pair.standby, pair.redis, pair.slot)
        func sql(_ url: String, _ text: String) async throws -> [[String?]] { try await FailoverPair.sql(url, text) }
        let a = pair.fixture, b = try pair.another()
        try await a.start()
        try await eventually("A is the writer", timeout: 30) {
            promSample(try await httpGet(port: a.port, path: "/metrics").body, "freshet_writer") == 1
        }
        try await b.running { b in
            let live = try await b.subscribe()
            try await standby.stop()
            _ = try await sql(primary.url, "INSERT INTO filler SELECT generate_series(1, 200000)")
            try await b.sql("UPDATE users SET name = 'a2' WHERE id = 1")
            try await eventually("the old primary's event, relayed to B") { live.changes.count == 1 }
            let oldID = try #require(live.changes.last?.id)
            let oldLSN = try #require(UInt64(oldID.split(separator: "-")[0]))
            let generation = try redis.run("GET", "freshet:{\(slot)}:generation")
            let before = try await httpGet(port: b.port, path: "/metrics").body  // one registry for every process of the test

            try await primary.crash()
            try await standby.start()
            try await standby.promote()
            try await eventually("the stream started over", timeout: 30) {
                try redis.run("GET", "freshet:{\(slot)}:generation") != generation
            }
            try await eventually("B is the writer on the new primary", timeout: 30) {
                promSample(try await httpGet(port: b.port, path: "/metrics").body, "freshet_writer") == 1
            }
            try await eventually("the live subscriber told to resync") { live.messages.contains { $0.event == "resync" } }
            let resumed = try await b.subscribe(headers: ["Last-Event-ID": oldID])
            try await eventually("a resync for an id of the old history") { resumed.messages.contains { $0.event == "resync" } }

            for n in 3...5 { try await b.sql("UPDATE users SET name = 'a\(n)' WHERE id = 1") }
            try await eventually("the new primary's events reach both subscribers", timeout: 20) {
                live.changes.count == 4 && resumed.changes.count == 3
            }
            let newID = try #require(live.changes.last?.id)
            #expect(try #require(UInt64(newID.split(separator: "-")[0])) < oldLSN, "the new history's ids are lower")
            #expect(resumed.changes.map(\.id) == Array(live.changes.dropFirst().map(\.id)))
            let after = try await httpGet(port: b.port, path: "/metrics").body
            #expect(promDelta(before, after, "freshet_relay_duplicates_total") == 0, "no new event refused as a duplicate")
        }
        await a.stop()
        try await ReplicationTests.dropSlot(slot, standby.url)
    }
}
