import Foundation
import FreshetPostgres
import Synchronization

/// The application's side: single-row UPDATEs, each its own transaction, from several connections, flat out or at a
/// target rate. Change `i` sets `seq = i` on one row, so every delivery can be matched to its commit.
struct WriteLoad {
    var conninfo: String
    var connections: Int
    /// Changes per second across all connections; nil means flat out.
    var rate: Double?
    /// Stop after this many changes…
    var changes: Int
    /// …or after this many seconds, whichever comes first.
    var duration: Double
    /// Change `i` updates row `i % rows + 1`.
    var rows: Int

    struct Result {
        var committed: Int
        var seconds: Double
        var commits: TimeTable
        var changesPerSecond: Double { Double(committed) / seconds }
    }

    func run() throws -> Result {
        let commits = TimeTable(count: changes)
        let next = Atomic<Int>(0)
        let committed = Atomic<Int>(0)
        let failure = Mutex<String?>(nil)
        let group = DispatchGroup()
        let start = monotonicNanos()
        let end = start + UInt64(duration * 1e9)
        let sql = "UPDATE bench_items SET seq = $1 WHERE id = $2"
        var pgs: [PGConnection] = []
        for _ in 0..<connections { pgs.append(try PGConnection.connect(conninfo, applicationName: "freshet-bench")) }
        for pg in pgs {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                while true {
                    let i = next.add(1, ordering: .relaxed).oldValue
                    guard i < changes else { return }
                    if let rate {
                        let due = start + UInt64(Double(i) / rate * 1e9)
                        if due >= end { return }
                        sleep(untilNanos: due)
                    } else if monotonicNanos() >= end {
                        return
                    }
                    do {
                        try pg.query(sql, parameters: [String(i), String(i % rows + 1)])
                        commits.record(i, at: monotonicNanos())
                        committed.add(1, ordering: .relaxed)
                    } catch {
                        failure.withLock { $0 = $0 ?? "\(error)" }
                        return
                    }
                }
            }
            thread.start()
        }
        group.wait()
        let seconds = Double(monotonicNanos() - start) / 1e9
        if let message = failure.withLock({ $0 }) { throw BenchError("a write failed: \(message)") }
        return Result(committed: committed.load(ordering: .relaxed), seconds: seconds, commits: commits)
    }

    /// One transaction updating rows 1…`rows` (`seq = id - 1`). Returns the statement's start and the commit's return.
    static func bulk(conninfo: String, rows: Int) throws -> (start: UInt64, committed: UInt64) {
        let pg = try PGConnection.connect(conninfo, applicationName: "freshet-bench")
        let start = monotonicNanos()
        try pg.execute("BEGIN; UPDATE bench_items SET seq = id - 1 WHERE id <= \(rows); COMMIT")
        return (start, monotonicNanos())
    }
}

/// Creates the bench table with `rows` rows (dropping any previous one: its triggers go with it).
enum BenchTable {
    static func create(conninfo: String, rows: Int) throws {
        let pg = try PGConnection.connect(conninfo, applicationName: "freshet-bench")
        try pg.execute("""
            SET client_min_messages = warning;
            DROP TABLE IF EXISTS bench_items;
            CREATE TABLE bench_items (id integer PRIMARY KEY, seq bigint NOT NULL DEFAULT -1, note text NOT NULL DEFAULT 'a row of the freshet benchmark');
            INSERT INTO bench_items (id) SELECT g FROM generate_series(1, \(rows)) g;
            """)
        try pg.execute("VACUUM ANALYZE bench_items")
    }
}
