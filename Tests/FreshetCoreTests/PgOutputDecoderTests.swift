import FreshetCore
import Testing

/// Builds wire messages byte by byte, big-endian, as the server would send them.
private struct WireBuilder {
    var bytes: [UInt8] = []

    @discardableResult mutating func byte(_ value: UInt8) -> Self { bytes.append(value); return self }
    mutating func char(_ value: Character) { bytes.append(value.asciiValue!) }
    mutating func int(_ value: UInt64, width: Int) {
        for shift in stride(from: (width - 1) * 8, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }
    mutating func int16(_ value: Int16) { int(UInt64(UInt16(bitPattern: value)), width: 2) }
    mutating func int32(_ value: Int32) { int(UInt64(UInt32(bitPattern: value)), width: 4) }
    mutating func uint32(_ value: UInt32) { int(UInt64(value), width: 4) }
    mutating func int64(_ value: Int64) { int(UInt64(bitPattern: value), width: 8) }
    mutating func uint64(_ value: UInt64) { int(value, width: 8) }
    mutating func string(_ value: String) { bytes += Array(value.utf8) + [0] }
    mutating func tuple(_ values: [TupleValue]) {
        int16(Int16(values.count))
        for value in values {
            switch value {
            case .null: char("n")
            case .unchangedToast: char("u")
            case let .text(data): char("t"); int32(Int32(data.count)); bytes += data
            case let .binary(data): char("b"); int32(Int32(data.count)); bytes += data
            }
        }
    }

    static func build(_ body: (inout WireBuilder) -> Void) -> [UInt8] {
        var builder = WireBuilder()
        body(&builder)
        return builder.bytes
    }
}

private let highLSN = LSN(0xFFFF_FFFF_0000_0001)
private let highTime: Int64 = -0x0123_4567_89AB_CDEF
private let sampleTuple: TupleData = [.text(Array("42".utf8)), .null, .unchangedToast, .binary([0xFF, 0x00, 0x80]), .text([])]
private let keyTuple: TupleData = [.text(Array("42".utf8)), .null, .null, .null, .null]

/// One valid encoded message of every kind, with the value it must decode to.
private let samples: [(name: String, bytes: [UInt8], expected: PgOutputMessage)] = [
    ("begin", WireBuilder.build { w in w.char("B"); w.uint64(highLSN.value); w.int64(highTime); w.uint32(0xFFFF_FFFE) },
     .begin(finalLSN: highLSN, commitTime: highTime, xid: 0xFFFF_FFFE)),
    ("commit", WireBuilder.build { w in w.char("C"); w.byte(0); w.uint64(highLSN.value); w.uint64(0x8000_0000_0000_0000); w.int64(812_345_678_901_234) },
     .commit(flags: 0, commitLSN: highLSN, endLSN: LSN(0x8000_0000_0000_0000), commitTime: 812_345_678_901_234)),
    ("origin", WireBuilder.build { w in w.char("O"); w.uint64(0x16_B374_D848); w.string("node-é") },
     .origin(commitLSN: LSN(0x16_B374_D848), name: "node-é")),
    ("relation", WireBuilder.build { w in
        w.char("R"); w.uint32(0x8000_4001); w.string("billing"); w.string("invoices"); w.char("f"); w.int16(3)
        w.byte(1); w.string("id"); w.uint32(20); w.int32(-1)
        w.byte(0); w.string("amount"); w.uint32(1700); w.int32(0x000A_0006)
        w.byte(0); w.string("note"); w.uint32(0xFFFF_FFF0); w.int32(Int32.min)
    }, .relation(.init(id: 0x8000_4001, namespace: "billing", name: "invoices", replicaIdentity: .full, columns: [
        .init(flags: 1, name: "id", typeOID: 20, typeModifier: -1),
        .init(flags: 0, name: "amount", typeOID: 1700, typeModifier: 0x000A_0006),
        .init(flags: 0, name: "note", typeOID: 0xFFFF_FFF0, typeModifier: Int32.min),
    ]))),
    ("type", WireBuilder.build { w in w.char("Y"); w.uint32(0xF000_0001); w.string(""); w.string("mood") },
     .type(id: 0xF000_0001, namespace: "", name: "mood")),
    ("insert", WireBuilder.build { w in w.char("I"); w.uint32(16_385); w.char("N"); w.tuple(sampleTuple) },
     .insert(relation: 16_385, new: sampleTuple)),
    ("update-none", WireBuilder.build { w in w.char("U"); w.uint32(16_385); w.char("N"); w.tuple(sampleTuple) },
     .update(relation: 16_385, old: nil, oldKind: nil, new: sampleTuple)),
    ("update-key", WireBuilder.build { w in w.char("U"); w.uint32(16_385); w.char("K"); w.tuple(keyTuple); w.char("N"); w.tuple(sampleTuple) },
     .update(relation: 16_385, old: keyTuple, oldKind: .key, new: sampleTuple)),
    ("update-old", WireBuilder.build { w in w.char("U"); w.uint32(0xFFFF_FFFF); w.char("O"); w.tuple(sampleTuple); w.char("N"); w.tuple(keyTuple) },
     .update(relation: 0xFFFF_FFFF, old: sampleTuple, oldKind: .full, new: keyTuple)),
    ("delete-key", WireBuilder.build { w in w.char("D"); w.uint32(16_385); w.char("K"); w.tuple(keyTuple) },
     .delete(relation: 16_385, old: keyTuple, oldKind: .key)),
    ("delete-old", WireBuilder.build { w in w.char("D"); w.uint32(16_385); w.char("O"); w.tuple(sampleTuple) },
     .delete(relation: 16_385, old: sampleTuple, oldKind: .full)),
    ("truncate", WireBuilder.build { w in w.char("T"); w.int32(3); w.byte(3); w.uint32(1); w.uint32(0x8000_0000); w.uint32(0xFFFF_FFFF) },
     .truncate(options: [.cascade, .restartIdentity], relations: [1, 0x8000_0000, 0xFFFF_FFFF])),
    ("message", WireBuilder.build { w in w.char("M"); w.byte(1); w.uint64(highLSN.value); w.string("freshet"); w.int32(4); w.bytes += [0, 1, 0xFE, 0xFF] },
     .message(transactional: true, lsn: highLSN, prefix: "freshet", content: [0, 1, 0xFE, 0xFF])),
]

@Suite struct PgOutputDecoderTests {
    @Test func decodesEveryMessageKind() throws {
        for sample in samples {
            let decoded = try PgOutputMessage.decode(sample.bytes)
            #expect(decoded == sample.expected, "\(sample.name)")
        }
    }

    @Test func decodesFromAnOffsetSlice() throws {
        for sample in samples {
            let padded = [0xAA, 0xBB] + sample.bytes
            #expect(try PgOutputMessage.decode(padded[2...]) == sample.expected, "\(sample.name)")
        }
    }

    @Test func relationFieldsAndKeyFlag() throws {
        let message = try PgOutputMessage.decode(samples[3].bytes)
        guard case let .relation(relation) = message else { Issue.record("not a relation"); return }
        #expect(relation.columns.map(\.isKey) == [true, false, false])
        #expect(relation.replicaIdentity.rawValue == UInt8(ascii: "f"))
    }

    @Test func tupleKinds() {
        #expect(TupleValue.text(Array("héllo".utf8)).string == "héllo")
        #expect(TupleValue.null.string == nil)
        #expect(TupleValue.text([0xFF]).string == nil)
    }

    @Test func everyProperPrefixThrows() {
        for sample in samples {
            for length in 0..<sample.bytes.count {
                #expect(throws: PgOutputError.self, "\(sample.name) prefix \(length)") {
                    try PgOutputMessage.decode(Array(sample.bytes[..<length]))
                }
            }
        }
    }

    @Test func trailingBytesThrow() {
        for sample in samples {
            #expect(throws: PgOutputError.self) { try PgOutputMessage.decode(sample.bytes + [0]) }
        }
    }

    @Test func malformedInputReportsReasonAndOffset() {
        func reason(_ bytes: [UInt8]) -> PgOutputError? {
            do { _ = try PgOutputMessage.decode(bytes); return nil } catch { return error }
        }
        #expect(reason([]) == PgOutputError(.truncated(needed: 1, available: 0), at: 0))
        #expect(reason(Array("S".utf8))?.reason == .unknownTag(UInt8(ascii: "S")))
        #expect(reason(WireBuilder.build { w in w.char("I"); w.uint32(1); w.char("N"); w.int16(1); w.char("x") })
            == PgOutputError(.unknownTupleKind(UInt8(ascii: "x")), at: 8))
        #expect(reason(WireBuilder.build { w in w.char("I"); w.uint32(1); w.char("K"); w.int16(0) })?.reason
            == .unknownTupleMarker(UInt8(ascii: "K")))
        #expect(reason(WireBuilder.build { w in w.char("U"); w.uint32(1); w.char("K"); w.int16(0); w.char("K"); w.int16(0) })
            == PgOutputError(.unknownTupleMarker(UInt8(ascii: "K")), at: 8))
        #expect(reason(WireBuilder.build { w in w.char("D"); w.uint32(1); w.char("N"); w.int16(0) })?.reason
            == .unknownTupleMarker(UInt8(ascii: "N")))
        #expect(reason(WireBuilder.build { w in w.char("Y"); w.uint32(1); w.bytes += Array("abc".utf8) })
            == PgOutputError(.unterminatedString, at: 5))
        #expect(reason(WireBuilder.build { w in w.char("Y"); w.uint32(1); w.bytes += [0xC3, 0x28, 0]; w.string("") })?.reason
            == .invalidUTF8)
        #expect(reason(WireBuilder.build { w in w.char("I"); w.uint32(1); w.char("N"); w.int16(-1) })?.reason
            == .negativeLength(-1))
        #expect(reason(WireBuilder.build { w in w.char("I"); w.uint32(1); w.char("N"); w.int16(1); w.char("t"); w.int32(Int32.max) })?.reason
            == .truncated(needed: Int(Int32.max), available: 0))
        #expect(reason(WireBuilder.build { w in w.char("T"); w.int32(Int32.max); w.byte(0) })?.reason
            == .truncated(needed: 4, available: 0))
        #expect(reason(WireBuilder.build { w in w.char("R"); w.uint32(1); w.string("s"); w.string("t"); w.char("x"); w.int16(0) })?.reason
            == .unknownReplicaIdentity(UInt8(ascii: "x")))
        #expect(PgOutputError(.unknownTag(0x53), at: 0).description == "pgoutput: unknown message tag 'S' (0x53) at offset 0")
    }

    @Test func randomBytesNeverCrash() {
        var rng = SplitMix64(seed: 0x5EED)
        let tags = Array("BCORYIUDTMwkSx".utf8)
        for round in 0..<20_000 {
            let length = Int(rng.next() % 64)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if !bytes.isEmpty, round % 2 == 0 { bytes[0] = tags[Int(rng.next() % UInt64(tags.count))] }
            _ = try? PgOutputMessage.decode(bytes)
            _ = try? ReplicationMessage.parse(bytes)
        }
        // Mutations of valid messages reach deeper into each decoder.
        for round in 0..<20_000 {
            var bytes = samples[round % samples.count].bytes
            let flips = 1 + Int(rng.next() % 3)
            for _ in 0..<flips { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            _ = try? PgOutputMessage.decode(bytes)
        }
    }
}

@Suite struct ReplicationMessageTests {
    @Test func lsnTextRoundTrip() {
        #expect(LSN.zero.description == "0/0")
        #expect(LSN(parsing: "0/0") == LSN.zero)
        #expect(LSN(parsing: "16/B374D848") == LSN(0x16_B374_D848))
        #expect(LSN(0x16_B374_D848).description == "16/B374D848")
        #expect(LSN(0x16B_3748).description == "0/16B3748")
        #expect(LSN(parsing: "ffffffff/ffffffff") == LSN(UInt64.max))
        #expect(LSN(UInt64.max).description == "FFFFFFFF/FFFFFFFF")
        for bad in ["", "/", "0/", "/0", "0", "0/0/0", "123456789/0", "0/123456789", " 0/0", "0/0 ", "g/0", "-1/0", "+1/0"] {
            #expect(LSN(parsing: bad) == nil, "\(bad)")
        }
        #expect(LSN(1) < LSN(0xFFFF_FFFF_0000_0000))
    }

    @Test func parsesXLogData() throws {
        let payload = samples[0].bytes
        let bytes = WireBuilder.build { w in w.char("w"); w.uint64(highLSN.value); w.uint64(0x16_B374_D848); w.int64(highTime); w.bytes += payload }
        let message = try ReplicationMessage.parse(bytes)
        #expect(message == .xLogData(start: highLSN, end: LSN(0x16_B374_D848), sendTime: highTime, data: payload))
        let borrowed = try bytes.withUnsafeBytes { buffer throws(PgOutputError) in try ReplicationMessage.parse(buffer) }
        #expect(borrowed == message)
        for length in 0..<25 {
            #expect(throws: PgOutputError.self) { try ReplicationMessage.parse(Array(bytes[..<length])) }
        }
        #expect(try ReplicationMessage.parse(Array(bytes[..<25])) == .xLogData(start: highLSN, end: LSN(0x16_B374_D848), sendTime: highTime, data: []))
    }

    @Test func parsesKeepalive() throws {
        let bytes = WireBuilder.build { w in w.char("k"); w.uint64(highLSN.value); w.int64(highTime); w.byte(1) }
        #expect(bytes.count == 18)
        #expect(try ReplicationMessage.parse(bytes) == .keepalive(end: highLSN, sendTime: highTime, replyRequested: true))
        var quiet = bytes
        quiet[17] = 0
        #expect(try ReplicationMessage.parse(quiet) == .keepalive(end: highLSN, sendTime: highTime, replyRequested: false))
        for length in 0..<bytes.count {
            #expect(throws: PgOutputError.self) { try ReplicationMessage.parse(Array(bytes[..<length])) }
        }
        #expect(throws: PgOutputError.self) { try ReplicationMessage.parse(bytes + [0]) }
        #expect(throws: PgOutputError.self) { try ReplicationMessage.parse(Array("r".utf8)) }
    }

    @Test func standbyStatusLayout() {
        let unixNow: Int64 = 1_700_000_000_123_456
        let message = StandbyStatus.update(write: LSN(0x0102_0304_0506_0708), flush: highLSN, apply: LSN(0x16_B374_D848),
                                           unixMicroseconds: unixNow, replyRequested: true)
        #expect(message.count == 34)
        #expect(message[0] == UInt8(ascii: "r"))
        func field(_ offset: Int) -> UInt64 { message[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        #expect(field(1) == 0x0102_0304_0506_0708)
        #expect(Array(message[1..<9]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(field(9) == highLSN.value)
        #expect(field(17) == 0x16_B374_D848)
        #expect(Int64(bitPattern: field(25)) == unixNow - 946_684_800_000_000)
        #expect(message[33] == 1)
        #expect(StandbyStatus.update(write: .zero, flush: .zero, apply: .zero, unixMicroseconds: 0, replyRequested: false)[33] == 0)
        #expect(PostgresClock.unixMicroseconds(postgresMicroseconds: PostgresClock.postgresMicroseconds(unixMicroseconds: unixNow)) == unixNow)
    }
}

/// A tiny deterministic generator for the fuzz loop.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
