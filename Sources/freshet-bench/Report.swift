import Foundation
import Glibc

/// The benchmark's scenarios, with their sizes and the targets of issue 6.
enum Scenario: String, CaseIterable, Codable {
    case throughput, bulk, latency, fanout
    case fanout10k = "fanout-10k"

    func parameters(quick: Bool, throughputSubscribers: Int = 10) -> String {
        switch self {
        case .throughput: return "flat out, 4 writer connections, \(quick ? 3 : 10) s, \(throughputSubscribers) subscribers"
        case .bulk: return quick ? "one UPDATE of 20,000 rows, 1 subscriber" : "one UPDATE of 200,000 rows, 1 subscriber"
        case .latency: return quick ? "1,000 changes/s for 3 s, 20 subscribers" : "1,000 changes/s for 10 s, 100 subscribers"
        case .fanout: return quick ? "50 changes/s for 3 s, 1,000 subscribers" : "50 changes/s for 20 s, 1,000 subscribers"
        case .fanout10k: return quick ? "10 changes/s for 3 s, 2,000 subscribers" : "10 changes/s for 20 s, 10,000 subscribers"
        }
    }

    func run(_ env: BenchEnvironment, quick: Bool, throughputSubscribers: Int = 10) throws -> RunFigures {
        switch self {
        case .throughput:
            return try Scenarios.throughput(env, duration: quick ? 3 : 10, connections: 4, subscribers: throughputSubscribers)
        case .bulk:
            return try Scenarios.bulk(env, rows: quick ? 20_000 : 200_000)
        case .latency:
            return try Scenarios.delivery(env, subscribers: quick ? 20 : 100, rate: 1_000, duration: quick ? 3 : 10, connections: 2)
        case .fanout:
            return try Scenarios.delivery(env, subscribers: 1_000, rate: 50, duration: quick ? 3 : 20, connections: 1, bare: true)
        case .fanout10k:
            return try Scenarios.delivery(env, subscribers: quick ? 2_000 : 10_000, rate: 10, duration: quick ? 3 : 20, connections: 1, bare: true)
        }
    }

    /// The targets: metric, comparison, bound (issue 6 for the notify source, issue 11 for the replication source).
    func targets(replication: Bool) -> [Target] {
        if replication {
            switch self {
            case .throughput:
                return [.init("ratio_to_ceiling", .atLeast, 0.90), .init("missed", .atMost, 0), .init("duplicated", .atMost, 0)]
            case .bulk:
                return [.init("keys_gone_after_commit_s", .atMost, 3), .init("keys_missed", .atMost, 0)]
            case .latency:
                return [.init("redis_p99_ms", .atMost, 5), .init("sse_p99_ms", .atMost, 10), .init("keys_missed", .atMost, 0),
                        .init("sse_missed", .atMost, 0), .init("sse_duplicated", .atMost, 0)]
            case .fanout, .fanout10k:
                break
            }
        }
        switch self {
        case .throughput:
            return [.init("ratio_to_bare", .atLeast, 0.95), .init("missed", .atMost, 0), .init("duplicated", .atMost, 0),
                    .init("cpu_core_share_per_10k_per_s", .atMost, 0.15)]
        case .bulk:
            return [.init("changes_per_s", .atLeast, 100_000), .init("keys_gone_after_commit_s", .atMost, 5), .init("keys_missed", .atMost, 0)]
        case .latency:
            return [.init("redis_p99_ms", .atMost, 2), .init("sse_p99_ms", .atMost, 5), .init("keys_missed", .atMost, 0),
                    .init("sse_missed", .atMost, 0), .init("sse_duplicated", .atMost, 0),
                    .init("start_to_ready_s", .atMost, 1), .init("idle_rss_mb", .atMost, 30)]
        case .fanout:
            return [.init("sse_p99_ms", .atMost, 10), .init("redis_p99_ms", .atMost, 2), .init("keys_missed", .atMost, 0),
                    .init("sse_missed", .atMost, 0), .init("sse_duplicated", .atMost, 0),
                    .init("cpu_us_per_delivery_to_bare", .atMost, 1.5)]
        case .fanout10k:
            return [.init("sse_missed", .atMost, 0), .init("sse_p99_ms", .atMost, 100), .init("peak_rss_mb", .atMost, 150),
                    .init("sse_duplicated", .atMost, 0)]
        }
    }
}

/// A bound a metric's median must meet.
struct Target: Codable {
    enum Comparison: String, Codable { case atLeast = "≥", atMost = "≤" }
    var metric: String
    var comparison: Comparison
    var bound: Double

    init(_ metric: String, _ comparison: Comparison, _ bound: Double) {
        self.metric = metric
        self.comparison = comparison
        self.bound = bound
    }

    func met(by value: Double) -> Bool {
        guard !value.isNaN else { return false }
        return comparison == .atLeast ? value >= bound : value <= bound
    }
}

/// One scenario's runs, medians and target verdicts.
struct ScenarioResult: Codable {
    var scenario: Scenario
    var parameters: String
    var runs: [RunFigures]
    var medians: [String: Double]
    var targets: [TargetResult]

    struct TargetResult: Codable {
        var target: Target
        var median: Double
        var met: Bool
    }

    init(scenario: Scenario, parameters: String, runs: [RunFigures], replication: Bool = false) {
        self.scenario = scenario
        self.parameters = parameters
        self.runs = runs
        var medians: [String: Double] = [:]
        for key in Set(runs.flatMap(\.keys)) { medians[key] = median(runs.compactMap { $0[key] }) }
        self.medians = medians
        targets = scenario.targets(replication: replication).map { target in
            let value = medians[target.metric] ?? .nan
            return TargetResult(target: target, median: value, met: target.met(by: value))
        }
    }

    var table: String {
        let targetByMetric = Dictionary(targets.map { ($0.target.metric, $0) }, uniquingKeysWith: { a, _ in a })
        var lines = ["", "## \(scenario.rawValue) — \(parameters) (median of \(runs.count))", "",
                     "| metric | median | runs | target |", "|---|---:|---|---|"]
        for key in medians.keys.sorted() {
            let values = runs.compactMap { $0[key] }.map(format).joined(separator: " / ")
            var verdict = ""
            if let t = targetByMetric[key] {
                verdict = "\(t.target.comparison.rawValue) \(format(t.target.bound)) \(t.met ? "met" : "NOT MET")"
            }
            lines.append("| \(key) | \(format(medians[key]!)) | \(values) | \(verdict) |")
        }
        return lines.joined(separator: "\n")
    }
}

func format(_ value: Double) -> String {
    if value.isNaN { return "–" }
    if value == value.rounded() && abs(value) < 1e9 { return String(Int(value)) }
    if abs(value) >= 100 { return String(format: "%.0f", value) }
    if abs(value) >= 1 { return String(format: "%.2f", value) }
    return String(format: "%.3f", value)
}

/// Where the figures were taken: everything shares this one machine.
struct MachineInfo: Codable {
    var cores: Int
    var cpu: String
    var memoryGB: Double
    var kernel: String
    var fileLimit: Int
    var note: String
    /// What Freshet writes to: one Redis server or a cluster.
    var redis: String = "one Redis server"
    /// Freshet processes in the latency and fan-out scenarios (`--processes`; more than one relay through Redis).
    var processes: Int = 1

    static func current(fileLimit: Int) -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last?
            .trimmingCharacters(in: .whitespaces) ?? "unknown"
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return MachineInfo(
            cores: sysconf(Int32(_SC_NPROCESSORS_ONLN)), cpu: model,
            memoryGB: Double(sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE))) / 1_073_741_824,
            kernel: release, fileLimit: fileLimit,
            note: "one machine: the writer, PostgreSQL, Redis, Freshet and the SSE subscribers share these cores"
        )
    }

    var banner: String {
        "freshet-bench on \(cores) cores (\(cpu)), \(String(format: "%.0f", memoryGB)) GiB, Linux \(kernel), open files \(fileLimit)\n\(note)\nRedis: \(redis)" + (processes > 1 ? "\nlatency and fan-out: \(processes) Freshet processes (http.relay: redis), subscribers spread over them" : "")
    }
}

/// Everything one invocation measured.
struct Report: Codable {
    var machine: MachineInfo
    var runs: Int
    var quick: Bool
    var scenarios: [ScenarioResult]

    var allMet: Bool { scenarios.allSatisfy { $0.targets.allSatisfy(\.met) } }

    var summary: String {
        var lines = ["", "## targets", "", "| scenario | metric | median | target | |", "|---|---|---:|---|---|"]
        for s in scenarios {
            for t in s.targets {
                lines.append("| \(s.scenario.rawValue) | \(t.target.metric) | \(format(t.median)) | \(t.target.comparison.rawValue) \(format(t.target.bound)) | \(t.met ? "met" : "NOT MET") |")
            }
        }
        return lines.joined(separator: "\n")
    }
}
