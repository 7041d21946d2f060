import Foundation
import FreshetCore
import FreshetPostgres
import FreshetRedis
import Glibc
import Synchronization

/// Watches Redis keyspace notifications (`del` events, which UNLINK raises too) and records when each bench key
/// `bench:N` disappeared: `gone[N - 1]`. One thread per server (every master of a cluster: keyspace notifications are
/// local to a node); each ends on the sentinel message, published once (cluster PUBLISH reaches every node).
final class KeyWatcher: @unchecked Sendable {
    static let sentinel = "freshet-bench-end"
    let gone: TimeTable
    private let endpoints: [RedisEndpoint]
    private let done = DispatchSemaphore(value: 0)
    private let ready = DispatchSemaphore(value: 0)
    private let failure = Mutex<String?>(nil)

    init(endpoints: [RedisEndpoint], keys: Int) throws {
        self.endpoints = endpoints
        gone = TimeTable(count: keys)
        for endpoint in endpoints {
            let control = try RedisConnection.connect(endpoint, timeout: 5)
            _ = try control.command(["CONFIG", "SET", "notify-keyspace-events", "Eg"])
            let thread = Thread { self.watch(endpoint) }
            thread.start()
        }
        for _ in endpoints { ready.wait() }
        if let message = failure.withLock({ $0 }) { throw BenchError("key watcher: \(message)") }
    }

    private var channel: String { "__keyevent@\(endpoints[0].database)__:del" }

    private func watch(_ endpoint: RedisEndpoint) {
        defer { done.signal() }
        do {
            let connection = try RedisConnection.connect(endpoint, timeout: 300)
            _ = try connection.command(["SUBSCRIBE", channel])
            ready.signal()
            while true {
                guard case .array(let parts) = try connection.reply(), parts.count == 3, case .string(let key) = parts[2] else { continue }
                let now = monotonicNanos()
                if key.count > 6, key[0..<6].elementsEqual("bench:".utf8), let n = Int(String(decoding: key[6...], as: UTF8.self)) {
                    gone.record(n - 1, at: now)
                } else if key.elementsEqual(Self.sentinel.utf8) {
                    return
                }
            }
        } catch {
            failure.withLock { $0 = "\(error)" }
            ready.signal()
        }
    }

    /// Waits until every key in `0..<count` is gone or `timeout` seconds pass, then stops the watchers.
    func finish(expecting count: Int, timeout: Double) throws {
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        while monotonicNanos() < deadline {
            var all = true
            for i in stride(from: count - 1, through: 0, by: -1) where gone[i] == 0 { all = false; break }
            if all { break }
            usleep(1_000)
        }
        let control = try RedisConnection.connect(endpoints[0], timeout: 5)
        _ = try control.command(["PUBLISH", channel, Self.sentinel])
        for _ in endpoints { done.wait() }
    }
}

/// The database's own limit: one bare libpq LISTEN loop that only counts the changes in each notification (one
/// `"new": ` per row of a packed payload; the bench table has no column of that name), acting on nothing.
final class BareListener: @unchecked Sendable {
    let received = Atomic<Int>(0)
    let lastAt = Atomic<UInt64>(0)
    private let stopFlag = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    init(conninfo: String, channel: String) throws {
        let pg = try PGConnection.connect(conninfo, applicationName: "freshet-bench-listener")
        try pg.execute("LISTEN \(SQL.quoteIdentifier(channel))")
        let thread = Thread { [self] in
            defer { done.signal() }
            var fds = pollfd(fd: pg.socket, events: Int16(POLLIN), revents: 0)
            while !stopFlag.load(ordering: .relaxed) {
                guard poll(&fds, 1, 50) >= 0 else { continue }
                guard (try? pg.consumeInput()) != nil else { return }
                var batch = 0
                for notification in pg.drainNotifications() { batch += Self.rows(in: notification.payload) }
                if batch > 0 {
                    received.add(batch, ordering: .relaxed)
                    lastAt.store(monotonicNanos(), ordering: .relaxed)
                }
            }
        }
        thread.start()
    }

    static func rows(in payload: String) -> Int {
        let marker = Array("\"new\": ".utf8)
        var count = 0
        var utf8 = Array(payload.utf8)[...]
        while let start = utf8.firstIndex(of: marker[0]) {
            if utf8[start...].starts(with: marker) { count += 1 }
            utf8 = utf8[(start + 1)...]
        }
        return max(count, 1)
    }

    /// Waits until `count` changes arrived (or `timeout` seconds), then stops.
    func finish(expecting count: Int, timeout: Double) {
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        while received.load(ordering: .relaxed) < count && monotonicNanos() < deadline { usleep(1_000) }
        stopFlag.store(true, ordering: .relaxed)
        done.wait()
    }
}

/// Redis's own limit: pipelined UNLINK of `keys` keys, `batch` per round trip (per node on a cluster: Freshet's own
/// cluster client writes every node's share before reading any reply).
enum RedisCeiling {
    /// Sets `bench:1`…`bench:N` (pipelined).
    static func setKeys(_ target: RedisTarget, count: Int, from first: Int = 1) throws {
        var i = first
        while i < first + count {
            let end = min(first + count, i + 2048)
            _ = try target.pipeline((i..<end).map { RedisCommand(key: "bench:\($0)", arguments: ["SET", "bench:\($0)", "cached row \($0)"]) })
            i = end
        }
    }

    /// UNLINKs per second.
    static func unlinkRate(_ target: RedisTarget, keys: Int, batch: Int = 2048) throws -> Double {
        try setKeys(target, count: keys)
        let commands = (1...keys).map { RedisCommand(key: "bench:\($0)", arguments: ["UNLINK", "bench:\($0)"]) }
        let start = monotonicNanos()
        var i = 0
        while i < keys {
            let end = min(keys, i + batch)
            _ = try target.pipeline(Array(commands[i..<end]))
            i = end
        }
        return Double(keys) / (Double(monotonicNanos() - start) / 1e9)
    }
}
