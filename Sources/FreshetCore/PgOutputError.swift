/// A failure to decode a replication-stream or pgoutput message.
///
/// `offset` is the byte offset, from the start of the decoded buffer, where the problem was found.
/// Decoders throw this for truncated, malformed or unsupported input; they never trap or read out of bounds.
public struct PgOutputError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Reason: Sendable, Equatable {
        /// The input ended early: `needed` more bytes were required, only `available` remained.
        case truncated(needed: Int, available: Int)
        /// The message tag is unknown, or belongs to a protocol version or option Freshet does not request.
        case unknownTag(UInt8)
        /// A TupleData column kind other than `n`, `u`, `t`, `b`.
        case unknownTupleKind(UInt8)
        /// In Update/Delete, a submessage marker other than `K`, `O` (or `N` for Update).
        case unknownTupleMarker(UInt8)
        /// A Relation's replica identity other than `d`, `n`, `f`, `i`.
        case unknownReplicaIdentity(UInt8)
        /// A string had no terminating NUL byte.
        case unterminatedString
        /// A string was not valid UTF-8.
        case invalidUTF8
        /// A count or length field was negative.
        case negativeLength(Int)
        /// Bytes were left over after a complete message.
        case trailingBytes(Int)
    }

    /// What went wrong.
    public var reason: Reason
    /// Byte offset in the decoded buffer.
    public var offset: Int

    public init(_ reason: Reason, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String {
        let what: String
        switch reason {
        case let .truncated(needed, available):
            what = "truncated message: needed \(needed) byte(s), \(available) left"
        case let .unknownTag(tag): what = "unknown message tag \(Self.show(tag))"
        case let .unknownTupleKind(kind): what = "unknown tuple column kind \(Self.show(kind))"
        case let .unknownTupleMarker(marker): what = "unexpected tuple marker \(Self.show(marker))"
        case let .unknownReplicaIdentity(value): what = "unknown replica identity \(Self.show(value))"
        case .unterminatedString: what = "string without terminating NUL"
        case .invalidUTF8: what = "string is not valid UTF-8"
        case let .negativeLength(value): what = "negative count or length \(value)"
        case let .trailingBytes(count): what = "\(count) unexpected trailing byte(s)"
        }
        return "pgoutput: \(what) at offset \(offset)"
    }

    /// `'x' (0x78)` for printable ASCII, else `0x00`.
    private static func show(_ byte: UInt8) -> String {
        let hex = "0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        return (0x20..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))' (\(hex))" : hex
    }
}

/// A bounds-checked big-endian reader over a byte slice. Every read throws instead of trapping.
struct PgWireReader {
    private let bytes: ArraySlice<UInt8>
    private var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    /// Offset from the start of the buffer.
    var offset: Int { index - bytes.startIndex }
    /// Bytes not read yet.
    var remaining: Int { bytes.endIndex - index }

    func error(_ reason: PgOutputError.Reason) -> PgOutputError { PgOutputError(reason, at: offset) }

    private func need(_ count: Int) throws(PgOutputError) {
        if count > remaining { throw error(.truncated(needed: count, available: remaining)) }
    }

    mutating func uint8() throws(PgOutputError) -> UInt8 {
        try need(1)
        defer { index += 1 }
        return bytes[index]
    }

    private mutating func bigEndian(_ width: Int) throws(PgOutputError) -> UInt64 {
        try need(width)
        var value: UInt64 = 0
        for i in index..<(index + width) { value = value << 8 | UInt64(bytes[i]) }
        index += width
        return value
    }

    mutating func uint16() throws(PgOutputError) -> UInt16 { UInt16(truncatingIfNeeded: try bigEndian(2)) }
    mutating func int16() throws(PgOutputError) -> Int16 { Int16(bitPattern: try uint16()) }
    mutating func uint32() throws(PgOutputError) -> UInt32 { UInt32(truncatingIfNeeded: try bigEndian(4)) }
    mutating func int32() throws(PgOutputError) -> Int32 { Int32(bitPattern: try uint32()) }
    mutating func uint64() throws(PgOutputError) -> UInt64 { try bigEndian(8) }
    mutating func int64() throws(PgOutputError) -> Int64 { Int64(bitPattern: try uint64()) }
    mutating func lsn() throws(PgOutputError) -> LSN { LSN(try uint64()) }

    /// A signed 16-bit count that must not be negative.
    mutating func count16() throws(PgOutputError) -> Int {
        let start = offset
        let value = Int(try int16())
        if value < 0 { throw PgOutputError(.negativeLength(value), at: start) }
        return value
    }

    /// A signed 32-bit count or length that must not be negative.
    mutating func count32() throws(PgOutputError) -> Int {
        let start = offset
        let value = Int(try int32())
        if value < 0 { throw PgOutputError(.negativeLength(value), at: start) }
        return value
    }

    mutating func bytes(_ count: Int) throws(PgOutputError) -> [UInt8] {
        try need(count)
        defer { index += count }
        return Array(bytes[index..<(index + count)])
    }

    /// The rest of the buffer.
    mutating func rest() -> [UInt8] {
        defer { index = bytes.endIndex }
        return Array(bytes[index...])
    }

    /// A NUL-terminated UTF-8 string; the NUL is consumed.
    mutating func cString() throws(PgOutputError) -> String {
        guard let nul = bytes[index...].firstIndex(of: 0) else { throw error(.unterminatedString) }
        guard let string = String(validating: bytes[index..<nul], as: UTF8.self) else {
            throw error(.invalidUTF8)
        }
        index = nul + 1
        return string
    }

    /// Throws unless every byte was consumed.
    func expectEnd() throws(PgOutputError) {
        if remaining > 0 { throw error(.trailingBytes(remaining)) }
    }
}
