import FreshetCore
import FreshetPostgres
import Logging

/// Turns one notification into plans: decode, find the table, read the row back if the payload was cut, plan.
/// Shared by `run` and `tail`; runs on the listener's thread (a read-back blocks it, and PostgreSQL queues the
/// notifications meanwhile).
struct ChangeProcessor: Sendable {
    let catalog: TableCatalog
    let queries: PostgresQueryConnection
    let logger: Logger
    let metrics: FreshetMetrics
    var stats: PipelineStats? = nil

    /// The plans for a notification's changes (a statement's rows), or none when it was rejected (logged and
    /// counted).
    func process(_ payload: String) -> [ChangePlan] {
        let changes: [Change]
        do {
            changes = try PayloadDecoder.decode(payload)
        } catch {
            metrics.rejected(reason: error.reason)
            stats?.countRejected()
            // The payload is row data (possibly personal): log its size, never its text.
            logger.error("skipped a notification that is not a Freshet change", metadata: [
                "reason": "\(error.reason)", "detail": "\(error.detail)", "payload_bytes": "\(payload.utf8.count)",
            ])
            return []
        }
        guard let first = changes.first else { return [] }
        guard let table = catalog.table(schema: first.schema, name: first.table) else {
            metrics.rejected(reason: "unknown_table")
            stats?.countRejected()
            logger.error("skipped a change for a table that is not configured", metadata: [
                "schema": "\(first.schema)", "table": "\(first.table)", "op": "\(first.op.rawValue)",
                "payload_bytes": "\(payload.utf8.count)",
            ])
            return []
        }
        var plans: [ChangePlan] = []
        plans.reserveCapacity(changes.count)
        for var change in changes {
            if Planner.needsReadBack(change, table: table) {
                guard let row = readBack(change, table: table) else {
                    plans.append(Planner.planIncomplete(change, table: table))
                    continue
                }
                change = Planner.complete(change, readBack: row)
            }
            let plan = Planner.plan(change, table: table)
            if change.overflow {
                logger.warning("a change arrived without its key; invalidating every key of the table", metadata: [
                    "table": "\(table.name)", "op": "\(change.op.rawValue)",
                ])
            }
            plans.append(plan)
        }
        metrics.changes(table: table.name, op: first.op, count: plans.count)
        return plans
    }

    /// Reads back by key the row of a change whose row data was cut to fit the notification: the row, `.some(nil)`
    /// when the row is gone, `nil` when it could not be read (then its keys are deleted, not rewritten, and the event
    /// is marked incomplete).
    private func readBack(_ change: Change, table: ResolvedTable) -> JSONObject?? {
        let key = (change.new ?? change.old ?? [:]).projected(table.keyColumns)
        do {
            return try queries.runBlocking { connection throws(PostgresError) in
                try RowReader.read(table, key: key, on: connection)
            }
        } catch {
            logger.error("cannot read back an oversized row; deleting its keys and sending the event as incomplete", metadata: [
                "table": "\(table.name)", "op": "\(change.op.rawValue)", "error": "\(error)",
            ])
            return nil
        }
    }
}
