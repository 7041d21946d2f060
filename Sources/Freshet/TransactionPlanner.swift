import FreshetCore
import FreshetPostgres
import FreshetRedis
import Logging

/// Turns a committed transaction of the replication source into Redis jobs, on the reader's thread: skips updates
/// that change only `ignore_columns`, reads back rows with unchanged TOASTed values the rules need, plans, and gives
/// each event its durable id `LSN-N`.
struct TransactionPlanner: Sendable {
    let catalog: TableCatalog
    let queries: PostgresQueryConnection
    let logger: Logger
    let metrics: FreshetMetrics
    let stats: PipelineStats

    /// - Parameter tick: called every 100 changes, so that a long transaction (read-backs) does not hold back the
    ///   reader's status updates.
    func jobs(for transaction: CommittedTransaction, tick: () -> Void = {}) -> [RedisJob] {
        var jobs: [RedisJob] = []
        jobs.reserveCapacity(transaction.changes.count)
        // Counted once per table and op per piece: a counter lookup per change would cost on the hot path.
        var counts: [ChangeCount: Int] = [:]
        defer { for (key, count) in counts { metrics.changes(table: key.table, op: key.op, count: count) } }
        for (index, change) in transaction.changes.enumerated() {
            if index % 100 == 99 { tick() }
            guard let table = catalog.table(schema: change.schema, name: change.table) else {
                metrics.rejected(reason: "unknown_table")
                stats.countRejected()
                continue
            }
            if Self.changesOnlyIgnoredColumns(change, table: table) { continue }
            var plan: ChangePlan
            if Planner.needsReadBack(change, table: table) {
                switch readBack(change, table: table) {
                case .some(let row): plan = Planner.plan(Planner.complete(change, readBack: row), table: table)
                case .none: plan = Planner.planIncomplete(change, table: table)
                }
            } else {
                plan = Planner.plan(change, table: table)
            }
            plan.event.id = EventID(epoch: transaction.commit, sequence: UInt64(transaction.firstIndex + index))
            counts[ChangeCount(table: table.name, op: change.op), default: 0] += 1
            jobs.append(RedisJob(operations: plan.operations, event: plan.event))
        }
        return jobs
    }

    /// An UPDATE whose every changed column is in `ignore_columns`. Without the old row (no REPLICA IDENTITY FULL)
    /// every update counts.
    static func changesOnlyIgnoredColumns(_ change: Change, table: ResolvedTable) -> Bool {
        guard change.op == .update, !table.config.ignoreColumns.isEmpty, let old = change.old, let new = change.new else { return false }
        for (column, value) in new.fields where !table.config.ignoreColumns.contains(column) {
            if old[column] != value { return false }
        }
        return true
    }

    /// The row read back by key: the row, `.some(nil)` when gone, nil when it could not be read.
    private func readBack(_ change: Change, table: ResolvedTable) -> JSONObject?? {
        let key = (change.new ?? change.old ?? [:]).projected(table.keyColumns)
        do {
            return try queries.runBlocking { connection throws(PostgresError) in try RowReader.read(table, key: key, on: connection) }
        } catch {
            logger.error("cannot read back a row; deleting its keys and sending the event as incomplete", metadata: [
                "table": "\(table.name)", "op": "\(change.op.rawValue)", "error": "\(error)",
            ])
            return nil
        }
    }
}

/// A `freshet_changes_total` label set.
private struct ChangeCount: Hashable {
    var table: String
    var op: ChangeOp
}
