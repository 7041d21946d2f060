/// Changes of one committed transaction from the replication stream: the whole transaction, or one piece of a large
/// one (the stream sends only committed transactions, so a piece can be acted on before the commit message).
public struct CommittedTransaction: Sendable, Equatable {
    /// The commit LSN: with a change's 1-based index, its event id (`LSN-N`).
    public var commit: UInt64
    /// The changes in order: rows as JSON values as `to_jsonb` gives them.
    public var changes: [Change]
    /// The index (1-based) of the first change in the transaction.
    public var firstIndex: Int = 1
    /// The transaction's last piece (its commit message arrived).
    public var final: Bool = true

    public init(commit: UInt64, changes: [Change], firstIndex: Int = 1, final: Bool = true) {
        self.commit = commit
        self.changes = changes
        self.firstIndex = firstIndex
        self.final = final
    }
}

/// Turns pgoutput messages into committed transactions of `Change`s, keeping the relation cache (`R` messages).
///
/// Rows become JSON as in notify mode (`PgTextValue`); `at` is the commit time. Old rows: a `K` tuple carries only the
/// replica identity columns (its other columns are "not sent", not NULL, and are left out); an `O` tuple (REPLICA
/// IDENTITY FULL) carries the whole row. A new row with unchanged TOASTed values (`u`) takes them from a full old row
/// when there is one; otherwise the change is marked `partial` and read back by key, as oversized NOTIFY rows are.
/// A value, fed on the replication reader's thread; unit-tested with byte-built messages.
public struct TransactionAssembler: Sendable {
    private var relations: [UInt32: PgOutputMessage.Relation] = [:]
    private var changes: [Change] = []
    private var at = ""
    private var open = false
    private var commitLSN: UInt64 = 0
    private var nextIndex = 1
    /// Changes per piece of a large transaction: memory stays bounded whatever its size.
    public static let pieceSize = 1000

    public init() {}

    /// The commit LSN of the transaction being received (from its begin message).
    public var currentCommit: UInt64 { commitLSN }

    /// What a message did: nothing to report yet, a transaction began, or changes to act on (a piece of a large
    /// transaction, or the rest of one at its commit: `final`).
    public enum Step: Sendable, Equatable {
        case none
        case began
        case changes(CommittedTransaction)
    }

    /// Why a message could not be used.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public mutating func feed(_ message: PgOutputMessage) throws(Failure) -> Step {
        switch message {
        case .begin(let finalLSN, let commitTime, _):
            changes.removeAll(keepingCapacity: true)
            at = Self.timestamp(postgresMicroseconds: commitTime)
            open = true
            commitLSN = finalLSN.value
            nextIndex = 1
            return .began
        case .commit:
            let transaction = CommittedTransaction(commit: commitLSN, changes: changes, firstIndex: nextIndex, final: true)
            changes.removeAll(keepingCapacity: true)
            open = false
            return .changes(transaction)
        case .relation(let relation):
            relations[relation.id] = relation
        case .insert(let id, let new):
            let relation = try self.relation(id)
            var change = Change(op: .insert, schema: relation.schema, table: relation.name, at: at, new: row(new, of: relation))
            change.partial = new.contains(.unchangedToast)
            changes.append(change)
        case .update(let id, let old, let oldKind, let new):
            let relation = try self.relation(id)
            let oldRow = old.map { row($0, of: relation, keyOnly: oldKind == .key) }
            var newRow = row(new, of: relation)
            var partial = false
            for (i, value) in new.enumerated() where value == .unchangedToast && i < relation.columns.count {
                let name = relation.columns[i].name
                if oldKind == .full, let previous = oldRow?[name] { newRow[name] = previous } else { partial = true }
            }
            changes.append(Change(op: .update, schema: relation.schema, table: relation.name, at: at, old: oldRow, new: newRow, partial: partial))
        case .delete(let id, let old, let oldKind):
            let relation = try self.relation(id)
            changes.append(Change(op: .delete, schema: relation.schema, table: relation.name, at: at, old: row(old, of: relation, keyOnly: oldKind == .key)))
        case .truncate(_, let ids):
            for id in ids {
                let relation = try self.relation(id)
                changes.append(Change(op: .truncate, schema: relation.schema, table: relation.name, at: at))
            }
        case .origin, .type, .message:
            break
        }
        if changes.count >= Self.pieceSize {
            let piece = CommittedTransaction(commit: commitLSN, changes: changes, firstIndex: nextIndex, final: false)
            nextIndex += changes.count
            changes.removeAll(keepingCapacity: true)
            return .changes(piece)
        }
        return .none
    }

    /// Whether a transaction has begun and not yet committed.
    public var isOpen: Bool { open }

    /// Forgets a transaction cut off by a lost connection (the slot sends it again) and the relation cache (the
    /// server sends every relation again on a new connection).
    public mutating func reset() {
        changes.removeAll()
        relations.removeAll()
        open = false
    }

    private func relation(_ id: UInt32) throws(Failure) -> PgOutputMessage.Relation {
        guard let relation = relations[id] else { throw Failure(description: "change for relation \(id) before its Relation message") }
        return relation
    }

    private func row(_ tuple: TupleData, of relation: PgOutputMessage.Relation, keyOnly: Bool = false) -> JSONObject {
        var fields: [(String, JSONValue)] = []
        fields.reserveCapacity(tuple.count)
        for (i, value) in tuple.enumerated() where i < relation.columns.count {
            let column = relation.columns[i]
            if keyOnly && !column.isKey { continue }  // "not sent", not NULL
            switch value {
            case .null: fields.append((column.name, .null))
            case .unchangedToast: continue
            case .text(let bytes): fields.append((column.name, PgTextValue.json(text: String(decoding: bytes, as: UTF8.self), typeOID: column.typeOID)))
            case .binary(let bytes): fields.append((column.name, .string(String(decoding: bytes, as: UTF8.self))))
            }
        }
        return JSONObject(fields)
    }

    /// A commit time (µs since 2000-01-01 UTC) as `to_jsonb(timestamptz)` prints it in UTC: `2026-12-01T12:34:56.123456+00:00`.
    public static func timestamp(postgresMicroseconds: Int64) -> String {
        let unix = postgresMicroseconds + 946_684_800_000_000
        var seconds = unix / 1_000_000
        var micros = unix % 1_000_000
        if micros < 0 {
            micros += 1_000_000
            seconds -= 1
        }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var text = "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))"
        if micros > 0 {
            var fraction = String(micros)
            fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text + "+00:00"
    }
}

extension PgOutputMessage.Relation {
    /// The schema (`""` in the message means `pg_catalog`).
    var schema: String { namespace.isEmpty ? "pg_catalog" : namespace }
}
