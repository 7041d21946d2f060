import Foundation
import FreshetCore
import FreshetPostgres
import Testing

/// The inspector page (`GET /`) in a real headless Chromium, driven over WebDriver: a row changes in PostgreSQL and
/// the page shows it. On failure a screenshot is kept in `.test-output/`.
@Suite(.enabled(if: TestServers.enabled && (WebDriver.available || TestServers.isCI), "needs chromium-driver (scripts/test installs it)"))
struct InspectorBrowserTests {
    @Test func inspectorShowsALiveChange() async throws {
        try await TestServers.withDatabase { url in
            try PGConnection.connect(url).execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
            let fixture = try FreshetFixture(databaseURL: url, tablesYAML: """
                  - name: users
                    redis: [{key: "{prefix}:user:{id}"}]
                """)
            try await fixture.start()
            let browser = try await WebDriver()
            do {
                try await browser.open("http://127.0.0.1:\(fixture.port)/")
                try await eventually("page connected", timeout: 20) {
                    try await browser.script("return document.getElementById('state').textContent") == .string("open")
                }
                try await fixture.sql("INSERT INTO users VALUES (4242, 'Ada')")
                try await eventually("the page shows the change", timeout: 20) {
                    let text = try await browser.script("""
                        const row = document.querySelector('#events tr.event-row');
                        return row ? row.textContent : '';
                        """)
                    return text.stringValue?.contains("4242") == true && text.stringValue?.contains("public.users") == true
                }
                #expect(try await browser.script("return document.getElementById('c-insert').textContent") == .string("1"))
                try await saveScreenshot(browser, name: "inspector", always: ProcessInfo.processInfo.environment["FRESHET_SCREENSHOTS"] != nil)
            } catch {
                try? await saveScreenshot(browser, name: "inspector-failure", always: true)
                await browser.quit()
                await fixture.stop()
                throw error
            }
            await browser.quit()
            await fixture.stop()
        }
    }

    func saveScreenshot(_ browser: WebDriver, name: String, always: Bool) async throws {
        guard always else { return }
        let dir = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".test-output")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("\(name).png")
        try await browser.screenshot().write(to: file)
        print("screenshot: \(file.path)")
    }
}
