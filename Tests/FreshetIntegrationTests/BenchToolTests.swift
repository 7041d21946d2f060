import Foundation
import FreshetCore
import Testing

/// The benchmark tool itself (docs/benchmarks.md) keeps working: a short run against a real Freshet, PostgreSQL and
/// Redis, whose JSON says every change was invalidated and delivered once. Its figures are not checked here (a debug
/// build under the whole test suite's load); `freshet-bench` on a release build measures them.
@Suite(.enabled(if: TestServers.enabled, "needs DATABASE_URL and REDIS_URL (scripts/test)"))
struct BenchToolTests {
    @Test(arguments: ["notify", "replication"])
    func aQuickLatencyRunDeliversEveryChangeOnceAndPrintsJSON(source: String) async throws {
        try await TestServers.withDatabase { url in
            // Its own Redis database: the bench flushes the one it is given.
            let redis = try TestServers.require().redis
            let benchRedis = String(redis[..<(redis.lastIndex(of: "/") ?? redis.endIndex)]) + (source == "notify" ? "/9" : "/10")
            let run = try await CLIProcess.run(
                // Readers at normal priority: the whole suite runs alongside, and this checks delivery, not latency.
                ["--quick", "--runs", "1", "--scenarios", "latency", "--json", "--reader-nice", "0",
                 "--freshet", CLIProcess.binary.path, "--database-url", url, "--redis-url", benchRedis, "--source", source],
                executable: CLIProcess.benchBinary, timeout: 180
            )
            #expect(run.status == 0 || run.status == 3, "exit \(run.status): \(run.stderr.suffix(2000))")  // 3: a target not met
            let report = try JSONParser.parse(run.stdout)
            guard case .object(let top)? = Optional(report), case .array(let scenarios)? = top["scenarios"],
                  case .object(let latency)? = scenarios.first, case .object(let medians)? = latency["medians"] else {
                throw TestFailure("unexpected report: \(run.stdout.prefix(500))")
            }
            func value(_ name: String) -> Double? { medians[name].flatMap { if case .number(let n) = $0 { Double(n) } else { nil } } }
            #expect(value("committed") == 3000)
            #expect(value("keys_missed") == 0)
            #expect(value("sse_missed") == 0)
            #expect(value("sse_duplicated") == 0)
            #expect(value("resyncs") == 0)
            #expect((value("redis_p50_ms") ?? -1) >= 0)
            #expect(top["machine"] != nil)
        }
    }
}
