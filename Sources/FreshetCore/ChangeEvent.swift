/// What subscribers and `freshet tail` receive for one change.
///
/// Its JSON is the contract: `{"op", "schema", "table", "key", "topics", "row"?, "at", "redis"?}`.
public struct ChangeEvent: Sendable, Equatable {
    public var op: ChangeOp
    public var schema: String
    /// The table's name in the catalog.
    public var table: String
    /// The table as written in the config (`users`, `billing.invoices`); not part of the JSON.
    public var configName: String
    public var key: JSONObject
    public var topics: [String]
    /// The configured `sse.columns` of the row; `nil` on delete and truncate.
    public var row: JSONObject?
    public var at: String
    /// The Redis keys acted on, when the table sets `sse.show_keys`.
    public var redis: [String]?
    /// Set when Freshet could not learn everything about the change: the trigger could not send the row's key (the
    /// whole table was invalidated; `key` is empty), or the row could not be read back (its keys were deleted, not
    /// rewritten; no `row`). Subscribers refetch.
    public var incomplete: Bool
    /// The event's id when its source gives one (replication: `LSN-N`, the same after any restart); nil lets the hub
    /// number it (`EPOCH-SEQ`). Not part of the JSON.
    public var id: EventID?

    public init(
        op: ChangeOp, schema: String, table: String, configName: String, key: JSONObject, topics: [String],
        row: JSONObject? = nil, at: String, redis: [String]? = nil, incomplete: Bool = false
    ) {
        self.op = op
        self.schema = schema
        self.table = table
        self.configName = configName
        self.key = key
        self.topics = topics
        self.row = row
        self.at = at
        self.redis = redis
        self.incomplete = incomplete
    }

    /// Whether the event concerns every row of its table (truncate, or an incomplete event whose key is unknown).
    public var concernsWholeTable: Bool { op == .truncate || (incomplete && key.isEmpty) }

    /// The event as a JSON object, fields in contract order.
    public var json: JSONObject {
        var object: JSONObject = [
            "op": .string(op.rawValue),
            "schema": .string(schema),
            "table": .string(table),
            "key": .object(key),
            "topics": .array(topics.map { .string($0) }),
        ]
        if let row { object["row"] = .object(row) }
        object["at"] = .string(at)
        if let redis { object["redis"] = .array(redis.map { .string($0) }) }
        if incomplete { object["incomplete"] = .bool(true) }
        return object
    }

    /// Compact JSON bytes, with no raw newline (safe for one SSE `data:` line): the same text as `json` written out,
    /// without building the object first (this runs once per event, on the publishing path).
    public var jsonBytes: [UInt8] {
        var writer = JSONWriter()
        writer.append("{\"op\":")
        writer.writeString(op.rawValue)
        writer.append(",\"schema\":")
        writer.writeString(schema)
        writer.append(",\"table\":")
        writer.writeString(table)
        writer.append(",\"key\":")
        writer.write(key)
        writer.append(",\"topics\":[")
        for (i, topic) in topics.enumerated() {
            if i > 0 { writer.append(",") }
            writer.writeString(topic)
        }
        writer.append("]")
        if let row {
            writer.append(",\"row\":")
            writer.write(row)
        }
        writer.append(",\"at\":")
        writer.writeString(at)
        if let redis {
            writer.append(",\"redis\":[")
            for (i, key) in redis.enumerated() {
                if i > 0 { writer.append(",") }
                writer.writeString(key)
            }
            writer.append("]")
        }
        if incomplete { writer.append(",\"incomplete\":true") }
        writer.append("}")
        return writer.bytes
    }
}
