/// Converts a column value in PostgreSQL's text output form, as logical replication (pgoutput, text format) delivers
/// it, into the JSON value `to_jsonb` gives for the same value, so that keys and events read the same whichever way a
/// row arrived.
///
/// The text is expected from a session with `DateStyle='ISO'`, `TimeZone='UTC'`, `bytea_output='hex'` and
/// `extra_float_digits` ≥ 1. What comes out, by type (the rules of PostgreSQL 15's `datum_to_jsonb`):
///
/// - `bool`: `true` / `false`.
/// - `int2`, `int4`, `int8`, `float4`, `float8`, `numeric`: a number printed as `numeric` prints it (`1e+30` becomes
///   `1000000000000000000000000000000`, `1.5e-05` becomes `0.000015`, `-0` becomes `0`); `NaN`, `Infinity` and
///   `-Infinity` become the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
/// - `json`, `jsonb`: the value itself. `json` is brought to `jsonb`'s form: object keys sorted as `jsonb` sorts them
///   (shorter first, then bytewise), a repeated key keeps its last value, numbers printed as `numeric`.
/// - `timestamp`: ISO 8601 with a `T` (`"2026-12-01T12:34:56.789"`); `timestamptz` also with its offset as `+HH:MM`
///   (`+HH:MM:SS` for an offset with seconds); `date` as it is (`"2026-12-01"`). BC values keep their ` BC` suffix,
///   `infinity` / `-infinity` stay as they are.
/// - arrays of the built-in types (`int4[]`, `text[]`, `jsonb[]`, `timestamptz[]`, `box[]`, …), and `int2vector` /
///   `oidvector`: JSON arrays, nested for multi-dimensional arrays, elements converted by these same rules, SQL `NULL`
///   elements as `null`. Lower bounds (`[0:1]={…}`) are dropped, as `to_jsonb` drops them.
/// - everything else — `text`, `varchar`, `bpchar` (with its padding), `name`, `uuid`, `oid`, `money`, `inet`,
///   `bytea` (`"\\x0102"`), `time`, `timetz`, `interval`, ranges, multiranges, enums, and any type with a
///   user-assigned OID (domains, composites, extension types): a JSON string of the text.
///
/// Where `to_jsonb` differs from that last rule, the result differs from the trigger's: `to_jsonb` turns a composite
/// into an object and an array of composites into an array of objects, looks through a domain to its base type (a
/// domain over `int4` is a number there, a string here), and uses a type's cast to `json` when an extension type has
/// one. Values that do not read as their type's output (another `DateStyle`, say) come out as the string of the text.
public enum PgTextValue {
    /// The JSON value `to_jsonb` gives for the value whose text output is `text` and whose type is `typeOID`.
    ///
    /// - Parameters:
    ///   - text: the value as the type's output function prints it (never SQL `NULL`; the caller maps that to `.null`).
    ///   - typeOID: the column's type OID, as the Relation message gives it.
    /// - Returns: the JSON value; the string of `text` for types without a JSON form of their own, and whenever `text`
    ///   does not parse as its type's output.
    public static func json(text: String, typeOID: UInt32) -> JSONValue {
        switch typeOID {
        case OID.bool:
            switch text {
            case "t": return .bool(true)
            case "f": return .bool(false)
            default: return .string(text)
            }
        case OID.int2, OID.int4, OID.int8, OID.float4, OID.float8, OID.numeric:
            if let number = numericText(text) { return .number(number) }
            return .string(text)
        case OID.jsonb:
            do { return try JSONParser.parse(text) } catch { return .string(text) }
        case OID.json:
            do { return jsonbForm(try JSONParser.parse(text)) } catch { return .string(text) }
        case OID.timestamp:
            return .string(xsdTimestamp(text, withZone: false) ?? text)
        case OID.timestamptz:
            return .string(xsdTimestamp(text, withZone: true) ?? text)
        case OID.int2vector:
            return vector(text, elementOID: OID.int2)
        case OID.oidvector:
            return vector(text, elementOID: OID.oid)
        default:
            if let (elementOID, delimiter) = arrayTypes[typeOID] {
                if let array = parseArray(text, elementOID: elementOID, delimiter: delimiter) { return array }
            }
            return .string(text)
        }
    }

    /// `value` as `jsonb` holds it: every object's keys in `jsonb` order (shorter keys first, keys of the same length
    /// bytewise) and every number printed as `numeric` prints it (`1E2` → `100`, `-0` → `0`).
    ///
    /// `to_jsonb(row)` orders a row's columns the same way, so this also gives a row object assembled column by column
    /// the key order the trigger's payload has.
    public static func jsonbForm(_ value: JSONValue) -> JSONValue {
        switch value {
        case .null, .bool, .string: return value
        case .number(let n): return .number(numericText(n) ?? n)
        case .array(let items): return .array(items.map(jsonbForm))
        case .object(let object):
            let fields = object.fields
                .map { (key: $0.key, value: jsonbForm($0.value)) }
                .sorted { jsonbKeyPrecedes($0.key, $1.key) }
            return .object(JSONObject(fields.map { ($0.key, $0.value) }))
        }
    }

    // MARK: - Type OIDs

    enum OID {
        static let bool: UInt32 = 16
        static let int8: UInt32 = 20
        static let int2: UInt32 = 21
        static let int2vector: UInt32 = 22
        static let int4: UInt32 = 23
        static let oid: UInt32 = 26
        static let oidvector: UInt32 = 30
        static let json: UInt32 = 114
        static let float4: UInt32 = 700
        static let float8: UInt32 = 701
        static let date: UInt32 = 1082
        static let timestamp: UInt32 = 1114
        static let timestamptz: UInt32 = 1184
        static let numeric: UInt32 = 1700
        static let jsonb: UInt32 = 3802
    }

    /// PostgreSQL 15's built-in array types whose elements are not composites: array OID → (element OID, delimiter).
    static let arrayTypes: [UInt32: (UInt32, UInt8)] = {
        let comma = UInt8(ascii: ",")
        let pairs: [(UInt32, UInt32)] = [
            (143, 142), (199, 114), (271, 5069), (629, 628), (651, 650), (719, 718), (775, 774), (791, 790),
            (1000, 16), (1001, 17), (1002, 18), (1003, 19), (1005, 21), (1006, 22), (1007, 23), (1008, 24),
            (1009, 25), (1010, 27), (1011, 28), (1012, 29), (1013, 30), (1014, 1042), (1015, 1043), (1016, 20),
            (1017, 600), (1018, 601), (1019, 602), (1021, 700), (1022, 701), (1027, 604), (1028, 26),
            (1034, 1033), (1040, 829), (1041, 869), (1115, 1114), (1182, 1082), (1183, 1083), (1185, 1184),
            (1187, 1186), (1231, 1700), (1270, 1266), (1561, 1560), (1563, 1562), (2201, 1790), (2207, 2202),
            (2208, 2203), (2209, 2204), (2210, 2205), (2211, 2206), (2949, 2970), (2951, 2950), (3221, 3220),
            (3643, 3614), (3644, 3642), (3645, 3615), (3735, 3734), (3770, 3769), (3807, 3802), (3905, 3904),
            (3907, 3906), (3909, 3908), (3911, 3910), (3913, 3912), (3927, 3926), (4073, 4072), (4090, 4089),
            (4097, 4096), (4192, 4191), (5039, 5038), (6150, 4451), (6151, 4532), (6152, 4533), (6153, 4534),
            (6155, 4535), (6157, 4536),
        ]
        var table: [UInt32: (UInt32, UInt8)] = [:]
        for (array, element) in pairs { table[array] = (element, comma) }
        table[1020] = (603, UInt8(ascii: ";"))  // box[]: box's delimiter is ';'
        return table
    }()

    // MARK: - Numbers

    /// A JSON number literal printed as PostgreSQL's `numeric_out` prints `numeric_in` of it, or `nil` when `text` is
    /// not a JSON number (`NaN`, `Infinity`, …), which `to_jsonb` then gives as a string.
    static func numericText(_ text: String) -> String? {
        let b = Array(text.utf8)
        var i = 0
        func isDigit(_ i: Int) -> Bool { i < b.count && b[i] >= UInt8(ascii: "0") && b[i] <= UInt8(ascii: "9") }
        let negative = i < b.count && b[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        guard isDigit(i) else { return nil }
        var digits: [UInt8] = []
        if b[i] == UInt8(ascii: "0") {
            digits.append(b[i]); i += 1
        } else {
            while isDigit(i) { digits.append(b[i]); i += 1 }
        }
        let integerCount = digits.count
        var fractionCount = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(i) else { return nil }
            while isDigit(i) { digits.append(b[i]); i += 1; fractionCount += 1 }
        }
        var exponent = 0
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            var exponentNegative = false
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                exponentNegative = b[i] == UInt8(ascii: "-"); i += 1
            }
            guard isDigit(i) else { return nil }
            while isDigit(i) {
                exponent = exponent * 10 + Int(b[i] - UInt8(ascii: "0")); i += 1
                if exponent > 100_000 { return nil }  // numeric_in refuses exponents past ±1000 as well
            }
            if exponentNegative { exponent = -exponent }
        }
        guard i == b.count else { return nil }
        if exponent == 0, !negative || digits.contains(where: { $0 != UInt8(ascii: "0") }) {
            // Already numeric_out's form, unless it has leading zeros (JSON forbids them, float/numeric never print them).
            return text
        }
        // The decimal point sits after `point` digits; numeric keeps max(0, fractionCount - exponent) fraction digits.
        let point = integerCount + exponent
        var integerPart: [UInt8]
        var fractionPart: [UInt8]
        if point <= 0 {
            integerPart = []
            fractionPart = Array(repeating: UInt8(ascii: "0"), count: -point) + digits
        } else if point >= digits.count {
            integerPart = digits + Array(repeating: UInt8(ascii: "0"), count: point - digits.count)
            fractionPart = []
        } else {
            integerPart = Array(digits[..<point])
            fractionPart = Array(digits[point...])
        }
        if let firstNonZero = integerPart.firstIndex(where: { $0 != UInt8(ascii: "0") }) {
            integerPart.removeFirst(firstNonZero)
        } else {
            integerPart = [UInt8(ascii: "0")]
        }
        var out: [UInt8] = []
        let isZero = !digits.contains(where: { $0 != UInt8(ascii: "0") })
        if negative, !isZero { out.append(UInt8(ascii: "-")) }
        out += integerPart
        if !fractionPart.isEmpty {
            out.append(UInt8(ascii: "."))
            out += fractionPart
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - JSON

    /// Whether `a` sorts before `b` among `jsonb` object keys: the shorter first, then bytewise.
    static func jsonbKeyPrecedes(_ a: String, _ b: String) -> Bool {
        let (ca, cb) = (a.utf8.count, b.utf8.count)
        if ca != cb { return ca < cb }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    // MARK: - Date and time

    /// ISO `DateStyle` output of a `timestamp` / `timestamptz` in the XSD form `to_jsonb` uses, or `nil` if `text`
    /// is not such output. `infinity` and `-infinity` stay as they are.
    static func xsdTimestamp(_ text: String, withZone: Bool) -> String? {
        if text == "infinity" || text == "-infinity" { return text }
        let b = Array(text.utf8)
        var i = 0
        func isDigit(_ i: Int) -> Bool { i < b.count && b[i] >= UInt8(ascii: "0") && b[i] <= UInt8(ascii: "9") }
        func digits(_ n: Int) -> Bool {
            for k in 0..<n where !isDigit(i + k) { return false }
            i += n
            return true
        }
        func byte(_ c: Unicode.Scalar) -> Bool {
            guard i < b.count, b[i] == UInt8(ascii: c) else { return false }
            i += 1
            return true
        }
        // Date: a year of four or more digits, month, day.
        guard digits(4) else { return nil }
        while isDigit(i) { i += 1 }
        guard byte("-"), digits(2), byte("-"), digits(2) else { return nil }
        let separator = i
        guard byte(" "), digits(2), byte(":"), digits(2), byte(":"), digits(2) else { return nil }
        if byte(".") {
            guard isDigit(i) else { return nil }
            while isDigit(i) { i += 1 }
        }
        var out = Array(b[..<separator])
        out.append(UInt8(ascii: "T"))
        out += b[(separator + 1)..<i]
        if withZone {
            let sign = i
            guard byte("+") || byte("-"), digits(2) else { return nil }
            if byte(":") {
                guard digits(2) else { return nil }
                if byte(":") { guard digits(2) else { return nil } }
                out += b[sign..<i]
            } else {
                out += b[sign..<i]
                out += Array(":00".utf8)
            }
        }
        let rest = b[i...]
        guard rest.isEmpty || rest.elementsEqual(" BC".utf8) else { return nil }
        out += rest
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Arrays

    /// `int2vector` / `oidvector` output (`1 2 3`, space-separated) as a JSON array.
    static func vector(_ text: String, elementOID: UInt32) -> JSONValue {
        let parts = text.utf8.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
        var items: [JSONValue] = []
        for part in parts {
            let element = String(decoding: part, as: UTF8.self)
            guard element.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") || $0 == UInt8(ascii: "-") })
            else { return .string(text) }
            items.append(json(text: element, typeOID: elementOID))
        }
        return .array(items)
    }

    /// PostgreSQL array output (`{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`, `[0:1]={5,6}`) as nested JSON
    /// arrays with elements converted by `elementOID`, or `nil` if `text` is not array output.
    static func parseArray(_ text: String, elementOID: UInt32, delimiter: UInt8) -> JSONValue? {
        var parser = ArrayParser(bytes: Array(text.utf8), delimiter: delimiter)
        guard let value = parser.parse(elementOID: elementOID) else { return nil }
        return value
    }

    struct ArrayParser {
        let bytes: [UInt8]
        let delimiter: UInt8
        var index = 0
        static let maxDepth = 6  // PostgreSQL's MAXDIM

        init(bytes: [UInt8], delimiter: UInt8) {
            self.bytes = bytes
            self.delimiter = delimiter
        }

        mutating func parse(elementOID: UInt32) -> JSONValue? {
            // Dimension decoration, printed when a lower bound is not 1: `[0:1][1:2]=`.
            if index < bytes.count, bytes[index] == UInt8(ascii: "[") {
                guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return nil }
                for b in bytes[..<equals] {
                    guard b == UInt8(ascii: "[") || b == UInt8(ascii: "]") || b == UInt8(ascii: ":")
                        || b == UInt8(ascii: "-") || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                    else { return nil }
                }
                index = equals + 1
            }
            guard let value = level(elementOID: elementOID, depth: 1), index == bytes.count else { return nil }
            return value
        }

        private mutating func level(elementOID: UInt32, depth: Int) -> JSONValue? {
            guard depth <= Self.maxDepth, index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
            index += 1
            var items: [JSONValue] = []
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .array(items)
            }
            while true {
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: "{") {
                    guard let sub = level(elementOID: elementOID, depth: depth + 1) else { return nil }
                    items.append(sub)
                } else if bytes[index] == UInt8(ascii: "\"") {
                    guard let element = quoted() else { return nil }
                    items.append(PgTextValue.json(text: element, typeOID: elementOID))
                } else {
                    guard let (element, escaped) = unquoted() else { return nil }
                    if !escaped, element.utf8.count == 4, element.uppercased() == "NULL" {
                        items.append(.null)
                    } else {
                        items.append(PgTextValue.json(text: element, typeOID: elementOID))
                    }
                }
                guard index < bytes.count else { return nil }
                if bytes[index] == delimiter { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .array(items) }
                return nil
            }
        }

        private mutating func quoted() -> String? {
            index += 1
            var out: [UInt8] = []
            while index < bytes.count {
                let b = bytes[index]
                if b == UInt8(ascii: "\"") {
                    index += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if b == UInt8(ascii: "\\") {
                    index += 1
                    guard index < bytes.count else { return nil }
                }
                out.append(bytes[index])
                index += 1
            }
            return nil
        }

        /// An unquoted element up to the next delimiter or `}`; also whether it held a backslash escape (an escaped
        /// `NULL` is the text, not SQL NULL).
        private mutating func unquoted() -> (String, Bool)? {
            var out: [UInt8] = []
            var escaped = false
            while index < bytes.count {
                let b = bytes[index]
                if b == delimiter || b == UInt8(ascii: "}") { break }
                if b == UInt8(ascii: "{") || b == UInt8(ascii: "\"") { return nil }
                if b == UInt8(ascii: "\\") {
                    escaped = true
                    index += 1
                    guard index < bytes.count else { return nil }
                }
                out.append(bytes[index])
                index += 1
            }
            guard !out.isEmpty else { return nil }  // array_out quotes empty strings
            return (String(decoding: out, as: UTF8.self), escaped)
        }
    }
}
