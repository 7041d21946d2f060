import Foundation
import FreshetPostgres
import Glibc
import Testing

/// Held connections are bounded, over real sockets: a half-sent request is closed after `http.request_timeout`,
/// connections past `http.max_connections` get 503, and a subscription naming more than `http.max_topics` topics 400.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct ConnectionBoundsTests {
    /// `user:N` deleted on change.
    static let tables = FaultTests.tables

    func withFreshet(http: String, _ body: (FreshetFixture) async throws -> Void) async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: Self.tables, http: http, metrics: true)
            try await fixture.running(body)
        }
    }

    /// A connected socket that sent `bytes`.
    func rawConnection(port: Int, sending bytes: String = "") throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard TestServers.connectLoopback(fd, port: port) else {
            close(fd)
            throw TestFailure("connect to \(port) refused")
        }
        if !bytes.isEmpty { _ = bytes.withCString { send(fd, $0, strlen($0), 0) } }
        return fd
    }

    /// Whether the server closed `fd` (a read returns 0 or an error; waits at most 50 ms).
    func closedByServer(_ fd: Int32) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 50) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) <= 0
    }

    @Test func halfARequestIsClosedAfterTheRequestTimeout() async throws {
        try await withFreshet(http: "  request_timeout: 1") { f in
            let before = try await httpGet(port: f.port, path: "/metrics").body
            let started = ContinuousClock.now
            let fds = try (0..<20).map { _ in try rawConnection(port: f.port, sending: "GET /events HTTP/1.1\r\nHost: x\r\n") }
            defer { fds.forEach { close($0) } }
            try await eventually("every half-sent request closed", timeout: 5) { fds.allSatisfy(closedByServer) }
            let took = ContinuousClock.now - started
            #expect(took >= .milliseconds(900), "not before the timeout (\(took))")
            // A whole request on a new connection still works, and an SSE stream outlives the timeout.
            let client = try await f.subscribe()
            try await Task.sleep(for: .milliseconds(1500))
            #expect(!client.closed)
            #expect(try await httpGet(port: f.port, path: "/healthz").status == 200)
            let after = try await httpGet(port: f.port, path: "/metrics").body
            #expect(promDelta(before, after, #"freshet_http_connections_rejected_total{reason="request_timeout"}"#) >= 20)
        }
    }

    @Test func connectionsPastTheLimitGet503() async throws {
        try await withFreshet(http: "  max_connections: 5") { f in
            let before = try await httpGet(port: f.port, path: "/metrics").body
            // Five idle connections fill the limit.
            let fds = try (0..<5).map { _ in try rawConnection(port: f.port) }
            var status = 0
            var headers: [String: String] = [:]
            try await eventually("a sixth connection gets 503 (last: \(status))") {
                let response = try await httpGet(port: f.port, path: "/healthz")
                (status, headers) = (response.status, response.headers)
                return status == 503
            }
            #expect(headers["connection"] == "close")
            #expect(headers["retry-after"] == "5")
            fds.forEach { close($0) }
            try await eventually("200 once they are gone") { try await httpGet(port: f.port, path: "/healthz").status == 200 }
            let after = try await httpGet(port: f.port, path: "/metrics").body
            #expect(promDelta(before, after, #"freshet_http_connections_rejected_total{reason="max_connections"}"#) >= 1)
        }
    }

    @Test func moreTopicsThanTheLimitIsABadRequest() async throws {
        try await withFreshet(http: "  max_topics: 100") { f in
            let many = (1...101).map { "topic=users%2F\($0)" }.joined(separator: "&")
            let refused = try await httpGet(port: f.port, path: "/events?" + many)
            #expect(refused.status == 400)
            #expect(refused.body.contains("http.max_topics"))
            let client = try SSEClient(port: f.port, path: "/events?" + (1...100).map { "topic=users%2F\($0)" }.joined(separator: "&"))
            try await eventually("100 topics accepted") { client.status != nil }
            #expect(client.status == 200)
        }
    }
}
