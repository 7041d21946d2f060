import FreshetCore
import Testing

@Suite struct SSEEncoderTests {
    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test func encodesIdEventAndData() {
        let message = SSEEncoder.message(id: "1-2", event: "change", data: Array(#"{"a":1}"#.utf8))
        #expect(text(message) == "id: 1-2\nevent: change\ndata: {\"a\":1}\n\n")
    }

    @Test func lineBreaksCannotInjectFields() {
        let message = text(SSEEncoder.message(id: "1\nevent: evil", event: "change\r\ndata: x", data: Array("a\r\nb\nc\rd".utf8)))
        #expect(message == "id: 1event: evil\nevent: changedata: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n")
    }

    @Test func eventIDsParseAndOrder() {
        #expect(EventID(parsing: "17-3") == EventID(epoch: 17, sequence: 3))
        #expect(EventID(parsing: "17") == nil)
        #expect(EventID(parsing: "a-1") == nil)
        #expect(EventID(epoch: 1, sequence: 9) < EventID(epoch: 2, sequence: 0))
    }

    @Test func heartbeatIsAComment() {
        #expect(text(SSEEncoder.comment("hb")) == ": hb\n\n")
    }
}

@Suite struct TriggerSQLTests {
    @Test func quotesEveryIdentifierAndLiteral() throws {
        let config = TableConfig(
            name: "\"we\"\"ird\"", qualifiedName: TableName(schema: nil, name: "we\"ird"),
            ignoreColumns: ["it's"], redis: [RedisRule(key: try KeyTemplate(parsing: "k:{id}"))]
        )
        let schema = TableSchema(schema: "my schema", name: "we\"ird", columns: ["id", "it's"], primaryKey: ["id"])
        let sql = TriggerSQL.install(tables: [ResolvedTable(config: config, schema: schema)], channel: "chan'nel")
        #expect(sql.contains(#"ON "my schema"."we""ird""#))
        #expect(sql.contains("'chan''nel'"))
        #expect(sql.contains(#"'{"it''s"}'"#))
        #expect(sql.contains("SET search_path = pg_catalog, pg_temp"))
        #expect(sql.contains("AFTER TRUNCATE"))
    }

    @Test func installsOneStatementTriggerPerEventWithTransitionTables() throws {
        let config = TableConfig(name: "users", qualifiedName: TableName(schema: nil, name: "users"),
                                 redis: [RedisRule(key: try KeyTemplate(parsing: "user:{id}"))])
        let schema = TableSchema(schema: "public", name: "users", columns: ["id"], primaryKey: ["id"])
        let sql = TriggerSQL.install(tables: [ResolvedTable(config: config, schema: schema)], channel: "c")
        #expect(sql.contains(#"CREATE TRIGGER "freshet_insert" AFTER INSERT ON "public"."users" REFERENCING NEW TABLE AS freshet_new"#))
        #expect(sql.contains(#"CREATE TRIGGER "freshet_update" AFTER UPDATE ON "public"."users" REFERENCING OLD TABLE AS freshet_old NEW TABLE AS freshet_new"#))
        #expect(sql.contains(#"CREATE TRIGGER "freshet_delete" AFTER DELETE ON "public"."users" REFERENCING OLD TABLE AS freshet_old"#))
        #expect(!sql.contains("FOR EACH ROW"))
        #expect(sql.contains(#"DROP TRIGGER IF EXISTS "freshet_change" ON "public"."users""#))  // the older row trigger
        let uninstall = TriggerSQL.uninstall(tables: [ResolvedTable(config: config, schema: schema)])
        for name in TriggerSQL.triggerNames + ["freshet_change"] {
            #expect(uninstall.contains(#"DROP TRIGGER IF EXISTS "\#(name)" ON "public"."users""#))
        }
    }
}

@Suite struct TimestampTests {
    @Test func parsesTriggerTimestamps() {
        #expect(Timestamp.secondsSinceEpoch("1970-01-01T00:00:00+00:00") == 0)
        #expect(Timestamp.secondsSinceEpoch("2026-11-25T12:04:47.5+00:00") == 1_795_608_287.5)
        #expect(Timestamp.secondsSinceEpoch("2026-11-25T14:04:47+02:00") == 1_795_608_287)
        #expect(Timestamp.secondsSinceEpoch("2026-11-25T12:04:47Z") == 1_795_608_287)
        #expect(Timestamp.secondsSinceEpoch("yesterday") == nil)
    }
}

@Suite struct ChangeEventJSONTests {
    @Test(arguments: [false, true])
    func jsonBytesAreTheObjectWrittenOut(_ full: Bool) throws {
        let event = ChangeEvent(
            op: .update, schema: "public", table: "we\"ird", configName: "x", key: ["id": .number("7")],
            topics: ["x", "x/7"], row: full ? ["id": .number("7"), "name": .string("A\nB")] : nil,
            at: "2026-11-25T12:00:00+00:00", redis: full ? ["k:7", "k:\\7"] : nil, incomplete: full
        )
        var writer = JSONWriter()
        writer.write(event.json)
        #expect(event.jsonBytes == writer.bytes)
        #expect(!event.jsonBytes.contains(0x0A))
    }
}
