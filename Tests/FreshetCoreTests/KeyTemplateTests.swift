import FreshetCore
import Testing

@Suite struct KeyTemplateTests {
    @Test func rendersColumnsAsPostgresPrintsThem() throws {
        let template = try KeyTemplate(parsing: "org:{org_id}:user:{id}:{active}:{uid}")
        let row: JSONObject = [
            "id": .number("42"), "org_id": .number("7"), "active": .bool(true),
            "uid": .string("0d8f1f4e-9a7b-4c1e-8f3a-2b6c1d0e9f11"),
        ]
        #expect(template.render(row) == "org:7:user:42:true:0d8f1f4e-9a7b-4c1e-8f3a-2b6c1d0e9f11")
        #expect(template.columns == ["org_id", "id", "active", "uid"])
    }

    @Test func nullOrMissingPlaceholderSkipsTheKey() throws {
        let template = try KeyTemplate(parsing: "org:{org_id}:members")
        #expect(template.render(["org_id": .null]) == nil)
        #expect(template.render([:]) == nil)
    }

    @Test func doubledBracesAreLiteral() throws {
        let template = try KeyTemplate(parsing: "{{json}}:{id}")
        #expect(template.render(["id": .number("1")]) == "{json}:1")
        #expect(template.columns == ["id"])
    }

    @Test(arguments: ["user:{id", "user:}", "user:{}", "", "a{b{c}}"])
    func malformedTemplatesAreRejected(_ text: String) {
        #expect(throws: KeyTemplate.ParseError.self) { try KeyTemplate(parsing: text) }
    }

    @Test func globPatternEscapesLiteralGlobCharacters() throws {
        #expect(try KeyTemplate(parsing: "user:{id}:card").globPattern == "user:*:card")
        #expect(try KeyTemplate(parsing: "a*[b]?:{id}").globPattern == "a\\*\\[b\\]\\?:*")
        #expect(try KeyTemplate(parsing: "{a}{b}").globPattern == "*")
    }

    @Test func topicShapeTurnsPlaceholderSegmentsIntoWildcards() throws {
        #expect(try KeyTemplate(parsing: "users/{id}").topicShape.source == "users/*")
        #expect(try KeyTemplate(parsing: "orgs/o-{org_id}/users").topicShape.source == "orgs/*/users")
    }
}

@Suite struct TopicPatternTests {
    @Test func wildcardMatchesExactlyOneSegment() {
        let pattern = TopicPattern("users/*")
        #expect(pattern.matches("users/1"))
        #expect(!pattern.matches("users"))
        #expect(!pattern.matches("users/1/2"))
        #expect(!pattern.matches("orders/1"))
        #expect(TopicPattern("users").matches("users"))
    }

    @Test func coverageForClaims() {
        #expect(TopicPattern("users/1").isCovered(by: TopicPattern("users/*")))
        #expect(!TopicPattern("users/*").isCovered(by: TopicPattern("users/1")))
    }
}

/// Redis glob matching, used to name a key's template in logs.
struct GlobTests {
    @Test func matchesWhatSCANMatches() {
        #expect(Glob.matches("user:*", "user:42"))
        #expect(Glob.matches("org:*:members", "org:7:members"))
        #expect(!Glob.matches("org:*:members", "org:7:owners"))
        #expect(Glob.matches("a?c", "abc"))
        #expect(Glob.matches(#"lit\*:*"#, "lit*:1"))
        #expect(!Glob.matches(#"lit\*:*"#, "litx:1"))
        #expect(Glob.matches("*", ""))
        #expect(!Glob.matches("user:*", "users:1"))
    }
}
