import FreshetCore
import Testing

/// pgoutput messages into Freshet's changes, without a server.
struct TransactionAssemblerTests {
    static let users = PgOutputMessage.Relation(
        id: 16384, namespace: "public", name: "users", replicaIdentity: .default,
        columns: [
            .init(flags: 1, name: "id", typeOID: 23, typeModifier: -1),
            .init(flags: 0, name: "org_id", typeOID: 23, typeModifier: -1),
            .init(flags: 0, name: "bio", typeOID: 25, typeModifier: -1),
        ]
    )

    func text(_ s: String) -> TupleValue { .text(Array(s.utf8)) }

    func transaction(_ messages: [PgOutputMessage]) throws -> CommittedTransaction? {
        var assembler = TransactionAssembler()
        var committed: CommittedTransaction?
        for message in messages {
            if case .changes(let t) = try assembler.feed(message), t.final { committed = t }
        }
        return committed
    }

    @Test func rowsBecomeChangesWithTheCommitTime() throws {
        let t = try #require(try transaction([
            .begin(finalLSN: LSN(500), commitTime: 0, xid: 7),
            .relation(Self.users),
            .insert(relation: 16384, new: [text("1"), text("7"), .null]),
            .update(relation: 16384, old: nil, oldKind: nil, new: [text("1"), text("8"), text("b")]),
            .delete(relation: 16384, old: [text("1"), .null, .null], oldKind: .key),
            .truncate(options: [], relations: [16384]),
            .commit(flags: 0, commitLSN: LSN(500), endLSN: LSN(520), commitTime: 0),
        ]))
        #expect(t.commit == 500)
        #expect(t.changes.map(\.op) == [.insert, .update, .delete, .truncate])
        #expect(t.changes[0].new == ["id": .number("1"), "org_id": .number("7"), "bio": .null])
        #expect(t.changes[0].at == "2000-01-01T00:00:00+00:00")
        #expect(t.changes[1].old == nil)
        // A key-only old row: the other columns are "not sent", not NULL.
        #expect(t.changes[2].old == ["id": .number("1")])
        #expect(t.changes[3].schema == "public" && t.changes[3].table == "users")
    }

    @Test func anUnchangedToastedValueComesFromTheFullOldRowOrMarksTheChangePartial() throws {
        let full = try #require(try transaction([
            .begin(finalLSN: LSN(1), commitTime: 0, xid: 1), .relation(Self.users),
            .update(relation: 16384, old: [text("1"), text("7"), text("long")], oldKind: .full, new: [text("1"), text("8"), .unchangedToast]),
            .commit(flags: 0, commitLSN: LSN(1), endLSN: LSN(2), commitTime: 0),
        ]))
        #expect(full.changes[0].new?["bio"] == .string("long") && !full.changes[0].partial)
        #expect(full.changes[0].old?["org_id"] == .number("7"))
        let keyOnly = try #require(try transaction([
            .begin(finalLSN: LSN(1), commitTime: 0, xid: 1), .relation(Self.users),
            .update(relation: 16384, old: nil, oldKind: nil, new: [text("1"), text("8"), .unchangedToast]),
            .commit(flags: 0, commitLSN: LSN(1), endLSN: LSN(2), commitTime: 0),
        ]))
        #expect(keyOnly.changes[0].partial && keyOnly.changes[0].new?["bio"] == nil)
    }

    @Test func aLargeTransactionComesInPiecesWithRunningIndexes() throws {
        var assembler = TransactionAssembler()
        _ = try assembler.feed(.begin(finalLSN: LSN(900), commitTime: 0, xid: 1))
        _ = try assembler.feed(.relation(Self.users))
        var pieces: [CommittedTransaction] = []
        for i in 0..<2500 {
            if case .changes(let piece) = try assembler.feed(.insert(relation: 16384, new: [text("\(i)"), .null, .null])) { pieces.append(piece) }
        }
        if case .changes(let last) = try assembler.feed(.commit(flags: 0, commitLSN: LSN(900), endLSN: LSN(950), commitTime: 0)) { pieces.append(last) }
        #expect(pieces.map(\.changes.count) == [1000, 1000, 500])
        #expect(pieces.map(\.firstIndex) == [1, 1001, 2001])
        #expect(pieces.map(\.final) == [false, false, true])
        #expect(pieces.allSatisfy { $0.commit == 900 })
    }

    @Test func aChangeBeforeItsRelationIsAnError() {
        var assembler = TransactionAssembler()
        _ = try? assembler.feed(.begin(finalLSN: LSN(1), commitTime: 0, xid: 1))
        #expect(throws: TransactionAssembler.Failure.self) { try assembler.feed(.insert(relation: 99, new: [])) }
    }

    @Test func commitTimesPrintAsToJsonbInUTC() {
        // 2026-12-01T12:34:56.789+00:00 in µs since 2000-01-01.
        let unix: Int64 = 1_796_128_496_789_000
        #expect(TransactionAssembler.timestamp(postgresMicroseconds: unix - 946_684_800_000_000) == "2026-12-01T12:34:56.789+00:00")
        #expect(TransactionAssembler.timestamp(postgresMicroseconds: 1) == "2000-01-01T00:00:00.000001+00:00")
        #expect(TransactionAssembler.timestamp(postgresMicroseconds: -1) == "1999-12-31T23:59:59.999999+00:00")
    }
}
