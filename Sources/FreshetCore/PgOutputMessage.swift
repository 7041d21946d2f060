/// One column value of a pgoutput TupleData submessage.
public enum TupleValue: Sendable, Equatable {
    /// `n`: SQL NULL. In a `K` (key) old tuple, a non-identity column also arrives as `.null`: "not sent".
    case null
    /// `u`: an unchanged TOASTed value that was not sent.
    case unchangedToast
    /// `t`: the value in PostgreSQL's text output format (client encoding, normally UTF-8), without NUL.
    case text([UInt8])
    /// `b`: the value in binary format (only with the `binary` option, never requested by Freshet).
    case binary([UInt8])

    /// The `.text` value as a String (nil for other kinds or invalid UTF-8).
    public var string: String? {
        guard case let .text(bytes) = self else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// A row image: one value per column, in the Relation's column order.
public typealias TupleData = [TupleValue]

/// One logical-replication message of the pgoutput plugin, protocol version 1 (protocol-logicalrep-message-formats),
/// i.e. the `data` of a `ReplicationMessage.xLogData`. Times are PostgreSQL µs since 2000-01-01 UTC.
/// Streaming (`S`/`E`/`c`/`A`) and two-phase messages are not decoded: they throw `.unknownTag`.
public enum PgOutputMessage: Sendable, Equatable {
    /// `B`: a transaction starts. `finalLSN` is its commit record's LSN.
    case begin(finalLSN: LSN, commitTime: Int64, xid: UInt32)
    /// `C`: the transaction commits. `endLSN` is the end of its commit record.
    case commit(flags: UInt8, commitLSN: LSN, endLSN: LSN, commitTime: Int64)
    /// `O`: the transaction came from another node (replication origin).
    case origin(commitLSN: LSN, name: String)
    /// `R`: a table's shape; sent before its first change and after DDL. Cache by `id`, replacing older entries.
    case relation(Relation)
    /// `Y`: a non-built-in type. `namespace` "" means `pg_catalog`.
    case type(id: UInt32, namespace: String, name: String)
    /// `I`: a row was inserted into `relation`.
    case insert(relation: UInt32, new: TupleData)
    /// `U`: a row was updated. `old` is present, with its `oldKind`, only when the server sent it:
    /// `.key` when an identity column changed (DEFAULT/INDEX identity), `.full` always under REPLICA IDENTITY FULL.
    case update(relation: UInt32, old: TupleData?, oldKind: OldTupleKind?, new: TupleData)
    /// `D`: a row was deleted; `old` holds the identity columns (`.key`) or the whole row (`.full`).
    case delete(relation: UInt32, old: TupleData, oldKind: OldTupleKind)
    /// `T`: the relations were truncated.
    case truncate(options: TruncateOptions, relations: [UInt32])
    /// `M`: a `pg_logical_emit_message` (only with `messages 'true'`).
    case message(transactional: Bool, lsn: LSN, prefix: String, content: [UInt8])

    /// Which old-row image an Update or Delete carries.
    public enum OldTupleKind: UInt8, Sendable, Equatable {
        /// `K`: the replica-identity columns; the other columns are `.null` meaning "not sent".
        case key = 0x4B
        /// `O`: the whole old row (REPLICA IDENTITY FULL).
        case full = 0x4F
    }

    /// `pg_class.relreplident`.
    public enum ReplicaIdentity: UInt8, Sendable, Equatable {
        /// `d`: the primary key.
        case `default` = 0x64
        /// `n`: nothing.
        case nothing = 0x6E
        /// `f`: the whole row.
        case full = 0x66
        /// `i`: a unique index (`USING INDEX`).
        case index = 0x69
    }

    /// TRUNCATE options.
    public struct TruncateOptions: OptionSet, Sendable, Hashable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `TRUNCATE … CASCADE`.
        public static let cascade = TruncateOptions(rawValue: 1)
        /// `TRUNCATE … RESTART IDENTITY`.
        public static let restartIdentity = TruncateOptions(rawValue: 2)
    }

    /// A column of a Relation message.
    public struct Column: Sendable, Equatable {
        /// Bit 1: part of the replica identity (every column under FULL).
        public var flags: UInt8
        public var name: String
        public var typeOID: UInt32
        /// `atttypmod`; -1 when the type has none.
        public var typeModifier: Int32

        /// Whether the column is part of the replica identity.
        public var isKey: Bool { flags & 1 != 0 }

        public init(flags: UInt8, name: String, typeOID: UInt32, typeModifier: Int32) {
            self.flags = flags
            self.name = name
            self.typeOID = typeOID
            self.typeModifier = typeModifier
        }
    }

    /// The body of a Relation (`R`) message.
    public struct Relation: Sendable, Equatable {
        /// The table's OID (`pg_class.oid`), the key Insert/Update/Delete/Truncate refer to.
        public var id: UInt32
        /// Schema name; "" means `pg_catalog`.
        public var namespace: String
        public var name: String
        public var replicaIdentity: ReplicaIdentity
        public var columns: [Column]

        public init(id: UInt32, namespace: String, name: String, replicaIdentity: ReplicaIdentity, columns: [Column]) {
            self.id = id
            self.namespace = namespace
            self.name = name
            self.replicaIdentity = replicaIdentity
            self.columns = columns
        }
    }

    /// Decodes one pgoutput v1 message. The whole buffer must be consumed: trailing bytes throw.
    /// Column counts are not checked against the Relation; the caller's relation cache must do that.
    public static func decode(_ bytes: [UInt8]) throws(PgOutputError) -> PgOutputMessage {
        try decode(bytes[...])
    }

    /// Decodes one pgoutput v1 message from a slice; error offsets count from the slice's start.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws(PgOutputError) -> PgOutputMessage {
        var reader = PgWireReader(bytes)
        let message = try decode(&reader)
        try reader.expectEnd()
        return message
    }

    private static func decode(_ r: inout PgWireReader) throws(PgOutputError) -> PgOutputMessage {
        let tagOffset = r.offset
        let tag = try r.uint8()
        switch tag {
        case UInt8(ascii: "B"):
            let lsn = try r.lsn()
            let time = try r.int64()
            return .begin(finalLSN: lsn, commitTime: time, xid: try r.uint32())
        case UInt8(ascii: "C"):
            let flags = try r.uint8()
            let commit = try r.lsn()
            let end = try r.lsn()
            return .commit(flags: flags, commitLSN: commit, endLSN: end, commitTime: try r.int64())
        case UInt8(ascii: "O"):
            let lsn = try r.lsn()
            return .origin(commitLSN: lsn, name: try r.cString())
        case UInt8(ascii: "R"):
            return .relation(try relation(&r))
        case UInt8(ascii: "Y"):
            let id = try r.uint32()
            let namespace = try r.cString()
            return .type(id: id, namespace: namespace, name: try r.cString())
        case UInt8(ascii: "I"):
            let relation = try r.uint32()
            try expectMarker(&r, UInt8(ascii: "N"))
            return .insert(relation: relation, new: try tuple(&r))
        case UInt8(ascii: "U"):
            let relation = try r.uint32()
            let markerOffset = r.offset
            var old: TupleData?
            var kind: OldTupleKind?
            var marker = try r.uint8()
            if let oldKind = OldTupleKind(rawValue: marker) {
                kind = oldKind
                old = try tuple(&r)
                marker = try r.uint8()
            }
            guard marker == UInt8(ascii: "N") else {
                throw PgOutputError(.unknownTupleMarker(marker), at: kind == nil ? markerOffset : r.offset - 1)
            }
            return .update(relation: relation, old: old, oldKind: kind, new: try tuple(&r))
        case UInt8(ascii: "D"):
            let relation = try r.uint32()
            let markerOffset = r.offset
            let marker = try r.uint8()
            guard let kind = OldTupleKind(rawValue: marker) else {
                throw PgOutputError(.unknownTupleMarker(marker), at: markerOffset)
            }
            return .delete(relation: relation, old: try tuple(&r), oldKind: kind)
        case UInt8(ascii: "T"):
            let count = try r.count32()
            let options = TruncateOptions(rawValue: try r.uint8())
            var relations: [UInt32] = []
            relations.reserveCapacity(min(count, r.remaining / 4))
            for _ in 0..<count { relations.append(try r.uint32()) }
            return .truncate(options: options, relations: relations)
        case UInt8(ascii: "M"):
            let flags = try r.uint8()
            let lsn = try r.lsn()
            let prefix = try r.cString()
            let length = try r.count32()
            return .message(transactional: flags & 1 != 0, lsn: lsn, prefix: prefix, content: try r.bytes(length))
        default:
            throw PgOutputError(.unknownTag(tag), at: tagOffset)
        }
    }

    private static func expectMarker(_ r: inout PgWireReader, _ expected: UInt8) throws(PgOutputError) {
        let offset = r.offset
        let marker = try r.uint8()
        if marker != expected { throw PgOutputError(.unknownTupleMarker(marker), at: offset) }
    }

    private static func relation(_ r: inout PgWireReader) throws(PgOutputError) -> Relation {
        let id = try r.uint32()
        let namespace = try r.cString()
        let name = try r.cString()
        let identityOffset = r.offset
        let identityByte = try r.uint8()
        guard let identity = ReplicaIdentity(rawValue: identityByte) else {
            throw PgOutputError(.unknownReplicaIdentity(identityByte), at: identityOffset)
        }
        let count = try r.count16()
        var columns: [Column] = []
        columns.reserveCapacity(min(count, r.remaining / 10))
        for _ in 0..<count {
            let flags = try r.uint8()
            let name = try r.cString()
            let oid = try r.uint32()
            columns.append(Column(flags: flags, name: name, typeOID: oid, typeModifier: try r.int32()))
        }
        return Relation(id: id, namespace: namespace, name: name, replicaIdentity: identity, columns: columns)
    }

    private static func tuple(_ r: inout PgWireReader) throws(PgOutputError) -> TupleData {
        let count = try r.count16()
        var values: TupleData = []
        values.reserveCapacity(min(count, r.remaining))
        for _ in 0..<count {
            let kindOffset = r.offset
            switch try r.uint8() {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchangedToast)
            case UInt8(ascii: "t"): values.append(.text(try r.bytes(try r.count32())))
            case UInt8(ascii: "b"): values.append(.binary(try r.bytes(try r.count32())))
            case let kind: throw PgOutputError(.unknownTupleKind(kind), at: kindOffset)
            }
        }
        return values
    }
}
