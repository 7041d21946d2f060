import FreshetCore
import FreshetPostgres
import Logging

/// Turns one notification into a plan: decode, find the table, read the row back if the payload was cut, plan.
/// Shared by `run` and `tail`.
struct ChangeProcessor: Sendable {
    let catalog: TableCatalog
    let queries: PostgresQueryConnection
    let logger: Logger
    let metrics: FreshetMetrics
    var stats: PipelineStats? = nil

    /// The plan for a notification, or `nil` when it was rejected (logged and counted).
    func process(_ payload: String) async -> ChangePlan? {
        var change: Change
        do {
            change = try PayloadDecoder.decode(payload)
        } catch {
            metrics.rejected(reason: error.reason)
            stats?.countRejected()
            logger.error("skipped a notification that is not a Freshet change", metadata: [
                "reason": "\(error.reason)", "detail": "\(error.detail)", "payload": "\(payload.prefix(200))",
            ])
            return nil
        }
        guard let table = catalog.table(schema: change.schema, name: change.table) else {
            metrics.rejected(reason: "unknown_table")
            stats?.countRejected()
            logger.error("skipped a change for a table that is not configured", metadata: [
                "schema": "\(change.schema)", "table": "\(change.table)",
            ])
            return nil
        }
        if Planner.needsReadBack(change, table: table) {
            let key = (change.new ?? change.old ?? [:]).projected(table.keyColumns)
            do {
                let row = try await queries.run { connection throws(PostgresError) in
                    try RowReader.read(table, key: key, on: connection)
                }
                change = Planner.complete(change, readBack: row)
            } catch {
                // Without the row, act on what the payload has: delete the keys instead of rewriting them.
                logger.error("cannot read back an oversized row; deleting its keys instead", metadata: [
                    "table": "\(table.name)", "error": "\(error)",
                ])
                change = Planner.complete(change, readBack: nil)
            }
        }
        let plan = Planner.plan(change, table: table)
        metrics.change(table: table.name, op: plan.event.op)
        if change.overflow {
            logger.warning("a change arrived without its key; invalidating every key of the table", metadata: [
                "table": "\(table.name)", "op": "\(change.op.rawValue)",
            ])
        }
        return plan
    }
}
