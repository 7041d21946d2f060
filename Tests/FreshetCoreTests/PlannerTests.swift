import FreshetCore
import Testing

@Suite struct PlannerTests {
    static func table(showKeys: Bool = true, sseColumns: [String]? = ["id", "name"]) throws -> ResolvedTable {
        let config = TableConfig(
            name: "users", qualifiedName: TableName(schema: nil, name: "users"),
            ignoreColumns: ["last_seen_at"],
            redis: [
                RedisRule(key: try KeyTemplate(parsing: "user:{id}")),
                RedisRule(key: try KeyTemplate(parsing: "user:{id}:card"), action: .set, columns: ["id", "name"], ttl: 60),
                RedisRule(key: try KeyTemplate(parsing: "org:{org_id}:members")),
            ],
            sse: SSETableSettings(columns: sseColumns, showKeys: showKeys)
        )
        let schema = TableSchema(
            schema: "public", name: "users", columns: ["id", "org_id", "name", "email", "last_seen_at"], primaryKey: ["id"]
        )
        return ResolvedTable(config: config, schema: schema)
    }

    static let ann: JSONObject = ["id": .number("1"), "org_id": .number("7"), "name": .string("Ann"), "email": .string("a@x"), "last_seen_at": .null]

    @Test func insertDeletesAndSetsFromTheNewRow() throws {
        let plan = Planner.plan(Change(op: .insert, schema: "public", table: "users", at: "t", new: Self.ann), table: try Self.table())
        #expect(plan.operations == [
            .unlink("user:1"),
            .set(key: "user:1:card", value: #"{"id":1,"name":"Ann"}"#, ttlMilliseconds: 60_000),
            .unlink("org:7:members"),
        ])
        #expect(plan.event.op == .insert)
        #expect(plan.event.key == ["id": .number("1")])
        #expect(plan.event.row == ["id": .number("1"), "name": .string("Ann")])
        #expect(plan.event.topics == ["users", "users/1"])
        #expect(plan.event.redis == ["user:1", "user:1:card", "org:7:members"])
    }

    @Test func updateThatMovesAKeyDeletesTheOldOne() throws {
        var moved = Self.ann
        moved["org_id"] = .number("8")
        let plan = Planner.plan(Change(op: .update, schema: "public", table: "users", at: "t", old: Self.ann, new: moved), table: try Self.table())
        #expect(plan.operations.contains(.unlink("org:7:members")))
        #expect(plan.operations.contains(.unlink("org:8:members")))
        #expect(plan.operations.filter { $0.key == "user:1" }.count == 1)
    }

    @Test func setKeyThatMovesIsDeletedThenRewritten() throws {
        var moved = Self.ann
        moved["id"] = .number("2")
        let plan = Planner.plan(Change(op: .update, schema: "public", table: "users", at: "t", old: Self.ann, new: moved), table: try Self.table())
        #expect(plan.operations.contains(.unlink("user:1:card")))
        #expect(plan.operations.contains { if case .set(let key, _, _) = $0 { key == "user:2:card" } else { false } })
        #expect(plan.event.topics == ["users", "users/2", "users/1"])
    }

    @Test func deleteRemovesEveryKeyIncludingSetKeys() throws {
        let plan = Planner.plan(Change(op: .delete, schema: "public", table: "users", at: "t", old: Self.ann), table: try Self.table())
        #expect(plan.operations == [.unlink("user:1"), .unlink("user:1:card"), .unlink("org:7:members")])
        #expect(plan.event.row == nil)
        #expect(plan.event.key == ["id": .number("1")])
    }

    @Test func nullPlaceholderSkipsOnlyThatKey() throws {
        var orphan = Self.ann
        orphan["org_id"] = .null
        let plan = Planner.plan(Change(op: .insert, schema: "public", table: "users", at: "t", new: orphan), table: try Self.table())
        #expect(plan.operations.count == 2)
        #expect(!plan.operations.contains { $0.key.hasPrefix("org:") })
    }

    @Test func truncateFlushesEveryTemplatePattern() throws {
        let plan = Planner.plan(Change(op: .truncate, schema: "public", table: "users", at: "t"), table: try Self.table())
        #expect(plan.operations == [
            .unlinkMatching(pattern: "user:*"), .unlinkMatching(pattern: "user:*:card"), .unlinkMatching(pattern: "org:*:members"),
        ])
        #expect(plan.event.key.isEmpty)
        #expect(plan.event.topics == ["users"])
        #expect(plan.event.concernsWholeTable)
    }

    @Test func overflowWithoutKeyInvalidatesTheWholeTable() throws {
        let plan = Planner.plan(Change(op: .update, schema: "public", table: "users", at: "t", overflow: true), table: try Self.table())
        #expect(plan.operations.allSatisfy { if case .unlinkMatching = $0 { true } else { false } })
        #expect(plan.event.incomplete)
        #expect(plan.event.json["incomplete"] == .bool(true))
    }

    @Test func eventCarriesOnlyConfiguredColumns() throws {
        let plan = Planner.plan(Change(op: .insert, schema: "public", table: "users", at: "t", new: Self.ann), table: try Self.table(showKeys: false, sseColumns: nil))
        #expect(plan.event.row == ["id": .number("1")])
        #expect(plan.event.redis == nil)
        #expect(plan.event.json["redis"] == nil)
        let text = String(decoding: plan.event.jsonBytes, as: UTF8.self)
        #expect(!text.contains("a@x"))
    }

    @Test func partialChangeIsCompletedByReadBackOrBecomesADelete() throws {
        let table = try Self.table()
        let partial = Change(op: .update, schema: "public", table: "users", at: "t",
                             old: ["id": .number("1"), "org_id": .number("7")], new: ["id": .number("1"), "org_id": .number("8")], partial: true)
        #expect(Planner.needsReadBack(partial, table: table))
        let completed = Planner.complete(partial, readBack: Self.ann.merging(["org_id": .number("8")]))
        #expect(completed.op == .update && completed.new?["name"] == .string("Ann"))
        let vanished = Planner.complete(partial, readBack: nil)
        #expect(vanished.op == .delete)
        let plan = Planner.plan(vanished, table: table)
        #expect(Set(plan.operations) == [.unlink("user:1"), .unlink("user:1:card"), .unlink("org:7:members"), .unlink("org:8:members")])
    }

    @Test func aPartialChangeThatCannotBeReadBackKeepsItsOpAndDeletesItsKeys() throws {
        let table = try Self.table()
        let partial = Change(op: .update, schema: "public", table: "users", at: "t",
                             old: ["id": .number("1"), "org_id": .number("7")], new: ["id": .number("1"), "org_id": .number("8")], partial: true)
        let plan = Planner.planIncomplete(partial, table: table)
        #expect(plan.event.op == .update)  // never "deleted" for a live row
        #expect(plan.event.incomplete && plan.event.row == nil)
        #expect(plan.event.key == ["id": .number("1")])
        #expect(!plan.event.concernsWholeTable)  // routed by its own topics
        #expect(plan.operations.allSatisfy { if case .unlink = $0 { true } else { false } })  // nothing rewritten
        #expect(Set(plan.operations) == [.unlink("user:1"), .unlink("user:1:card"), .unlink("org:7:members"), .unlink("org:8:members")])
    }

    @Test func minimalColumnsCoverKeysAndTemplates() throws {
        let table = try Self.table()
        #expect(table.minimalColumns == ["id", "org_id"])
        #expect(table.rowColumns == ["id", "org_id", "name"])
    }
}

@Suite struct PayloadDecoderTests {
    @Test func decodesATriggerPayload() throws {
        let change = try PayloadDecoder.decode(#"{"v":1,"op":"update","schema":"public","table":"users","at":"2026-01-01T00:00:00+00:00","old":{"id":1},"new":{"id":1,"n":12345678901234567890}}"#)[0]
        #expect(change.op == .update)
        #expect(change.new?["n"] == .number("12345678901234567890"))
    }

    @Test func decodesAStatementsPackedRowsInOrder() throws {
        let changes = try PayloadDecoder.decode(#"{"v":1,"op":"update","schema":"public","table":"users","at":"2026-01-01T00:00:00+00:00","rows":[{"old":{"id":1},"new":{"id":2}},{"old":{"id":3},"new":{"id":3},"partial":true}]}"#)
        #expect(changes.count == 2)
        #expect(changes.map(\.op) == [.update, .update])
        #expect(changes[0].old?["id"] == .number("1") && changes[0].new?["id"] == .number("2"))
        #expect(!changes[0].partial && changes[1].partial)
        #expect(changes.allSatisfy { $0.table == "users" && $0.at == "2026-01-01T00:00:00+00:00" })
    }

    @Test func aStatementOverflowAndATruncateAreOneChangeEach() throws {
        let overflow = try PayloadDecoder.decode(#"{"v":1,"op":"delete","schema":"public","table":"users","at":"x","overflow":true}"#)
        #expect(overflow.count == 1 && overflow[0].overflow)
        let truncate = try PayloadDecoder.decode(#"{"v":1,"op":"truncate","schema":"public","table":"users","at":"x"}"#)
        #expect(truncate.count == 1 && truncate[0].op == .truncate)
    }

    @Test(arguments: [
        ("not json", "invalid_json"),
        (#"{"v":1,"op":"insert","schema":"s","table":"t","at":"x","rows":[5]}"#, "invalid_shape"),
        (#"{"v":1,"op":"insert","schema":"s","table":"t","at":"x","rows":[{"old":{"id":1}}]}"#, "invalid_shape"),
        ("[1,2]", "invalid_shape"),
        (#"{"v":2,"op":"insert"}"#, "unsupported_version"),
        (#"{"v":1,"op":"upsert","schema":"s","table":"t","at":"x"}"#, "invalid_shape"),
        (#"{"v":1,"op":"insert","schema":"s","table":"t","at":"x"}"#, "invalid_shape"),
        (#"{"v":1,"op":"delete","schema":"s","table":"t","at":"x","old":5}"#, "invalid_shape"),
    ])
    func rejectsJunkWithAReason(_ text: String, _ reason: String) {
        #expect(throws: PayloadDecoder.Rejection.self) { try PayloadDecoder.decode(text) }
        do { _ = try PayloadDecoder.decode(text) } catch { #expect(error.reason == reason) }
    }

    @Test func deepNestingDoesNotCrash() {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(deep) }
    }
}

@Suite struct JSONTests {
    @Test func roundTripsEscapesAndUnicode() throws {
        let text = #"{"a":"line\nbreak \"q\" \\ \u00e9 \ud83d\ude00","b":[true,false,null,-1.5e3],"c":{}}"#
        let value = try JSONParser.parse(text)
        #expect(value.objectValue?["a"] == .string("line\nbreak \"q\" \\ é 😀"))
        let again = try JSONParser.parse(value.jsonText)
        #expect(again == value)
        #expect(!value.jsonText.contains("\n"))
    }

    @Test(arguments: ["{", "[1,]", "01", "\"\\x\"", "{\"a\" 1}", "1 2", "\"\u{01}\""])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }
}
