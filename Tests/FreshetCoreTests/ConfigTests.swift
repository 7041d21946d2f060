import FreshetCore
import Testing

@Suite struct ConfigTests {
    static let full = """
        postgres:
          url: postgresql://app:s3cret@127.0.0.1:5432/app
          channel: freshet
        redis:
          url: redis://:pw@127.0.0.1:6379/0
        http:
          listen: 127.0.0.1:8080
        tables:
          - name: users
            key: [id]
            ignore_columns: [last_seen_at]
            redis:
              - key: "user:{id}"
              - key: "user:{id}:card"
                action: set
                columns: [id, name, email]
                ttl: 3600
              - key: "org:{org_id}:members"
            sse:
              topics: ["users", "users/{id}"]
              columns: [id, name]
              show_keys: false
        """

    @Test func parsesTheDocumentedExample() throws {
        let config = try FreshetConfig.parse(yaml: Self.full)
        #expect(config.postgres.channel == "freshet")
        #expect(config.tables.count == 1)
        let table = config.tables[0]
        #expect(table.redis.count == 3)
        #expect(table.redis[1].action == .set)
        #expect(table.redis[1].ttl == 3600)
        #expect(table.redis[0].action == .delete)
        #expect(table.sse.columns == ["id", "name"])
        #expect(config.http.heartbeat == 15)
        #expect(config.shutdownTimeout == 5)
        #expect(config.onGap == .flush)
    }

    @Test func environmentOverridesURLsAndListen() throws {
        let config = try FreshetConfig.parse(yaml: Self.full, environment: [
            "DATABASE_URL": "postgresql://other/db", "REDIS_URL": "redis://cache:6380/1", "FRESHET_LISTEN": "0.0.0.0:9000",
        ])
        #expect(config.postgres.url == "postgresql://other/db")
        #expect(config.redis.url == "redis://cache:6380/1")
        #expect(config.http.listen == "0.0.0.0:9000")
    }

    func problems(_ yaml: String) -> [ConfigProblem] {
        do {
            _ = try FreshetConfig.parse(yaml: yaml)
            return []
        } catch {
            return error.problems
        }
    }

    @Test func unknownKeyIsNamedWithLineAndSuggestion() {
        let found = problems("""
            postgres:
              url: postgresql://x/y
              chanel: oops
            tables:
              - name: users
            """)
        #expect(found.count == 1)
        #expect(found[0].field == "postgres.chanel")
        #expect(found[0].line == 3)
        #expect(found[0].message.contains("did you mean \"channel\""))
    }

    @Test func everyProblemIsReportedAtOnce() {
        let found = problems("""
            postgres:
              url: postgresql://x/y
            redis:
              timeout: soon
            http:
              listen: nowhere
            tables:
              - name: "users; drop table x"
              - name: orders
                redis:
                  - key: "order:{id"
                  - key: "order:{id}:x"
                    action: rewrite
                  - key: "o:{id}"
                    ttl: 5
            """)
        let fields = Set(found.map(\.field))
        #expect(fields.contains("redis.timeout"))
        #expect(fields.contains("http.listen"))
        #expect(fields.contains("tables[0].name"))
        #expect(fields.contains("tables[1].redis[0].key"))
        #expect(fields.contains("tables[1].redis[1].action"))
        #expect(fields.contains("tables[1].redis[2].ttl"))
    }

    @Test func missingURLAndTablesAreRequired() {
        let fields = Set(problems("redis:\n  url: redis://localhost\n").map(\.field))
        #expect(fields == ["postgres.url", "tables"])
    }

    @Test func badYAMLHasALine() {
        let found = problems("postgres:\n  url: [unclosed\n")
        #expect(found.count == 1)
        #expect(found[0].line != nil)
    }

    @Test func corsTakesAListOrStar() throws {
        let base = "postgres: {url: x}\ntables: [{name: t}]\nhttp:\n  cors:\n    allowed_origins: "
        #expect(try FreshetConfig.parse(yaml: base + "\"*\"").http.cors.allowAny)
        #expect(try FreshetConfig.parse(yaml: base + "[https://a.example]").http.cors.allowedOrigins == ["https://a.example"])
    }

    @Test func tableNamesFoldLikePostgres() {
        #expect(TableName(parsing: "Billing.Invoices") == TableName(schema: "billing", name: "invoices"))
        #expect(TableName(parsing: "\"My Table\"") == TableName(schema: nil, name: "My Table"))
        #expect(TableName(parsing: "users; drop table x") == nil)
        #expect(TableName(parsing: "a.b.c") == nil)
    }

    @Test func schemaValidationNamesTableAndColumn() throws {
        let config = try FreshetConfig.parse(yaml: Self.full)
        let schema = TableSchema(schema: "public", name: "users", columns: ["id", "name", "email"], primaryKey: ["id"])
        let found = SchemaValidator.validate(config, schemas: [schema])
        let messages = found.map(\.description)
        #expect(found.contains { $0.field == "tables[0].ignore_columns" && $0.message.contains("\"last_seen_at\"") })
        #expect(found.contains { $0.field == "tables[0].redis[2].key" && $0.message.contains("\"org_id\"") })
        #expect(messages.allSatisfy { $0.contains("users") })
        let missing = SchemaValidator.validate(config, schemas: [nil])
        #expect(missing.count == 1 && missing[0].message.contains("does not exist"))
    }

    @Test func printConfigRedactsSecrets() throws {
        var config = try FreshetConfig.parse(yaml: Self.full)
        config.http.auth = AuthSettings(tokens: ["tok-123"], jwt: JWTSettings(secret: "jwt-secret-of-at-least-32-bytes!!", jwksPath: "/etc/jwks.json"))
        let text = ConfigPrinter.yaml(config)
        #expect(!text.contains("s3cret"))
        #expect(!text.contains("tok-123"))
        #expect(!text.contains("jwt-secret"))
        #expect(text.contains("jwks: \"/etc/jwks.json\""))
        #expect(!text.contains(":pw@"))
        #expect(text.contains("postgresql://app:***@127.0.0.1:5432/app"))
        // The printed configuration is itself a valid configuration.
        let authStart = try #require(text.range(of: "  auth:\n"))
        let authEnd = try #require(text.range(of: "log:\n"))
        let again = try FreshetConfig.parse(yaml: text.replacingCharacters(in: authStart.lowerBound..<authEnd.lowerBound, with: ""))
        #expect(again.tables == config.tables)
    }
}

import Foundation

@Suite struct RedactionTests {
    @Test(arguments: [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("host=db user=app password=s3cret dbname=app", "host=db user=app password=*** dbname=app"),
        ("host=db password='s3 cret' dbname=app", "host=db password=*** dbname=app"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://db/app?password=s3cret&sslmode=require", "postgresql://db/app?password=***&sslmode=require"),
        // Passwords with the URL's own delimiters, unescaped or escaped, are hidden whole.
        ("redis://:pa/ss@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://u:p@ss:w#rd?x@cache", "redis://u:***@cache"),
        ("redis://:p%2Fs%40s@cache/1", "redis://:***@cache/1"),
        ("redis://bare-secret@cache", "redis://***@cache"),
        ("unix:///run/redis.sock?db=1&password=s3cret", "unix:///run/redis.sock?db=1&password=***"),
        ("postgresql://app:pa/ss@db/app", "postgresql://app:***@db/app"),
        ("postgresql://db/app?sslpassword=k3y&password=x@y", "postgresql://db/app?sslpassword=***&password=***"),
        ("host=db sslpassword=k3y password=s3cret", "host=db sslpassword=*** password=***"),
    ])
    func hidesPasswords(_ input: String, _ expected: String) {
        #expect(Redaction.connectionString(input) == expected)
    }

    @Test func normalizedURLsEscapeThePasswordAndKeepEscapes() throws {
        let url = try #require(ConnectionURL(parsing: "postgresql://app:pa/ss@w#rd%41@db:5432/app?sslmode=require"))
        #expect(url.password == "pa/ss@w#rd%41")
        #expect(url.normalized == "postgresql://app:pa%2Fss%40w%23rd%41@db:5432/app?sslmode=require")
        #expect(ConnectionURL.decoded("pa%2Fss%40w%23rd%41") == "pa/ss@w#rdA")
    }
}

@Suite struct RedisEndpointTests {
    @Test func parsesTCPAndUnixURLs() throws {
        let tcp = try RedisEndpoint(parsing: "redis://user:p%40ss@cache:6380/2")
        #expect(tcp.address == .tcp(host: "cache", port: 6380))
        #expect(tcp.username == "user" && tcp.password == "p@ss" && tcp.database == 2)
        let bare = try RedisEndpoint(parsing: "redis://127.0.0.1")
        #expect(bare.address == .tcp(host: "127.0.0.1", port: 6379) && bare.database == 0)
        let unix = try RedisEndpoint(parsing: "unix:///run/redis.sock?db=3")
        #expect(unix.address == .unix(path: "/run/redis.sock") && unix.database == 3)
        let slashed = try RedisEndpoint(parsing: "redis://:pa/ss#@cache")
        #expect(slashed.address == .tcp(host: "cache", port: 6379) && slashed.password == "pa/ss#" && slashed.username == nil)
        let bareSecret = try RedisEndpoint(parsing: "redis://s3cret@cache")
        #expect(bareSecret.password == "s3cret" && bareSecret.username == nil)
        #expect(throws: RedisEndpoint.ParseError.self) { try RedisEndpoint(parsing: "http://x") }
        #expect(throws: RedisEndpoint.ParseError.self) { try RedisEndpoint(parsing: "redis://x:notaport") }
    }
}
