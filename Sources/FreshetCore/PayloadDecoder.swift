/// Turns the text of a notification sent by Freshet's trigger into a `Change`.
///
/// The trigger sends one statement's rows, packed:
/// `{"v":1,"op":"update","schema":"public","table":"users","at":"…","rows":[{"old":{…},"new":{…}},…]}`, with
/// `"partial":true` on a row whose data was cut to fit NOTIFY's 8000-byte limit; `"overflow":true` (no rows) when
/// even a row's key did not fit. A single-row form (`"old"`/`"new"` at the top, as older triggers sent) and the
/// truncate notice (no rows) decode to one change.
public enum PayloadDecoder {
    /// Why a notification was rejected; `reason` is the metric label.
    public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        /// `invalid_json`, `invalid_shape`, `unsupported_version`.
        public var reason: String
        public var detail: String
        public var description: String { "\(reason): \(detail)" }
    }

    /// Notifications larger than this are rejected without parsing (PostgreSQL's own limit is 8000 bytes).
    public static let maxPayloadBytes = 64 * 1024

    /// The changes in one notification, in the order the trigger listed them.
    public static func decode(_ text: String) throws(Rejection) -> [Change] {
        guard text.utf8.count <= maxPayloadBytes else {
            throw Rejection(reason: "invalid_shape", detail: "payload of \(text.utf8.count) bytes is larger than any trigger sends")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(text)
        } catch {
            throw Rejection(reason: "invalid_json", detail: error.description)
        }
        guard let object = value.objectValue else {
            throw Rejection(reason: "invalid_shape", detail: "expected a JSON object")
        }
        guard object["v"] == .number("1") else {
            throw Rejection(reason: "unsupported_version", detail: "field \"v\" must be 1 (reinstall triggers with this Freshet version)")
        }
        guard let opText = object["op"]?.stringValue, let op = ChangeOp(rawValue: opText) else {
            throw Rejection(reason: "invalid_shape", detail: "field \"op\" must be insert, update, delete or truncate")
        }
        guard let schema = object["schema"]?.stringValue, let table = object["table"]?.stringValue else {
            throw Rejection(reason: "invalid_shape", detail: "fields \"schema\" and \"table\" must be strings")
        }
        guard let at = object["at"]?.stringValue else {
            throw Rejection(reason: "invalid_shape", detail: "field \"at\" must be a string")
        }
        let overflow = object["overflow"] == .bool(true)
        if case .array(let items)? = object["rows"], !overflow, op != .truncate {
            var changes: [Change] = []
            changes.reserveCapacity(items.count)
            for item in items {
                guard case .object(let entry) = item else {
                    throw Rejection(reason: "invalid_shape", detail: "each of \"rows\" must be an object")
                }
                changes.append(try change(op: op, schema: schema, table: table, at: at, fields: entry, overflow: false))
            }
            return changes
        }
        return [try change(op: op, schema: schema, table: table, at: at, fields: object, overflow: overflow)]
    }

    /// One row's change from an object holding `old`, `new` and `partial`.
    private static func change(
        op: ChangeOp, schema: String, table: String, at: String, fields object: JSONObject, overflow: Bool
    ) throws(Rejection) -> Change {
        func row(_ name: String) throws(Rejection) -> JSONObject? {
            switch object[name] {
            case nil, .null?: return nil
            case .object(let o)?: return o
            default: throw Rejection(reason: "invalid_shape", detail: "field \"\(name)\" must be an object")
            }
        }
        let old = try row("old")
        let new = try row("new")
        let partial = object["partial"] == .bool(true)
        if !overflow {
            switch op {
            case .insert where new == nil, .update where new == nil || old == nil, .delete where old == nil:
                throw Rejection(reason: "invalid_shape", detail: "\(op.rawValue) without its row data")
            default: break
            }
        }
        return Change(op: op, schema: schema, table: table, at: at, old: old, new: new, partial: partial, overflow: overflow)
    }
}
