/// The kind of row change a trigger reported.
public enum ChangeOp: String, Sendable, Hashable, CaseIterable {
    case insert, update, delete, truncate
}

/// One row change (or one truncate) as the trigger reported it.
public struct Change: Sendable, Equatable {
    public var op: ChangeOp
    /// The table's schema and name in the catalog.
    public var schema: String
    public var table: String
    /// When the trigger ran, ISO 8601 as `to_jsonb(clock_timestamp())` prints it.
    public var at: String
    /// The row before the change (update, delete).
    public var old: JSONObject?
    /// The row after the change (insert, update).
    public var new: JSONObject?
    /// The payload was too large and carries only the key and template columns.
    public var partial: Bool
    /// Even the key and template columns did not fit (or the trigger failed): the row is unknown.
    public var overflow: Bool

    public init(
        op: ChangeOp, schema: String, table: String, at: String, old: JSONObject? = nil, new: JSONObject? = nil,
        partial: Bool = false, overflow: Bool = false
    ) {
        self.op = op
        self.schema = schema
        self.table = table
        self.at = at
        self.old = old
        self.new = new
        self.partial = partial
        self.overflow = overflow
    }
}
