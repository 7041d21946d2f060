/// What to do for one change: the Redis operations, in order, and the event to publish once Redis acknowledged them.
public struct ChangePlan: Sendable, Equatable {
    public var operations: [RedisOperation]
    public var event: ChangeEvent

    public init(operations: [RedisOperation], event: ChangeEvent) {
        self.operations = operations
        self.event = event
    }
}

/// Turns a change into Redis operations and a change event. Pure: all of Freshet's invalidation rules live here.
///
/// - insert: act on the keys rendered from the new row (delete, or set to the row).
/// - update: render from old and new; a key that moved has its old key deleted; the new key is deleted or set.
/// - delete: delete the keys rendered from the old row, also for `set` rules.
/// - truncate (and an overflowed payload): delete every key matching each template's pattern.
/// A key with a NULL placeholder is skipped.
public enum Planner {
    public static func plan(_ change: Change, table: ResolvedTable) -> ChangePlan {
        if change.op == .truncate || change.overflow {
            return planWholeTable(change, table: table)
        }
        var operations: [RedisOperation] = []
        func add(_ operation: RedisOperation) {
            if !operations.contains(operation) { operations.append(operation) }
        }
        let columns = table.schema.columns
        for rule in table.config.redis {
            let oldKey = change.old.flatMap { rule.key.render($0) }
            let newKey = change.new.flatMap { rule.key.render($0) }
            switch change.op {
            case .delete:
                if let oldKey { add(.unlink(oldKey)) }
                if let newKey { add(.unlink(newKey)) }  // a vanished row read back as deleted
            case .insert, .update:
                if let oldKey, oldKey != newKey { add(.unlink(oldKey)) }
                guard let newKey, let row = change.new else { continue }
                switch rule.action {
                case .delete:
                    add(.unlink(newKey))
                case .set:
                    var writer = JSONWriter()
                    writer.write(row.projected(rule.columns ?? columns))
                    let ttl = rule.ttl.map { max(1, Int(($0 * 1000).rounded())) }
                    add(.set(key: newKey, value: writer.string, ttlMilliseconds: ttl))
                }
            case .truncate:
                break
            }
        }

        let current = change.op == .delete ? (change.old ?? change.new) : change.new
        var topics: [String] = []
        for row in [change.new, change.old].compactMap({ $0 }) {
            for template in table.topics {
                if let topic = template.render(row), !topics.contains(topic) { topics.append(topic) }
            }
        }
        let event = ChangeEvent(
            op: change.op,
            schema: change.schema,
            table: change.table,
            configName: table.name,
            key: current?.projected(table.keyColumns) ?? [:],
            topics: topics,
            row: change.op == .delete ? nil : current?.projected(table.sseColumns),
            at: change.at,
            redis: table.config.sse.showKeys ? operations.map(\.key) : nil
        )
        return ChangePlan(operations: operations, event: event)
    }

    static func planWholeTable(_ change: Change, table: ResolvedTable) -> ChangePlan {
        var operations: [RedisOperation] = []
        for rule in table.config.redis {
            let operation = RedisOperation.unlinkMatching(pattern: rule.key.globPattern)
            if !operations.contains(operation) { operations.append(operation) }
        }
        let event = ChangeEvent(
            op: change.op,
            schema: change.schema,
            table: change.table,
            configName: table.name,
            key: [:],
            topics: [table.name],
            at: change.at,
            redis: table.config.sse.showKeys ? operations.map(\.key) : nil,
            incomplete: change.op != .truncate
        )
        return ChangePlan(operations: operations, event: event)
    }

    /// A partial change whose row could not be read back (an error, not "row gone"): the op is kept (a live row is
    /// never reported deleted), every key it renders, old and new, is deleted rather than rewritten (the application
    /// refills them from the database), and the event carries `incomplete: true` and no row, so subscribers refetch.
    public static func planIncomplete(_ change: Change, table: ResolvedTable) -> ChangePlan {
        var operations: [RedisOperation] = []
        for rule in table.config.redis {
            for row in [change.old, change.new] {
                if let key = row.flatMap({ rule.key.render($0) }), !operations.contains(.unlink(key)) {
                    operations.append(.unlink(key))
                }
            }
        }
        var complete = change
        complete.partial = false
        var event = plan(complete, table: table).event
        event.row = nil
        event.incomplete = true
        event.redis = table.config.sse.showKeys ? operations.map(\.key) : nil
        return ChangePlan(operations: operations, event: event)
    }

    /// Whether a partial change must be completed by reading the row back by key before planning.
    public static func needsReadBack(_ change: Change, table: ResolvedTable) -> Bool {
        change.partial && !change.overflow && (change.op == .insert || change.op == .update) && table.needsRowData
    }

    /// Completes a partial change with the row read back by key; a row gone by then makes it a delete.
    public static func complete(_ change: Change, readBack row: JSONObject?) -> Change {
        var completed = change
        completed.partial = false
        if let row {
            completed.new = (change.new ?? [:]).merging(row)
        } else {
            completed.op = .delete
            completed.old = change.old ?? change.new
            completed.new = change.old == nil ? nil : change.new
        }
        return completed
    }
}
