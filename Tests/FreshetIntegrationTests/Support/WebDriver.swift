import Foundation
import FreshetCore
import Testing

/// A minimal W3C WebDriver client for chromedriver: start a headless Chromium, open a page, run scripts, screenshot.
final class WebDriver: @unchecked Sendable {
    let driver = Process()
    let port: Int
    private(set) var session = ""

    static var chromedriver: String? {
        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var available: Bool { chromedriver != nil }

    /// - Parameter arguments: more Chromium flags (e.g. `--ignore-certificate-errors` for a test certificate).
    init(arguments: [String] = []) async throws {
        guard let path = Self.chromedriver else { throw TestFailure("chromedriver is not installed (scripts/test installs chromium-driver)") }
        port = TestServers.freePort()
        driver.executableURL = URL(fileURLWithPath: path)
        driver.arguments = ["--port=\(port)"]
        driver.standardOutput = FileHandle.nullDevice
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        try await eventually("chromedriver up", timeout: 15) {
            (try? await self.call("GET", "/status")) != nil
        }
        let response = try await call("POST", "/session", [
            "capabilities": .object(["alwaysMatch": .object([
                "goog:chromeOptions": .object([
                    "args": .array((["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"] + arguments)
                        .map { .string($0) }),
                ]),
            ])]),
        ])
        guard case .object(let value)? = response["value"], let id = value["sessionId"]?.stringValue else {
            throw TestFailure("no WebDriver session: \(response)")
        }
        session = id
    }

    func quit() async {
        _ = try? await call("DELETE", "/session/\(session)")
        driver.kill()
    }

    func open(_ url: String) async throws {
        _ = try await call("POST", "/session/\(session)/url", ["url": .string(url)])
    }

    /// Runs JavaScript in the page and returns its result.
    func script(_ source: String) async throws -> JSONValue {
        let response = try await call("POST", "/session/\(session)/execute/sync", ["script": .string(source), "args": .array([])])
        return response["value"] ?? .null
    }

    /// A PNG of the page.
    func screenshot() async throws -> Data {
        let response = try await call("GET", "/session/\(session)/screenshot")
        guard let base64 = response["value"]?.stringValue, let data = Data(base64Encoded: base64) else {
            throw TestFailure("no screenshot")
        }
        return data
    }

    @discardableResult
    func call(_ method: String, _ path: String, _ body: JSONObject? = nil) async throws -> JSONObject {
        let reply = try await httpGet(
            port: port, path: path, method: method, body: body.map { Array(JSONValue.object($0).jsonText.utf8) } ?? (method == "POST" ? Array("{}".utf8) : nil),
            timeout: 30
        )
        guard case .object(let object) = try JSONParser.parse(reply.body) else { throw TestFailure("bad WebDriver reply: \(reply.status) \(reply.body)") }
        if case .object(let value)? = object["value"], let error = value["error"]?.stringValue {
            throw TestFailure("WebDriver \(method) \(path): \(error): \(value["message"]?.stringValue ?? "")")
        }
        return object
    }
}
