import Foundation
import FreshetCore
import FreshetPostgres
import Testing

/// End to end against real servers: PostgreSQL row changes → Redis keys → SSE events.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct CoreFlowTests {
    static let usersTable = """
          - name: users
            ignore_columns: [last_seen_at]
            redis:
              - key: "{prefix}:user:{id}"
              - key: "{prefix}:user:{id}:card"
                action: set
                columns: [id, name, email]
                ttl: 3600
              - key: "{prefix}:org:{org_id}:members"
            sse:
              columns: [id, name]
              show_keys: true
        """

    static let schema = """
        CREATE TABLE users (id serial PRIMARY KEY, org_id int, name text, email text, last_seen_at timestamptz, bio text);
        """

    /// Runs `body` with a started Freshet over a fresh database holding `users`, and a subscriber.
    func withFreshet(_ body: (FreshetFixture, SSEClient, TestRedis) async throws -> Void) async throws {
        try await TestServers.withDatabase { url in
            let setup = try PGConnection.connect(url)
            try setup.execute(Self.schema)
            try await FreshetFixture(databaseURL: url, tablesYAML: Self.usersTable).running { fixture in
                let redis = try TestRedis()
                let client = try await fixture.subscribe()
                try await body(fixture, client, redis)
            }
        }
    }

    @Test func insertInvalidatesAndRewritesThenTells() async throws {
        try await withFreshet { f, client, redis in
            try redis.run("SET", "\(f.prefix):user:1", "stale")
            try redis.run("SET", "\(f.prefix):org:7:members", "stale")
            try await f.sql("INSERT INTO users (org_id, name, email, bio) VALUES (7, 'Ann', 'ann@example.com', 'secret bio')")
            try await eventually("insert event") { client.changes.count == 1 }
            // Invalidate first, then tell: by the time the event arrived, Redis has the new state.
            #expect(try !redis.exists("\(f.prefix):user:1"))
            #expect(try !redis.exists("\(f.prefix):org:7:members"))
            let card = try #require(try redis.get("\(f.prefix):user:1:card"))
            #expect(try JSONParser.parse(card) == .object(["id": .number("1"), "name": .string("Ann"), "email": .string("ann@example.com")]))
            if case .integer(let ttl) = try redis.run("PTTL", "\(f.prefix):user:1:card") {
                #expect(ttl > 3_590_000 && ttl <= 3_600_000)
            } else {
                Issue.record("no TTL on the set key")
            }
            let event = try json(client.changes[0])
            #expect(event["op"] == .string("insert"))
            #expect(event["schema"] == .string("public"))
            #expect(event["table"] == .string("users"))
            #expect(event["key"] == .object(["id": .number("1")]))
            #expect(event["topics"] == .array([.string("users"), .string("users/1")]))
            #expect(event["row"] == .object(["id": .number("1"), "name": .string("Ann")]))
            #expect(event["redis"] == .array([.string("\(f.prefix):user:1"), .string("\(f.prefix):user:1:card"), .string("\(f.prefix):org:7:members")]))
            #expect(!client.changes[0].data.contains("secret bio"))
            #expect(!client.changes[0].data.contains("ann@example.com"))
            #expect(client.changes[0].id?.hasSuffix("-1") == true)
        }
    }

    @Test func updateThatMovesTheKeyDeletesOldAndNew() async throws {
        try await withFreshet { f, client, redis in
            try await f.sql("INSERT INTO users (org_id, name) VALUES (7, 'Ann')")
            try await eventually("insert event") { client.changes.count == 1 }
            try redis.run("SET", "\(f.prefix):org:7:members", "stale")
            try redis.run("SET", "\(f.prefix):org:8:members", "stale")
            try redis.run("SET", "\(f.prefix):user:1", "stale")
            try await f.sql("UPDATE users SET org_id = 8, name = 'Ann B' WHERE id = 1")
            try await eventually("update event") { client.changes.count == 2 }
            #expect(try !redis.exists("\(f.prefix):org:7:members"))
            #expect(try !redis.exists("\(f.prefix):org:8:members"))
            #expect(try !redis.exists("\(f.prefix):user:1"))
            #expect(try redis.get("\(f.prefix):user:1:card")?.contains("Ann B") == true)
            let event = try json(client.changes[1])
            #expect(event["op"] == .string("update"))
            #expect(event["row"] == .object(["id": .number("1"), "name": .string("Ann B")]))
        }
    }

    @Test func updateOfIgnoredColumnsOnlySendsNothing() async throws {
        try await withFreshet { f, client, redis in
            try await f.sql("INSERT INTO users (org_id, name) VALUES (7, 'Ann'), (7, 'Bob')")
            try await eventually("insert events") { client.changes.count == 2 }
            try redis.run("SET", "\(f.prefix):user:1", "cached")
            try await f.sql("UPDATE users SET last_seen_at = now() WHERE id = 1")
            try await f.sql("UPDATE users SET name = 'Bobby' WHERE id = 2")  // a marker that must arrive after
            try await eventually("marker event") { client.changes.count >= 3 }
            #expect(client.changes.count == 3)
            #expect(try json(client.changes[2])["key"] == .object(["id": .number("2")]))
            #expect(try redis.get("\(f.prefix):user:1") == "cached")
        }
    }

    @Test func aStatementOfManyRowsIsPackedAndEveryRowActedOn() async throws {
        try await withFreshet { f, client, redis in
            let listen = try PGConnection.connect(f.databaseURL)
            try listen.execute("LISTEN freshet")
            try await f.sql("INSERT INTO users (org_id, name) SELECT g % 10, 'user ' || g FROM generate_series(1, 1000) g")
            try await eventually("1000 insert events") { client.changes.count == 1000 }
            // Every notification's rows, counted on the test's own LISTEN connection as they arrive.
            var notifications = 0
            var rows = 0
            try await eventually("1000 rows on the test's own LISTEN") {
                try listen.consumeInput()
                for notification in listen.drainNotifications() {
                    notifications += 1
                    if case .array(let packed)? = try JSONParser.parse(notification.payload).objectValue?["rows"] { rows += packed.count }
                }
                return rows >= 1000
            }
            #expect(notifications >= 1 && notifications <= 20, "1000 rows in \(notifications) notifications")

            for id in [1, 500, 1000] { try redis.run("SET", "\(f.prefix):user:\(id)", "stale") }
            for org in [0, 5, 105] { try redis.run("SET", "\(f.prefix):org:\(org):members", "stale") }
            // Every row's key template column moves: old and new rows stay paired, so both lists are invalidated.
            try await f.sql("UPDATE users SET org_id = org_id + 100, name = name || ' moved'")
            try await eventually("1000 update events") { client.changes.count == 2000 }
            for id in [1, 500, 1000] { #expect(try !redis.exists("\(f.prefix):user:\(id)")) }
            for org in [0, 5, 105] { #expect(try !redis.exists("\(f.prefix):org:\(org):members")) }
            #expect(try redis.get("\(f.prefix):user:500:card")?.contains("user 500 moved") == true)
            let moved = try json(client.changes[1999])
            #expect(moved["op"] == .string("update"))
            #expect(moved["redis"] == .array([
                .string("\(f.prefix):user:1000"), .string("\(f.prefix):user:1000:card"),
                .string("\(f.prefix):org:0:members"), .string("\(f.prefix):org:100:members"),
            ]) || moved["redis"] == .array([
                .string("\(f.prefix):user:1000"), .string("\(f.prefix):user:1000:card"),
                .string("\(f.prefix):org:100:members"), .string("\(f.prefix):org:0:members"),
            ]), "\(moved)")

            // In one statement, rows where only ignored columns changed send nothing; the others do.
            try await f.sql("UPDATE users SET last_seen_at = now(), name = CASE WHEN id = 7 THEN 'seven' ELSE name END")
            try await f.sql("DELETE FROM users WHERE id > 990")
            try await eventually("one update and ten deletes") { client.changes.count >= 2011 }
            #expect(client.changes.count == 2011)
            #expect(try json(client.changes[2000])["key"] == .object(["id": .number("7")]))
            #expect(try client.changes[2001...].allSatisfy { try json($0)["op"] == .string("delete") })
        }
    }

    /// The trigger's one-row path and its general path both send only the columns Freshet needs (`bio` and
    /// `last_seen_at` are in no template, `set` rule or `sse.columns`): a column never leaves the database for nothing.
    @Test func notificationsCarryOnlyTheColumnsFreshetNeeds() async throws {
        try await withFreshet { f, client, _ in
            let listen = try PGConnection.connect(f.databaseURL)
            try listen.execute("LISTEN freshet")
            try await f.sql("INSERT INTO users (org_id, name, email, bio) VALUES (1, 'Ann', 'a@x', 'secret bio')")
            try await f.sql("INSERT INTO users (org_id, name, email, bio) VALUES (2, 'Bob', 'b@x', 'secret bio'), (3, 'Cy', 'c@x', 'secret bio')")
            try await f.sql("UPDATE users SET name = 'Ann B', bio = 'secret bio 2' WHERE id = 1")
            try await f.sql("UPDATE users SET name = name || '!', bio = 'secret bio 3' WHERE id > 1")
            try await f.sql("DELETE FROM users WHERE id = 1")
            try await f.sql("DELETE FROM users WHERE id > 1")
            try await eventually("9 events") { client.changes.count == 9 }
            var payloads: [String] = []
            try await eventually("6 notifications on the test's own LISTEN") {
                try listen.consumeInput()
                payloads += listen.drainNotifications().map(\.payload)
                return payloads.count >= 6
            }
            #expect(payloads.count == 6, "one notification per statement")
            for payload in payloads {
                guard case .array(let rows)? = try JSONParser.parse(payload).objectValue?["rows"] else {
                    Issue.record("no rows: \(payload)")
                    continue
                }
                for row in rows {
                    for image in ["old", "new"] {
                        guard let columns = row.objectValue?[image]?.objectValue else { continue }
                        #expect(Set(columns.keys) == ["id", "org_id", "name", "email"], "\(payload)")
                    }
                }
            }
        }
    }

    @Test func deleteRemovesEveryKeyIncludingSetOnes() async throws {
        try await withFreshet { f, client, redis in
            try await f.sql("INSERT INTO users (org_id, name) VALUES (7, 'Ann')")
            try await eventually("insert event") { client.changes.count == 1 }
            #expect(try redis.exists("\(f.prefix):user:1:card"))
            try redis.run("SET", "\(f.prefix):user:1", "cached")
            try await f.sql("DELETE FROM users WHERE id = 1")
            try await eventually("delete event") { client.changes.count == 2 }
            #expect(try !redis.exists("\(f.prefix):user:1:card"))
            #expect(try !redis.exists("\(f.prefix):user:1"))
            let event = try json(client.changes[1])
            #expect(event["op"] == .string("delete"))
            #expect(event["row"] == nil)
            #expect(event["key"] == .object(["id": .number("1")]))
        }
    }

    @Test func truncateFlushesEveryKeyOfTheTemplates() async throws {
        try await withFreshet { f, client, redis in
            for i in 1...50 {
                try redis.run("SET", "\(f.prefix):user:\(i)", "x")
                try redis.run("SET", "\(f.prefix):org:\(i):members", "x")
            }
            try redis.run("SET", "\(f.prefix):other:1", "keep")
            try await f.sql("TRUNCATE users")
            try await eventually("truncate event") { client.changes.count == 1 }
            guard case .array(let left) = try redis.run("KEYS", "\(f.prefix):*") else { throw TestFailure("KEYS") }
            #expect(left == [.string(Array("\(f.prefix):other:1".utf8))])
            let event = try json(client.changes[0])
            #expect(event["op"] == .string("truncate"))
            #expect(event["key"] == .object([:]))
            #expect(event["topics"] == .array([.string("users")]))
        }
    }

    /// A one-row INSERT whose row JSON cannot hold (a text past jsonb's 256 MB string limit) takes the trigger's short
    /// path and fails inside it: the application's write still commits, and Freshet, told only that the table changed
    /// (`overflow`), invalidates every key of the table.
    @Test func aRowTooLargeForJSONStillCommitsAndInvalidatesTheTable() async throws {
        try await withFreshet { f, client, redis in
            try await f.sql("INSERT INTO users (org_id, name) VALUES (7, 'Ann')")
            try await eventually("insert event") { client.changes.count == 1 }
            try redis.run("SET", "\(f.prefix):user:1", "cached")
            try await f.sql("INSERT INTO users (org_id, name, bio) VALUES (8, 'Big', repeat('x', 270000000))")
            try await eventually("every key of the table invalidated") { try !redis.exists("\(f.prefix):user:1") }
            let url = f.databaseURL
            let rows = try await offThePool { try PGConnection.connect(url).execute("SELECT count(*) FROM users WHERE name = 'Big'") }
            #expect(rows.first?.first == "1")
        }
    }

    @Test func megabyteRowIsReadBackAndTheWriteSucceeds() async throws {
        try await withFreshet { f, client, redis in
            let big = String(repeating: "x", count: 1_000_000)
            try await f.sql("INSERT INTO users (org_id, name, email, bio) VALUES (7, 'Ann', 'a@x', '\(big)')")
            try await eventually("insert event") { client.changes.count == 1 }
            let card = try #require(try redis.get("\(f.prefix):user:1:card"))
            #expect(card.contains("a@x"))  // read back by key: the payload carried only id and org_id
            try await f.sql("UPDATE users SET email = 'b@x', bio = bio || 'y' WHERE id = 1")
            try await eventually("update event") { client.changes.count == 2 }
            #expect(try redis.get("\(f.prefix):user:1:card")?.contains("b@x") == true)
            // Oversized and then gone before the read-back: treated as deleted.
            try await f.sql("""
                BEGIN; UPDATE users SET bio = bio || 'z' WHERE id = 1; DELETE FROM users WHERE id = 1; COMMIT;
                """)
            try await eventually("update+delete events") { client.changes.count == 4 }
            #expect(try !redis.exists("\(f.prefix):user:1:card"))
        }
    }

    @Test func nullPlaceholderSkipsThatKeyOnly() async throws {
        try await withFreshet { f, client, redis in
            try redis.run("SET", "\(f.prefix):user:1", "stale")
            try await f.sql("INSERT INTO users (org_id, name) VALUES (NULL, 'Nobody')")
            try await eventually("insert event") { client.changes.count == 1 }
            #expect(try !redis.exists("\(f.prefix):user:1"))
            let event = try json(client.changes[0])
            #expect(event["redis"] == .array([.string("\(f.prefix):user:1"), .string("\(f.prefix):user:1:card")]))
        }
    }

    @Test func malformedNotificationsAreCountedAndSkipped() async throws {
        try await withFreshet { f, client, redis in
            try await f.sql("""
                SELECT pg_notify('freshet', 'not json');
                SELECT pg_notify('freshet', '{"v":1,"op":"insert","schema":"public","table":"nope","at":"x","new":{}}');
                SELECT pg_notify('freshet', '[1,2,3]');
                """)
            try await f.sql("INSERT INTO users (org_id, name) VALUES (1, 'after junk')")
            try await eventually("event after junk") { client.changes.count == 1 }
            #expect(f.app.stats.rejected == 3)
        }
    }

    @Test func unknownColumnRefusesToStart() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute(Self.schema)
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: """
                  - name: users
                    redis:
                      - key: "{prefix}:team:{team_id}"
                """)
            let error = await fixture.runToCompletion()
            let config = try #require(error as? ConfigError)
            #expect(config.problems.count == 1)
            #expect(config.problems[0].field == "tables[0].redis[0].key")
            #expect(config.problems[0].message.contains("\"team_id\""))
            #expect(config.problems[0].message.contains("users"))
        }
    }

    @Test func reconnectsAfterTheListenerIsTerminated() async throws {
        try await withFreshet { f, client, redis in
            let pid = try #require(f.app.listener.backendPID)
            let admin = try PGConnection.connect(f.databaseURL)
            try admin.execute("SELECT pg_terminate_backend(\(pid))")
            try await eventually("listener reconnected") {
                if let now = f.app.listener.backendPID { return now != pid }
                return false
            }
            try await eventually("ready again") { f.app.notReadyReasons.isEmpty }
            try redis.run("SET", "\(f.prefix):user:1", "stale")
            try await f.sql("INSERT INTO users (org_id, name) VALUES (7, 'after reconnect')")
            try await eventually("event after reconnect") { client.changes.count == 1 }
            #expect(try !redis.exists("\(f.prefix):user:1"))
        }
    }

    @Test func healthAndReadiness() async throws {
        try await withFreshet { f, _, _ in
            #expect(try await httpGet(port: f.port, path: "/healthz").status == 200)
            let ready = try await httpGet(port: f.port, path: "/readyz")
            #expect(ready.status == 200)
        }
    }
}
