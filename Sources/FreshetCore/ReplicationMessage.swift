/// A PostgreSQL write-ahead-log position (`pg_lsn`): a byte offset into the WAL.
///
/// Its text form is PostgreSQL's `%X/%X`: upper-case hex of the high and low 32 bits, without zero padding
/// (`0/0`, `16/B374D848`, `0/16B3748`).
public struct LSN: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The 64-bit position.
    public var value: UInt64

    /// `0/0`, the invalid LSN; in `START_REPLICATION` it means "from the slot's confirmed position".
    public static let zero = LSN(0)

    public init(_ value: UInt64) { self.value = value }

    /// Parses `X/X` as PostgreSQL's `pg_lsn` input does: 1–8 hex digits (any case) on each side, nothing else.
    public init?(parsing text: some StringProtocol) {
        let parts = text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 2, let high = Self.hex32(parts[0]), let low = Self.hex32(parts[1]) else { return nil }
        value = UInt64(high) << 32 | UInt64(low)
    }

    private static func hex32(_ digits: some Collection<UInt8>) -> UInt32? {
        guard (1...8).contains(digits.count) else { return nil }
        var value: UInt32 = 0
        for byte in digits {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/"
            + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }
}

/// PostgreSQL's replication clock: microseconds since 2000-01-01 00:00:00 UTC.
public enum PostgresClock {
    /// Unix microseconds at 2000-01-01 00:00:00 UTC.
    public static let unixOffsetMicroseconds: Int64 = 946_684_800_000_000

    /// Unix µs → PostgreSQL µs.
    public static func postgresMicroseconds(unixMicroseconds: Int64) -> Int64 {
        unixMicroseconds &- unixOffsetMicroseconds
    }

    /// PostgreSQL µs (e.g. a commit time or `sendTime`) → Unix µs.
    public static func unixMicroseconds(postgresMicroseconds: Int64) -> Int64 {
        postgresMicroseconds &+ unixOffsetMicroseconds
    }
}

/// One CopyData payload the server sends after `START_REPLICATION … LOGICAL` (protocol-replication).
/// Times are PostgreSQL µs since 2000-01-01 UTC (see `PostgresClock`).
public enum ReplicationMessage: Sendable, Equatable {
    /// `w`: WAL data. With pgoutput, `data` is exactly one pgoutput message (`PgOutputMessage.decode`).
    case xLogData(start: LSN, end: LSN, sendTime: Int64, data: [UInt8])
    /// `k`: primary keepalive. `replyRequested` means: send a status update now.
    case keepalive(end: LSN, sendTime: Int64, replyRequested: Bool)

    /// Parses one CopyData payload (the bytes `PQgetCopyData` returns).
    /// A keepalive must be exactly 18 bytes; any other tag throws `.unknownTag`.
    public static func parse(_ bytes: [UInt8]) throws(PgOutputError) -> ReplicationMessage {
        try parse(bytes[...])
    }

    /// Parses one CopyData payload from a borrowed buffer (e.g. libpq's); `data` is copied out.
    public static func parse(_ buffer: UnsafeRawBufferPointer) throws(PgOutputError) -> ReplicationMessage {
        try parse(Array(buffer)[...])
    }

    /// Parses one CopyData payload from a slice; offsets in errors count from the slice's start.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(PgOutputError) -> ReplicationMessage {
        var reader = PgWireReader(bytes)
        let tagOffset = reader.offset
        switch try reader.uint8() {
        case UInt8(ascii: "w"):
            let start = try reader.lsn()
            let end = try reader.lsn()
            let sendTime = try reader.int64()
            return .xLogData(start: start, end: end, sendTime: sendTime, data: reader.rest())
        case UInt8(ascii: "k"):
            let end = try reader.lsn()
            let sendTime = try reader.int64()
            let reply = try reader.uint8()
            try reader.expectEnd()
            return .keepalive(end: end, sendTime: sendTime, replyRequested: reply != 0)
        case let tag:
            throw PgOutputError(.unknownTag(tag), at: tagOffset)
        }
    }
}

/// The client's Standby Status Update (`r`), sent with `PQputCopyData`.
public enum StandbyStatus {
    /// Size of the message: tag + 4 × Int64 + Byte1.
    public static let size = 34

    /// The 34-byte `r` message. Each LSN is "last WAL byte + 1" received / flushed / applied; only `flush`
    /// advances the slot's `confirmed_flush_lsn`. `unixMicroseconds` is the current time (injectable clock),
    /// sent as PostgreSQL µs since 2000-01-01. `replyRequested` asks the server to answer with a keepalive.
    public static func update(
        write: LSN, flush: LSN, apply: LSN, unixMicroseconds: Int64, replyRequested: Bool = false
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(size)
        out.append(UInt8(ascii: "r"))
        let clock = UInt64(bitPattern: PostgresClock.postgresMicroseconds(unixMicroseconds: unixMicroseconds))
        for value in [write.value, flush.value, apply.value, clock] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        }
        out.append(replyRequested ? 1 : 0)
        return out
    }
}
