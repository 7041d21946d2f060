import Crypto
import Foundation
import FreshetCore
import FreshetPostgres
import Testing

/// `/events` over real HTTP streams: topics, resume, resync, heartbeats, auth, CORS, slow clients, shutdown.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct SSETests {
    static let tables = """
          - name: users
            redis:
              - key: "{prefix}:user:{id}"
            sse:
              columns: [id, name]
          - name: orders
            redis:
              - key: "{prefix}:order:{id}"
        """

    static let schema = """
        CREATE TABLE users (id int PRIMARY KEY, name text);
        CREATE TABLE orders (id int PRIMARY KEY, total int);
        """

    func withFreshet(http: String = "", heartbeat: Double = 1, _ body: (FreshetFixture) async throws -> Void) async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute(Self.schema)
            try await FreshetFixture(databaseURL: url, tablesYAML: Self.tables, http: http, heartbeat: heartbeat).running(body)
        }
    }

    func keys(_ client: SSEClient) throws -> [String] {
        try client.changes.map { message in
            let event = try json(message)
            guard case .object(let key)? = event["key"] else { return "" }
            return (event["table"]?.stringValue ?? "") + "/" + key.fields.map { $0.value.templateText ?? "" }.joined(separator: "/")
        }
    }

    @Test func filtersBySeveralTopicsAndWildcards() async throws {
        try await withFreshet { f in
            let mixed = try await f.subscribe("?topic=users/2&topic=orders")
            let wildcard = try await f.subscribe("?topic=users/*")
            let everything = try await f.subscribe()
            try await f.sql("INSERT INTO users VALUES (1, 'a'), (2, 'b'); INSERT INTO orders VALUES (9, 100); UPDATE users SET name = 'c' WHERE id = 1")
            try await eventually("all events") { everything.changes.count == 4 }
            try await eventually("filtered events") { mixed.changes.count == 2 && wildcard.changes.count == 3 }
            #expect(try keys(mixed) == ["users/2", "orders/9"])
            #expect(try keys(wildcard) == ["users/1", "users/2", "users/1"])
            // A truncate concerns every row: it reaches subscribers of any of the table's topics.
            try await f.sql("TRUNCATE users")
            try await eventually("truncate reaches users/* and users/2") {
                wildcard.changes.count == 4 && mixed.changes.count == 3 && everything.changes.count == 5
            }
            #expect(try json(mixed.changes[2])["op"] == .string("truncate"))
        }
    }

    @Test func streamHasRetryHintHeadersAndHeartbeats() async throws {
        try await withFreshet { f in
            let client = try await f.subscribe()
            #expect(client.status == 200)
            #expect(client.headers["content-type"]?.hasPrefix("text/event-stream") == true)
            #expect(client.headers["cache-control"] == "no-cache")
            #expect(client.headers["x-accel-buffering"] == "no")
            try await eventually("heartbeat comment", timeout: 5) { client.comments.contains("heartbeat") }
            #expect(client.rawBody.hasPrefix("retry: "))
        }
    }

    @Test func unknownQueryParameterIsABadRequest() async throws {
        try await withFreshet { f in
            let response = try await httpGet(port: f.port, path: "/events?topics=users")
            #expect(response.status == 400)
            #expect(response.body.contains("topics"))
        }
    }

    @Test func resumeWithLastEventIDLosesAndDoublesNothing() async throws {
        try await withFreshet { f in
            let first = try await f.subscribe("?topic=users/*")
            try await f.sql("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 5) g")
            try await eventually("five events") { first.changes.count == 5 }
            let lastSeen = try #require(first.changes[2].id)  // pretend the client saw only three
            first.disconnect()
            try await f.sql("INSERT INTO users SELECT g, 'u' || g FROM generate_series(6, 8) g; INSERT INTO orders VALUES (1, 1)")
            try await eventually("orders event published") { f.app.hub.lastEventID.sequence == 9 }
            let resumed = try await f.subscribe("?topic=users/*", headers: ["Last-Event-ID": lastSeen])
            try await eventually("replayed events") { resumed.changes.count == 5 }
            #expect(try keys(resumed) == ["users/4", "users/5", "users/6", "users/7", "users/8"])
            #expect(!resumed.messages.contains { $0.event == "resync" })
            try await f.sql("INSERT INTO users VALUES (9, 'live')")
            try await eventually("live event after replay") { resumed.changes.count == 6 }
            #expect(Set(resumed.changes.compactMap(\.id)).count == 6)
            // The query parameter works the same way, for EventSource polyfills.
            let polyfill = try await f.subscribe("?topic=users/*&lastEventId=\(lastSeen)")
            try await eventually("replay via query") { polyfill.changes.count == 6 }
        }
    }

    /// A resume's replay counts against `http.client_buffer` like live events: past it the client gets one resync
    /// instead of a replay that would hold more than its buffer.
    @Test func aReplayLargerThanTheClientBufferIsAResync() async throws {
        try await withFreshet(http: "  client_buffer: 2000") { f in
            try await f.sql("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 40) g")
            try await eventually("forty events") { f.app.hub.lastEventID.sequence == 40 }
            let epoch = f.app.hub.epoch
            let far = try await f.subscribe(headers: ["Last-Event-ID": "\(epoch)-1"])  // 39 events: more than 2000 bytes
            try await eventually("resync instead of the replay") { far.messages.contains { $0.event == "resync" } }
            #expect(far.changes.isEmpty)
            #expect(try json(far.messages.first { $0.event == "resync" }!)["reason"] == .string("missed events exceed http.client_buffer"))
            let near = try await f.subscribe(headers: ["Last-Event-ID": "\(epoch)-38"])  // two events fit
            try await eventually("the short replay") { near.changes.count == 2 }
            #expect(!near.messages.contains { $0.event == "resync" })
        }
    }

    @Test func tooOldOrForeignIDGetsOneResyncThenLiveEvents() async throws {
        try await withFreshet(http: "  replay: 3") { f in
            try await f.sql("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 6) g")
            try await eventually("six events") { f.app.hub.lastEventID.sequence == 6 }
            let epoch = f.app.hub.epoch
            for id in ["\(epoch)-1", "\(epoch - 1)-5", "garbage"] {
                let client = try await f.subscribe(headers: ["Last-Event-ID": id])
                try await eventually("resync for \(id)") { client.messages.contains { $0.event == "resync" } }
                let resync = try #require(client.messages.first { $0.event == "resync" })
                #expect(resync.id == "\(epoch)-6")
                #expect(try json(resync)["reason"] != nil)
                #expect(client.changes.isEmpty)
                client.disconnect()
            }
            let live = try await f.subscribe(headers: ["Last-Event-ID": "\(epoch)-4"])
            try await eventually("replay of the ring") { live.changes.count == 2 }
            #expect(!live.messages.contains { $0.event == "resync" })
        }
    }

    static func jwt(secret: String, claims: String) -> String {
        func b64(_ data: Data) -> String {
            data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let head = b64(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + b64(Data(claims.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Data(head.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return head + "." + b64(Data(mac))
    }

    @Test func authWithStaticTokensAndJWTTopicClaims() async throws {
        let http = """
              auth:
                tokens: [static-token-1]
                jwt: {secret: jwt-secret-1-of-at-least-32-bytes}
            """
        try await withFreshet(http: http) { f in
            let future = Int(Date().timeIntervalSince1970) + 600
            let past = Int(Date().timeIntervalSince1970) - 10
            let usersJWT = Self.jwt(secret: "jwt-secret-1-of-at-least-32-bytes", claims: #"{"topics":["users/*"],"exp":\#(future)}"#)
            let oneUser = Self.jwt(secret: "jwt-secret-1-of-at-least-32-bytes", claims: #"{"topics":["users/1"],"exp":\#(future)}"#)
            let expired = Self.jwt(secret: "jwt-secret-1-of-at-least-32-bytes", claims: #"{"topics":["users/*"],"exp":\#(past)}"#)
            let forged = Self.jwt(secret: "wrong-secret", claims: #"{"topics":["users/*"]}"#)
            let noTopics = Self.jwt(secret: "jwt-secret-1-of-at-least-32-bytes", claims: #"{"exp":\#(future)}"#)

            func status(_ query: String, _ headers: [String: String] = [:]) async throws -> Int {
                let client = try SSEClient(port: f.port, path: "/events" + query, headers: headers)
                try await eventually("status for \(query)") { client.status != nil }
                client.disconnect()
                return client.status!
            }
            #expect(try await status("") == 401)
            #expect(try await status("", ["Authorization": "Bearer nope"]) == 401)
            #expect(try await status("", ["Authorization": "Bearer static-token-1"]) == 200)
            #expect(try await status("?access_token=static-token-1&topic=orders") == 200)
            #expect(try await status("", ["Cookie": "a=b; freshet_token=static-token-1"]) == 200)
            #expect(try await status("?topic=users/7", ["Authorization": "Bearer \(usersJWT)"]) == 200)
            #expect(try await status("?topic=orders", ["Authorization": "Bearer \(usersJWT)"]) == 403)
            #expect(try await status("?topic=users/*", ["Authorization": "Bearer \(oneUser)"]) == 403)
            #expect(try await status("", ["Authorization": "Bearer \(expired)"]) == 401)
            #expect(try await status("", ["Authorization": "Bearer \(forged)"]) == 401)
            #expect(try await status("", ["Authorization": "Bearer \(noTopics)"]) == 403)
            // /healthz, /readyz, / and /freshet.js need no token.
            for path in ["/healthz", "/readyz", "/", "/freshet.js"] {
                #expect(try await httpGet(port: f.port, path: path).status == 200, "\(path)")
            }

            // No topic with a JWT: every topic the claim allows, and nothing else.
            let scoped = try await f.subscribe(headers: ["Authorization": "Bearer \(usersJWT)"])
            let all = try await f.subscribe("?access_token=static-token-1")
            try await f.sql("INSERT INTO orders VALUES (1, 1); INSERT INTO users VALUES (1, 'a')")
            try await eventually("events") { all.changes.count == 2 && scoped.changes.count == 1 }
            #expect(try keys(scoped) == ["users/1"])
        }
    }

    @Test func corsPreflightAndStreamHeaders() async throws {
        try await withFreshet(http: "  cors: {allowed_origins: [\"https://app.example\"]}") { f in
            let preflight = try await httpGet(port: f.port, path: "/events", headers: [
                "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            ], method: "OPTIONS")
            #expect(preflight.status == 204)
            #expect(preflight.headers["access-control-allow-origin"] == "https://app.example")
            #expect(preflight.headers["access-control-allow-headers"]?.lowercased().contains("authorization") == true)
            let stream = try await f.subscribe(headers: ["Origin": "https://app.example"])
            #expect(stream.headers["access-control-allow-origin"] == "https://app.example")
            let other = try await f.subscribe(headers: ["Origin": "https://evil.example"])
            #expect(other.headers["access-control-allow-origin"] == nil)
        }
    }

    @Test func aClientThatNeverReadsIsDroppedWhileOthersKeepReceiving() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: """
                  - name: users
                    redis: [{key: "{prefix}:user:{id}"}]
                    sse: {columns: [id, name]}
                """, http: "  client_buffer: 262144")
            try await fixture.start()
            let stuck = try SSEClient(port: fixture.port, path: "/events", read: false, receiveBuffer: 4096)
            try await eventually("stuck subscriber registered") { fixture.app.hub.subscriberCount == 1 }
            let reader = try SSEClient(port: fixture.port, path: "/events", keepRaw: false)
            try await eventually("reader registered") { fixture.app.hub.subscriberCount == 2 }
            // 100 batches of 50 rows of 3 KB (15 MB in all), each sent once the reader has the previous one: the
            // reader keeps up, the stuck client fills its socket and then its 256 KB budget.
            for batch in 0..<100 {
                let first = batch * 50 + 1
                try await fixture.sql("INSERT INTO users SELECT g, repeat('x', 3000) FROM generate_series(\(first), \(first + 49)) g")
                try await eventually("reader has batch \(batch) (has \(reader.changes.count))", timeout: 20) {
                    reader.changes.count == first + 49
                }
                if fixture.app.hub.droppedCount == 1 && batch >= 10 { break }
            }
            try await eventually("the stuck one was dropped") { fixture.app.hub.droppedCount == 1 }
            #expect(fixture.app.hub.subscriberCount == 1)
            #expect(!reader.messages.contains { $0.event == "resync" })
            let before = reader.changes.count
            try await fixture.sql("INSERT INTO users VALUES (0, 'after')")
            try await eventually("reader keeps receiving") { reader.changes.count == before + 1 }
            _ = stuck
            await fixture.stop()
        }
    }

    @Test func aClientThatDisconnectsIsReleasedAtOnce() async throws {
        // A 60 s heartbeat: no write would notice the departure; the half-close must.
        try await withFreshet(heartbeat: 60) { f in
            let client = try await f.subscribe()
            #expect(f.app.hub.subscriberCount == 1)
            client.disconnect()
            try await eventually("subscriber released", timeout: 5) { f.app.hub.subscriberCount == 0 }
        }
    }

    @Test func gracefulShutdownEndsEveryStream() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute(Self.schema)
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: Self.tables)
            try await fixture.start()
            let clients = [try await fixture.subscribe(), try await fixture.subscribe("?topic=users/*")]
            let raw = try RawHTTPConnection(port: fixture.port)
            raw.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            try await raw.waitFor("retry: 2000")
            let idle = try RawHTTPConnection(port: fixture.port)  // connected, no request yet (a browser's preconnect)
            let started = ContinuousClock.now
            await fixture.stop()
            #expect(ContinuousClock.now - started < .seconds(8))  // "within a few seconds", on a loaded 2-core CI machine
            try await eventually("streams closed") { clients.allSatisfy(\.closed) }
            try await raw.waitForClose()
            try await idle.waitForClose(timeout: 2)
            #expect(raw.text.hasSuffix("\r\n0\r\n\r\n"), "the chunked response ends with its last chunk")
        }
    }

    /// Freshet's own `/events` path takes a plain request whole or in pieces; anything else goes to the full HTTP
    /// server, which serves `/events` too: after another request on a keep-alive connection, and over HTTP/1.0.
    @Test func eventsIsServedFromAHeadInPiecesAfterAnotherRequestAndOverHTTP10() async throws {
        try await withFreshet { f in
            let keepAlive = try RawHTTPConnection(port: f.port)
            keepAlive.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try await keepAlive.waitFor(#"{"status":"ok"}"#)
            keepAlive.send("GET /events?topic=users/* HTTP/1.1\r\nHost: x\r\n\r\n")
            let pieces = try RawHTTPConnection(port: f.port)
            for byte in "GET /events?topic=users/* HTTP/1.1\r\nHost: x\r\n\r\n".utf8 {
                pieces.send([byte])
                try await Task.sleep(for: .milliseconds(2))
            }
            let old = try RawHTTPConnection(port: f.port)
            old.send("GET /events?topic=users/* HTTP/1.0\r\n\r\n")
            for connection in [keepAlive, pieces, old] { try await connection.waitFor("retry: 2000") }
            try await f.sql("INSERT INTO users VALUES (1, 'a')")
            for connection in [keepAlive, pieces, old] { try await connection.waitFor("event: change") }
            #expect(pieces.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(pieces.text.lowercased().contains("transfer-encoding: chunked"))
        }
    }
}
