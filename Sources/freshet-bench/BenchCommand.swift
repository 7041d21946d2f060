import ArgumentParser
import Foundation
import FreshetCore
import FreshetRedis
import FreshetSystem

/// `freshet-bench`: measures a real Freshet against a real PostgreSQL and Redis on this machine, next to the machine's
/// own limits (a bare LISTEN loop, pipelined UNLINK), and prints each target's median over several runs.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "freshet-bench",
        abstract: "Benchmark Freshet: throughput, bulk, latency and fan-out against the machine's own limits.",
        discussion: """
            Starts its own Freshet (--freshet) for every run, against DATABASE_URL and REDIS_URL. It drops and creates
            the table bench_items and runs FLUSHDB on the Redis database it is given: point it at scratch servers.
            """
    )

    @Option(help: "PostgreSQL URL (scratch database).")
    var databaseURL: String = ProcessInfo.processInfo.environment["DATABASE_URL"] ?? ""

    @Option(help: "Redis URL (scratch database: it is flushed).")
    var redisURL: String = ProcessInfo.processInfo.environment["REDIS_URL"] ?? ""

    @Option(help: "The freshet executable to measure.")
    var freshet: String = ".build/release/freshet"

    @Option(help: "Scenarios, comma-separated: \(Scenario.allCases.map(\.rawValue).joined(separator: ",")).")
    var scenarios: String = Scenario.allCases.map(\.rawValue).joined(separator: ",")

    @Option(help: "Runs per scenario; the table shows medians.")
    var runs: Int = 3

    @Option(help: "SSE subscribers during the throughput scenario.")
    var throughputSubscribers = 10

    @Option(help: "Nice value of the subscriber reader threads (they stand in for browsers on other machines).")
    var readerNice: Int32 = 10

    @Option(help: "How the measured Freshet captures changes: notify (triggers) or replication (a logical slot; needs wal_level=logical).")
    var source: String = "notify"

    @Flag(help: "Start a local Redis Cluster of 3 masters (Debian's redis-server, free loopback ports) and measure against it instead of REDIS_URL.")
    var redisCluster = false

    @Option(help: "Freshet processes in the latency and fan-out scenarios, subscribers spread over them (more than 1: http.relay: redis).")
    var processes = 1

    @Flag(help: "Smaller sizes and shorter runs (a smoke test of the tool, not a measurement).")
    var quick = false

    @Flag(help: "Print the results as JSON instead of a table.")
    var json = false

    mutating func run() throws {
        guard !databaseURL.isEmpty, !redisURL.isEmpty || redisCluster else {
            throw ValidationError("set DATABASE_URL and REDIS_URL (or --database-url, --redis-url) to scratch servers")
        }
        guard FileManager.default.isExecutableFile(atPath: freshet) else {
            throw ValidationError("no freshet executable at \(freshet); build it with `swift build -c release` or pass --freshet")
        }
        var chosen: [Scenario] = []
        for name in scenarios.split(separator: ",") {
            guard let scenario = Scenario(rawValue: String(name)) else {
                throw ValidationError("unknown scenario \"\(name)\"; known: \(Scenario.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            chosen.append(scenario)
        }
        let fileLimit = OpenFileLimit.raiseToHard().now  // 10,000 subscribers need 10,000 sockets; children inherit it
        SSESubscribers.readerNice.store(readerNice, ordering: .relaxed)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let quiet = json
        let log: (String) -> Void = { message in if !quiet { FileHandle.standardError.write(Data("· \(message)\n".utf8)) } }
        guard let captureSource = CaptureSource(rawValue: source) else { throw ValidationError("--source: notify or replication") }
        let topology: RedisTopology
        let nodes: [RedisEndpoint]
        let redisConfig: String
        var cluster: LocalRedisCluster?
        if redisCluster {
            let local = try LocalRedisCluster(directory: directory, log: log)
            cluster = local
            topology = .cluster(seeds: local.endpoints)
            nodes = local.endpoints
            redisConfig = "  cluster: [" + local.ports.map { "\"redis://127.0.0.1:\($0)\"" }.joined(separator: ", ") + "]"
        } else {
            let redis: RedisEndpoint
            do { redis = try RedisEndpoint(parsing: redisURL) } catch { throw ValidationError("--redis-url: \(error)") }
            topology = .standalone(redis)
            nodes = [redis]
            redisConfig = "  url: \"\(redisURL)\""
        }
        defer { cluster?.stop() }
        var env = BenchEnvironment(
            databaseURL: databaseURL, redis: topology, redisNodes: nodes, redisConfig: redisConfig, freshet: freshet,
            directory: directory, log: log
        )
        env.source = captureSource
        guard processes >= 1 else { throw ValidationError("--processes: 1 or more") }
        env.processes = processes
        var machine = MachineInfo.current(fileLimit: fileLimit)
        machine.processes = processes
        machine.redis = redisCluster ? "Redis Cluster, 3 masters, no replicas (started by the bench)" : "one Redis server"
        if !json { print(machine.banner) }

        var report = Report(machine: machine, runs: runs, quick: quick, scenarios: [])
        for scenario in chosen {
            var figures: [RunFigures] = []
            for run in 1...runs {
                env.log("\(scenario.rawValue): run \(run) of \(runs)")
                figures.append(try scenario.run(env, quick: quick, throughputSubscribers: throughputSubscribers))
            }
            let result = ScenarioResult(
                scenario: scenario, parameters: scenario.parameters(quick: quick, throughputSubscribers: throughputSubscribers),
                runs: figures, replication: captureSource == .replication
            )
            report.scenarios.append(result)
            if !json { print(result.table) }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.summary)
        }
        try? FileManager.default.removeItem(atPath: directory)
        if !report.allMet { throw ExitCode(3) }
    }
}
