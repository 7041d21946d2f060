import Foundation
import FreshetCore
import FreshetPostgres
import FreshetRedis
import FreshetSystem
import Glibc
import Logging

/// What every scenario needs: where the servers are, which Freshet to start, a scratch directory.
struct BenchEnvironment {
    var databaseURL: String
    /// Where the measured Freshet writes: one server (REDIS_URL) or the local cluster (`--redis-cluster`).
    var redis: RedisTopology
    /// The servers to watch and flush: the standalone server, or every master of the cluster.
    var redisNodes: [RedisEndpoint]
    /// The `redis:` lines of Freshet's configuration.
    var redisConfig: String
    var freshet: String
    var directory: String
    var log: (String) -> Void
    /// How the measured Freshet captures changes (`--source`).
    var source: CaptureSource = .notify
    /// Freshet processes in the delivery scenarios (`--processes`); more than one run with `http.relay: redis`.
    var processes = 1

    var replication: Bool { source == .replication }
    static let slot = "freshet_bench"

    static let channel = "freshet_bench"
    static let topic = "bench_items"

    func config(port: Int, relay: Bool = false) -> String {
        """
        postgres:
          url: "\(databaseURL)"
          channel: \(Self.channel)
          source: \(source.rawValue)
          replication: {slot: \(Self.slot), publication: \(Self.slot)}
        redis:
        \(redisConfig)
        http:
          listen: 127.0.0.1:\(port)
          relay: \(relay ? "redis" : "none")
        log:
          level: warning
        tables:
          - name: bench_items
            redis:
              - key: "bench:{id}"
            sse:
              columns: [id, seq]

        """
    }

    /// Starts a Freshet on a free port with the bench's config; it installs its triggers on `bench_items`.
    func startFreshet() throws -> FreshetProcess {
        let port = LoopbackSocket.freePort()
        return try FreshetProcess(executable: freshet, config: config(port: port), port: port, directory: directory)
    }

    /// `processes` Freshets; with more than one, `http.relay: redis` and the first one started is the writer (each
    /// waited for until ready, so the election is decided in that order).
    func startFreshets() throws -> [FreshetProcess] {
        guard processes > 1 else { return [try startFreshet()] }
        var started: [FreshetProcess] = []
        do {
            for i in 0..<processes {
                let port = LoopbackSocket.freePort()
                started.append(try FreshetProcess(
                    executable: freshet, config: config(port: port, relay: true), port: port, directory: directory, name: "freshet-\(i)"
                ))
            }
        } catch {
            started.forEach { $0.stop() }
            throw error
        }
        return started
    }

    /// Installs the triggers without starting Freshet (`freshet triggers install`), for the bare-listener ceiling.
    func installTriggers() throws {
        let path = directory + "/freshet-bench.yml"
        try config(port: 1).write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: freshet)
        process.arguments = ["triggers", "install", "--config", path]
        var environment = ProcessInfo.processInfo.environment  // the config's URLs, not the caller's
        environment.removeValue(forKey: "DATABASE_URL")
        environment.removeValue(forKey: "REDIS_URL")
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("freshet triggers install exited \(process.terminationStatus)") }
    }

    /// Stops a Freshet; in replication mode drops its slot too, so that the next run starts from now (a slot left
    /// behind would replay the other phases' writes and hold back WAL).
    func stop(_ freshet: FreshetProcess) {
        freshet.stop()
        if replication { dropSlot() }
    }

    func dropSlot() {
        guard let pg = try? PGConnection.connect(databaseURL, applicationName: "freshet-bench") else { return }
        for _ in 0..<100 {
            guard let row = try? pg.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", parameters: [Self.slot]).first else { return }
            if row[0] == "f" {
                _ = try? pg.query("SELECT pg_drop_replication_slot($1)", parameters: [Self.slot])
                return
            }
            usleep(100_000)
        }
    }

    func flushRedis() throws {
        for node in redisNodes {
            let connection = try RedisConnection.connect(node, timeout: 10)
            _ = try connection.command(["FLUSHDB"])
        }
    }

    /// A client for the bench's own reads and writes (routed by slot on a cluster).
    func redisTarget() -> RedisTarget {
        makeRedisTarget(redis, tls: nil, timeout: 30, logger: Logger(label: "freshet-bench"))
    }
}

/// One run's figures, by metric name.
typealias RunFigures = [String: Double]

/// The scenarios; each returns one run's figures.
enum Scenarios {
    // MARK: throughput

    /// Flat-out single-row writes for `duration` seconds: first with only a bare LISTEN loop (the database's limit),
    /// then with Freshet and `subscribers` SSE subscribers. Nothing may be missed or doubled.
    static func throughput(_ env: BenchEnvironment, duration: Double, connections: Int, subscribers: Int) throws -> RunFigures {
        let rows = 10_000
        env.dropSlot()
        try BenchTable.create(conninfo: env.databaseURL, rows: rows)  // a new table: no trigger
        env.log("throughput: the ceiling, no Freshet and no trigger, \(connections) writer connections, \(duration)s")
        let ceiling = try WriteLoad(conninfo: env.databaseURL, connections: connections, rate: nil, changes: 5_000_000,
                                    duration: duration, rows: rows).run()
        var bareLoad = ceiling
        var bareReceived = ceiling.committed
        if !env.replication {
            try env.installTriggers()
            env.log("throughput: bare LISTEN with the triggers, \(connections) writer connections, \(duration)s")
            let bare = try BareListener(conninfo: env.databaseURL, channel: BenchEnvironment.channel)
            bareLoad = try WriteLoad(conninfo: env.databaseURL, connections: connections, rate: nil, changes: 5_000_000,
                                     duration: duration, rows: rows).run()
            bare.finish(expecting: bareLoad.committed, timeout: 60)
            bareReceived = bare.received.load(ordering: .relaxed)
        }

        try env.flushRedis()
        let freshet = try env.startFreshet()
        defer { env.stop(freshet) }
        let capacity = bareLoad.committed * 2 + 10_000
        let subs = try SSESubscribers(port: freshet.port, count: subscribers, expectedChanges: capacity, topic: BenchEnvironment.topic)
        defer { subs.close() }
        env.log("throughput: with Freshet and \(subscribers) subscribers")
        let cpuBefore = freshet.cpuSeconds
        let start = monotonicNanos()
        let load = try WriteLoad(conninfo: env.databaseURL, connections: connections, rate: nil, changes: capacity,
                                 duration: duration, rows: rows).run()
        subs.waitForAll(load.committed, timeout: 60)
        let elapsed = Double(monotonicNanos() - start) / 1e9
        let cpu = freshet.cpuSeconds - cpuBefore
        var delivered = 0
        for table in subs.receipts { delivered += table.filled }
        let coreShare = cpu / elapsed
        return [
            "ceiling_writes_per_s": ceiling.changesPerSecond,
            "ratio_to_ceiling": load.changesPerSecond / ceiling.changesPerSecond,
            "bare_writes_per_s": bareLoad.changesPerSecond,
            "bare_listener_missed": Double(bareLoad.committed - bareReceived),
            "writes_per_s": load.changesPerSecond,
            "ratio_to_bare": load.changesPerSecond / bareLoad.changesPerSecond,
            "missed": Double(load.committed * subscribers - delivered),
            "duplicated": Double(subs.duplicates),
            "resyncs": Double(subs.resyncs.load(ordering: .relaxed)),
            "cpu_core_share": coreShare,
            "cpu_core_share_per_10k_per_s": coreShare / (load.changesPerSecond / 10_000),
            "peak_rss_mb": freshet.peakRSSMB,
            "start_to_ready_s": freshet.startToReady,
        ]
    }

    // MARK: bulk

    /// One transaction updating `rows` rows: the bare listener's time to see every notification, Redis's own UNLINK
    /// rate, then Freshet: commit → every key gone and every event written.
    static func bulk(_ env: BenchEnvironment, rows: Int) throws -> RunFigures {
        env.dropSlot()
        try BenchTable.create(conninfo: env.databaseURL, rows: rows)
        if !env.replication { try env.installTriggers() }
        env.log("bulk: \(env.replication ? "the UPDATE alone, no trigger" : "bare LISTEN ceiling"), one UPDATE of \(rows) rows")
        let bare = env.replication ? nil : try BareListener(conninfo: env.databaseURL, channel: BenchEnvironment.channel)
        let bareTimes = try WriteLoad.bulk(conninfo: env.databaseURL, rows: rows)
        bare?.finish(expecting: rows, timeout: 120)
        let bareLast = bare?.lastAt.load(ordering: .relaxed) ?? bareTimes.committed
        let bareReceived = bare?.received.load(ordering: .relaxed) ?? rows

        try env.flushRedis()
        env.log("bulk: Redis ceiling, pipelined UNLINK of \(rows) keys")
        let unlinkRate = try RedisCeiling.unlinkRate(env.redisTarget(), keys: rows)

        try BenchTable.create(conninfo: env.databaseURL, rows: rows)
        try env.flushRedis()
        let freshet = try env.startFreshet()
        defer { env.stop(freshet) }
        try RedisCeiling.setKeys(env.redisTarget(), count: rows)
        let watcher = try KeyWatcher(endpoints: env.redisNodes, keys: rows)
        let subs = try SSESubscribers(port: freshet.port, count: 1, expectedChanges: rows, topic: BenchEnvironment.topic)
        defer { subs.close() }
        let rssBefore = freshet.rssMB
        env.log("bulk: with Freshet, one UPDATE of \(rows) rows")
        let times = try WriteLoad.bulk(conninfo: env.databaseURL, rows: rows)
        try watcher.finish(expecting: rows, timeout: 120)
        subs.waitForAll(rows, timeout: 120)
        let goneAll = watcher.gone.filled
        let lastGone = watcher.gone.latest
        // Events written: the subscriber's last event, or its resync when it fell behind (200,000 events are more
        // than one browser's budget, by design).
        let lastEvent = max(subs.receipts[0].latest, subs.lastResyncAt.load(ordering: .relaxed))
        let end = max(lastGone, lastEvent)
        func rate(_ from: UInt64, _ to: UInt64) -> Double { Double(rows) / (Double(to - from) / 1e9) }
        return [
            "bare_commit_s": Double(bareTimes.committed - bareTimes.start) / 1e9,
            "bare_all_notified_after_commit_s": Double(Int64(bareLast) - Int64(bareTimes.committed)) / 1e9,
            "bare_changes_per_s_incl_write": Double(bareReceived) / (Double(bareLast - bareTimes.start) / 1e9),
            "redis_unlink_per_s": unlinkRate,
            "commit_s": Double(times.committed - times.start) / 1e9,
            "keys_gone_after_commit_s": Double(Int64(lastGone) - Int64(times.committed)) / 1e9,
            "events_after_commit_s": Double(Int64(lastEvent) - Int64(times.committed)) / 1e9,
            "changes_per_s": rate(times.committed, end),
            "changes_per_s_incl_write": rate(times.start, end),
            "ratio_to_bare_incl_write": rate(times.start, end) / (Double(bareReceived) / (Double(bareLast - bareTimes.start) / 1e9)),
            "ratio_to_redis_unlink": rate(times.committed, end) / unlinkRate,
            "keys_missed": Double(rows - goneAll),
            "events_delivered": Double(subs.receipts[0].filled),
            "resyncs": Double(subs.resyncs.load(ordering: .relaxed)),
            "rss_before_mb": rssBefore,
            "peak_rss_mb": freshet.peakRSSMB,
            "start_to_ready_s": freshet.startToReady,
        ]
    }

    // MARK: latency and fan-out

    /// `subscribers` SSE subscribers, writes paced at `rate` per second for `duration` seconds, each change on its own
    /// row whose Redis key exists: commit → key gone and commit → each subscriber's receipt.
    /// With `bare`, the same fan-out is then run by `BareFanout` (the machine's floor) for the cost per delivery.
    static func delivery(
        _ env: BenchEnvironment, subscribers: Int, rate: Double, duration: Double, connections: Int, bare: Bool = false
    ) throws -> RunFigures {
        let changes = Int(rate * duration)
        env.dropSlot()
        try BenchTable.create(conninfo: env.databaseURL, rows: changes)
        try env.flushRedis()
        let freshets = try env.startFreshets()
        defer { freshets.reversed().forEach { env.stop($0) } }
        let freshet = freshets[0]
        let idleRSS = freshet.rssMB
        try RedisCeiling.setKeys(env.redisTarget(), count: changes)
        let watcher = try KeyWatcher(endpoints: env.redisNodes, keys: changes)
        env.log("delivery: connecting \(subscribers) subscribers")
        let subs = try SSESubscribers(ports: freshets.map(\.port), count: subscribers, expectedChanges: changes, topic: BenchEnvironment.topic)
        defer { subs.close() }
        usleep(500_000)  // let the connection burst settle before reading memory
        let subscribersRSS = freshets.reduce(0) { $0 + $1.rssMB } - idleRSS * Double(freshets.count)
        env.log("delivery: \(rate) changes/s for \(duration)s")
        let cpuBefore = freshets.reduce(0) { $0 + $1.cpuSeconds }
        let start = monotonicNanos()
        let load = try WriteLoad(conninfo: env.databaseURL, connections: connections, rate: rate, changes: changes,
                                 duration: duration + 1, rows: changes).run()
        try watcher.finish(expecting: load.committed, timeout: 60)
        subs.waitForAll(load.committed, timeout: 60)
        let cpu = freshets.reduce(0) { $0 + $1.cpuSeconds } - cpuBefore
        let elapsed = Double(monotonicNanos() - start) / 1e9
        var sse: [UInt64] = []
        var delivered = 0
        for table in subs.receipts {
            sse.append(contentsOf: table.latencies(from: load.commits))
            delivered += table.filled
        }
        let redis = LatencySummary(nanos: watcher.gone.latencies(from: load.commits))
        let sseSummary = LatencySummary(nanos: sse)
        let cpuPerDelivery = cpu / Double(max(delivered, 1))
        var figures: RunFigures = [:]
        subs.close()  // their sockets, before the floor opens as many again
        if bare {
            // The floor: the same bytes to the same number of sockets by a minimal write loop, same rate. It needs two
            // sockets per subscriber in this process (its end and the subscriber's).
            // As many as the open-file limit allows when that is fewer (10,000 subscribers need 20,256 files): the
            // figures are per delivery, and the tail of a few percent fewer subscribers is the same order.
            let fitting = min(subscribers, (OpenFileLimit.current() - 256) / 2)
            if fitting < subscribers / 2 {
                env.log("delivery: the bare write loop skipped: it needs \(2 * subscribers + 256) open files, the limit is \(OpenFileLimit.current())")
            } else {
                env.log("delivery: the bare write loop, \(fitting) subscribers, \(rate) changes/s")
                let floor = try BareFanout.measure(subscribers: fitting, changes: changes, rate: rate)
                figures["bare_subscribers"] = Double(fitting)
                figures["bare_cpu_us_per_delivery"] = floor.cpuPerDelivery * 1e6
                figures["bare_sse_p99_ms"] = floor.sse.p99
                figures["bare_unwritten"] = Double(floor.unwritten)
                figures["cpu_us_per_delivery_to_bare"] = cpuPerDelivery / floor.cpuPerDelivery
            }
        }
        return figures.merging([
            "cpu_us_per_delivery": cpuPerDelivery * 1e6,
            "committed": Double(load.committed),
            "write_rate_per_s": load.changesPerSecond,
            "redis_p50_ms": redis.p50, "redis_p95_ms": redis.p95, "redis_p99_ms": redis.p99, "redis_max_ms": redis.max,
            "sse_p50_ms": sseSummary.p50, "sse_p95_ms": sseSummary.p95, "sse_p99_ms": sseSummary.p99, "sse_max_ms": sseSummary.max,
            "keys_missed": Double(load.committed - watcher.gone.filled),
            "sse_missed": Double(load.committed * subscribers - delivered),
            "sse_duplicated": Double(subs.duplicates),
            "resyncs": Double(subs.resyncs.load(ordering: .relaxed)),
            "events_per_s_delivered": Double(delivered) / elapsed,
            "cpu_core_share": cpu / elapsed,
            "idle_rss_mb": idleRSS,
            "rss_per_idle_subscriber_kb": subscribersRSS * 1024 / Double(subscribers),
            "peak_rss_mb": freshets.map(\.peakRSSMB).max() ?? 0,
            "processes": Double(freshets.count),
            "start_to_ready_s": freshet.startToReady,
        ]) { a, _ in a }
    }
}
