/// A JSON value as PostgreSQL's `to_jsonb` produces it.
///
/// Numbers keep their text so that `bigint` and `numeric` values pass through without losing precision, and objects keep
/// their key order so that what subscribers receive reads like the row.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number exactly as written in the source JSON.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The value rendered as PostgreSQL prints it in text form, for key templates; `nil` for SQL NULL.
    ///
    /// Strings render as they are, numbers and booleans as their literal, arrays and objects as compact JSON.
    public var templateText: String? {
        switch self {
        case .null: return nil
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n
        case .string(let s): return s
        case .array, .object: return self.jsonText
        }
    }

    /// Compact JSON text of this value.
    public var jsonText: String {
        var out = JSONWriter()
        out.write(self)
        return out.string
    }

    /// The object's fields, if this is an object.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The string, if this is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

/// A JSON object that keeps its fields in order. Lookups are linear: rows have few columns.
public struct JSONObject: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    /// The fields, in order.
    public private(set) var fields: [(key: String, value: JSONValue)]

    public init() { self.fields = [] }

    public init(_ fields: [(String, JSONValue)]) {
        self.fields = fields.map { (key: $0.0, value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    public var isEmpty: Bool { fields.isEmpty }
    public var keys: [String] { fields.map(\.key) }

    public subscript(key: String) -> JSONValue? {
        get { fields.first(where: { $0.key == key })?.value }
        set {
            if let index = fields.firstIndex(where: { $0.key == key }) {
                if let newValue { fields[index].value = newValue } else { fields.remove(at: index) }
            } else if let newValue {
                fields.append((key: key, value: newValue))
            }
        }
    }

    /// The fields named by `columns`, in the order given; columns the object lacks are left out.
    public func projected(_ columns: [String]) -> JSONObject {
        var result = JSONObject()
        for column in columns {
            if let value = self[column] { result.fields.append((key: column, value: value)) }
        }
        return result
    }

    /// This object with every field of `other` added or replaced.
    public func merging(_ other: JSONObject) -> JSONObject {
        var result = self
        for field in other.fields { result[field.key] = field.value }
        return result
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for field in fields {
            hasher.combine(field.key)
            hasher.combine(field.value)
        }
    }
}
