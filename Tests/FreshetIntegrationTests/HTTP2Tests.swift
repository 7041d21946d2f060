import Foundation
import FreshetCore
import FreshetPostgres
import Testing

/// `http.tls`: HTTPS serving HTTP/2 (ALPN h2) and HTTP/1.1, with a certificate made by the test; SSE works the same
/// on both, and a browser opens more than six EventSources to one origin over h2 (over HTTP/1.1 the 7th would stall).
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct HTTP2Tests {
    static let tables = """
          - name: users
            redis:
              - key: "{prefix}:user:{id}"
            sse:
              columns: [id, name]
        """

    func withHTTPS(_ body: (FreshetFixture, URL) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-https-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try await makeTestCertificates(in: dir)
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a')")
            let http = """
                  tls:
                    cert: \(dir.path)/server.pem
                    key: \(dir.path)/server.key
                """
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: Self.tables, http: http)
            try await fixture.launch()
            do {
                try await eventually("ready over HTTPS") {
                    let r = try await shell("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "\(dir.path)/ca.pem", "https://127.0.0.1:\(fixture.port)/readyz"])
                    return r.output == "200"
                }
                try await body(fixture, dir)
            } catch {
                await fixture.stop()
                throw error
            }
            await fixture.stop()
        }
    }

    @Test func httpsNegotiatesHTTP2AndStillServesHTTP1() async throws {
        try await withHTTPS { f, dir in
            let base = "https://127.0.0.1:\(f.port)"
            let h2 = try await shell("curl", ["-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--http2", "--cacert", "\(dir.path)/ca.pem", "\(base)/healthz"])
            #expect(h2.output == "2 200")
            let h1 = try await shell("curl", ["-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--http1.1", "--cacert", "\(dir.path)/ca.pem", "\(base)/healthz"])
            #expect(h1.output == "1.1 200")
            // Verified by a client that does not trust the test CA: refused.
            let untrusted = try await shell("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(base)/healthz"])
            #expect(untrusted.status != 0)
            // Plain HTTP on the TLS port is not served.
            #expect(try await httpGet(port: f.port, path: "/healthz", timeout: 2).status != 200)
        }
    }

    @Test func twelveEventSourcesOverOneHTTP2ConnectionAllReceiveTheChange() async throws {
        try await withHTTPS { f, dir in
            // curl multiplexes parallel transfers to one origin over one HTTP/2 connection.
            var arguments = ["--http2", "--parallel", "--parallel-immediate", "--parallel-max", "20", "-sN", "--max-time", "8", "--cacert", "\(dir.path)/ca.pem"]
            for i in 0..<12 { arguments += ["-o", "\(dir.path)/stream-\(i).txt", "https://127.0.0.1:\(f.port)/events"] }
            let streams = Task { try await shell("curl", arguments) }
            try await eventually("12 subscribers") { f.app.hub.subscriberCount == 12 }
            try await f.sql("UPDATE users SET name = 'over-h2' WHERE id = 1")
            try await eventually("every stream got the change") {
                (0..<12).allSatisfy { i in
                    ((try? String(contentsOfFile: "\(dir.path)/stream-\(i).txt", encoding: .utf8)) ?? "").contains("over-h2")
                }
            }
            streams.cancel()
        }
    }

    @Test(.enabled(if: WebDriver.available || TestServers.isCI, "needs chromium-driver"))
    func aBrowserHoldsTenEventSourcesToOneOriginOverHTTP2() async throws {
        try await withHTTPS { f, _ in
            let browser = try await WebDriver(arguments: ["--ignore-certificate-errors"])
            do {
                try await browser.open("https://127.0.0.1:\(f.port)/")
                _ = try await browser.script("""
                    window.got = [];
                    for (let i = 0; i < 10; i++) {
                      got.push(0);
                      const source = new EventSource('/events?topic=users');
                      source.addEventListener('change', () => { got[i] += 1; });
                    }
                    return true;
                    """)
                try await eventually("10 subscribers from one page", timeout: 20) { f.app.hub.subscriberCount >= 10 }
                let protocolName = try await browser.script("return performance.getEntriesByType('navigation')[0].nextHopProtocol")
                #expect(protocolName == .string("h2"))
                try await f.sql("UPDATE users SET name = 'browser' WHERE id = 1")
                try await eventually("all ten EventSources got the change", timeout: 20) {
                    try await browser.script("return window.got.every(n => n >= 1)") == .bool(true)
                }
            } catch {
                await browser.quit()
                throw error
            }
            await browser.quit()
        }
    }
}
