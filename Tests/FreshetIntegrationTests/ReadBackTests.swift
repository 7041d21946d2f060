import Foundation
import FreshetCore
import FreshetPostgres
import Testing

/// An oversized row whose read-back fails (an error, not "row gone"): its keys are deleted, not rewritten, and the
/// event keeps its op with `incomplete: true`; a live row is never reported deleted.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct ReadBackTests {
    @Test func aReadBackThatFailsKeepsTheOpAndDeletesTheKeys() async throws {
        let role = "freshet_rb_" + TestServers.uniquePrefix()
        let admin = try PGConnection.connect(try TestServers.require().database)
        try admin.execute("CREATE ROLE \(role) LOGIN")
        defer { _ = try? admin.execute("DROP ROLE IF EXISTS \(role)") }
        try await TestServers.withDatabase { url in
            // The table belongs to Freshet's role (so it may install triggers); the application writes as postgres.
            try PGConnection.connect(url).execute("""
                CREATE TABLE users (id int PRIMARY KEY, name text, bio text);
                INSERT INTO users VALUES (1, 'a', ''), (2, 'b', '');
                ALTER TABLE users OWNER TO \(role);
                ALTER DATABASE \(url.split(separator: "/").last!) OWNER TO \(role);
                """)
            let asRole = url.replacingOccurrences(of: "postgres@", with: "\(role)@")
            let tables = """
                  - name: users
                    redis:
                      - key: "{prefix}:name:{id}"
                        action: set
                        columns: [name]
                """
            try await FreshetFixture(databaseURL: asRole, tablesYAML: tables).running { f in
                let redis = try TestRedis().connection
                for id in 1...2 { _ = try redis.command(["SET", "\(f.prefix):name:\(id)", "old"]) }
                let client = try await f.subscribe()
                // Freshet's role may no longer read the table: the read-back fails (the trigger runs as the writer).
                try PGConnection.connect(asRole).execute("REVOKE SELECT ON users FROM \(role)")
                try PGConnection.connect(url).execute("UPDATE users SET name = repeat('x', 20000) WHERE id = 1")
                try await eventually("the event") { client.changes.count == 1 }
                let event = try json(client.changes[0])
                #expect(event["op"] == .string("update"))
                #expect(event["incomplete"] == .bool(true))
                #expect(event["row"] == nil)
                #expect(event["key"] == .object(["id": .number("1")]))
                #expect(try redis.command(["EXISTS", "\(f.prefix):name:1"]) == .integer(0))  // deleted, not left "old"
                #expect(try redis.command(["GET", "\(f.prefix):name:2"]).text == "old")  // untouched
            }
        }
    }
}
