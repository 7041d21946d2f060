import Yams

extension FreshetConfig {
    /// Parses a configuration file's text, applies the environment overrides (`DATABASE_URL`, `REDIS_URL`,
    /// `FRESHET_LISTEN`), fills in defaults and validates the result. Throws every problem found, not just the first.
    public static func parse(yaml text: String, environment: [String: String] = [:], file: String? = nil) throws(ConfigError) -> FreshetConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(file: file, problems: [yamlProblem(error)])
        } catch {
            throw ConfigError(file: file, problems: [ConfigProblem(field: "", message: "not valid YAML: \(error)")])
        }
        var reader = ConfigReader()
        let config = reader.readConfig(root, environment: environment)
        var problems = reader.problems
        if let config { problems += ConfigValidator.validate(config) }
        guard problems.isEmpty, let config else { throw ConfigError(file: file, problems: problems) }
        return config
    }

    private static func yamlProblem(_ error: YamlError) -> ConfigProblem {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return ConfigProblem(field: "", line: mark.line, message: "not valid YAML: \(problem)")
        default:
            return ConfigProblem(field: "", message: "not valid YAML: \(error)")
        }
    }
}

/// Walks the YAML tree, collecting problems with the field path and line of each.
struct ConfigReader {
    var problems: [ConfigProblem] = []

    mutating func problem(_ field: String, _ node: Node?, _ message: String) {
        problems.append(ConfigProblem(field: field, line: node?.mark?.line, message: message))
    }

    /// The mapping's entries by key, after checking that no key outside `allowed` is present.
    mutating func mapping(_ node: Node?, _ field: String, allowed: [String]) -> [String: Node]? {
        guard let node else { return nil }
        if node.null != nil { return [:] }
        guard let mapping = node.mapping else {
            problem(field, node, "expected a mapping of keys to values")
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                problem(field, keyNode, "keys must be strings")
                continue
            }
            let path = field.isEmpty ? key : "\(field).\(key)"
            if !allowed.contains(key) {
                let hint = closest(key, in: allowed).map { " (did you mean \"\($0)\"?)" } ?? ""
                problem(path, keyNode, "unknown key\(hint); allowed here: \(allowed.joined(separator: ", "))")
                continue
            }
            if result[key] != nil { problem(path, keyNode, "given twice") }
            result[key] = value
        }
        return result
    }

    mutating func string(_ node: Node?, _ field: String) -> String? {
        guard let node else { return nil }
        guard case .scalar(let scalar) = node else {
            problem(field, node, "expected a string")
            return nil
        }
        return scalar.string
    }

    mutating func bool(_ node: Node?, _ field: String) -> Bool? {
        guard let node else { return nil }
        guard let value = node.bool, node.scalar?.style == .plain else {
            problem(field, node, "expected true or false")
            return nil
        }
        return value
    }

    /// A non-negative number of seconds or bytes.
    mutating func number(_ node: Node?, _ field: String, unit: String, allowZero: Bool = false) -> Double? {
        guard let node else { return nil }
        guard node.scalar?.style == .plain, let value = node.float ?? node.int.map(Double.init), value.isFinite else {
            problem(field, node, "expected a number of \(unit)")
            return nil
        }
        if allowZero && value == 0 { return 0 }
        guard value > 0 else {
            problem(field, node, "must be greater than 0 (\(unit))")
            return nil
        }
        return value
    }

    mutating func integer(_ node: Node?, _ field: String, unit: String) -> Int? {
        guard let node else { return nil }
        guard node.scalar?.style == .plain, let value = node.int else {
            problem(field, node, "expected a whole number of \(unit)")
            return nil
        }
        guard value > 0 else {
            problem(field, node, "must be greater than 0 (\(unit))")
            return nil
        }
        return value
    }

    mutating func stringList(_ node: Node?, _ field: String) -> [String]? {
        guard let node else { return nil }
        guard let sequence = node.sequence else {
            problem(field, node, "expected a list of strings")
            return nil
        }
        var result: [String] = []
        for (i, item) in sequence.enumerated() {
            if let s = string(item, "\(field)[\(i)]") { result.append(s) }
        }
        return result
    }

    mutating func template(_ node: Node?, _ field: String) -> KeyTemplate? {
        guard let text = string(node, field) else { return nil }
        do {
            return try KeyTemplate(parsing: text)
        } catch {
            problem(field, node, "\(error)")
            return nil
        }
    }

    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ node: Node?, _ field: String, _: E.Type) -> E?
    where E.RawValue == String {
        guard let text = string(node, field) else { return nil }
        guard let value = E(rawValue: text) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            problem(field, node, "unknown value \"\(text)\"; expected one of: \(allowed)")
            return nil
        }
        return value
    }

    // MARK: the sections

    mutating func readConfig(_ root: Node?, environment: [String: String]) -> FreshetConfig? {
        guard let root else {
            problem("", nil, "the file is empty; it needs at least postgres.url (or DATABASE_URL) and tables")
            return nil
        }
        guard let top = mapping(
            root, "", allowed: ["postgres", "redis", "http", "log", "tables", "on_gap", "shutdown_timeout"]
        ) else { return nil }

        // postgres
        let pg = mapping(top["postgres"], "postgres", allowed: ["url", "channel", "source", "replication"]) ?? [:]
        var postgres = PostgresSettings(url: string(pg["url"], "postgres.url") ?? "")
        if let channel = string(pg["channel"], "postgres.channel") { postgres.channel = channel }
        if let source = enumeration(pg["source"], "postgres.source", CaptureSource.self) { postgres.source = source }
        if let rep = mapping(pg["replication"], "postgres.replication", allowed: ["slot", "publication", "manage", "max_retained"]) {
            if let v = string(rep["slot"], "postgres.replication.slot") { postgres.replication.slot = v }
            if let v = string(rep["publication"], "postgres.replication.publication") { postgres.replication.publication = v }
            if let v = bool(rep["manage"], "postgres.replication.manage") { postgres.replication.manage = v }
            if let v = integer(rep["max_retained"], "postgres.replication.max_retained", unit: "bytes") { postgres.replication.maxRetained = v }
        }
        if let url = environment["DATABASE_URL"], !url.isEmpty { postgres.url = url }
        if postgres.url.isEmpty {
            problem("postgres.url", top["postgres"], "required (or set DATABASE_URL)")
        }

        // redis
        let rd = mapping(
            top["redis"], "redis",
            allowed: ["url", "cluster", "sentinel", "tls", "timeout", "max_pending", "max_outage", "replay_after_failover"]
        ) ?? [:]
        var redis = RedisSettings()
        if let url = string(rd["url"], "redis.url") { redis.url = url }
        if let nodes = stringList(rd["cluster"], "redis.cluster") {
            if nodes.isEmpty { problem("redis.cluster", rd["cluster"], "list at least one seed node (redis://host:port)") }
            redis.cluster = nodes
        }
        if let sm = mapping(rd["sentinel"], "redis.sentinel", allowed: ["nodes", "master", "username", "password", "database"]) {
            let nodes = stringList(sm["nodes"], "redis.sentinel.nodes") ?? []
            if nodes.isEmpty { problem("redis.sentinel.nodes", sm["nodes"] ?? rd["sentinel"], "list at least one sentinel (redis://host:26379)") }
            let master = string(sm["master"], "redis.sentinel.master") ?? ""
            if master.isEmpty { problem("redis.sentinel.master", sm["master"] ?? rd["sentinel"], "name the master the sentinels watch") }
            var sentinel = RedisSentinelSettings(nodes: nodes, master: master)
            sentinel.username = string(sm["username"], "redis.sentinel.username")
            sentinel.password = string(sm["password"], "redis.sentinel.password")
            if let node = sm["database"] {
                if let db = node.int, db >= 0, node.scalar?.style == .plain { sentinel.database = db } else {
                    problem("redis.sentinel.database", node, "expected a database number (0 or more)")
                }
            }
            redis.sentinel = sentinel
        }
        let topologies = ["url", "cluster", "sentinel"].filter { rd[$0] != nil }
        if topologies.count > 1 {
            problem("redis", top["redis"], "give exactly one of url, cluster and sentinel (found \(topologies.joined(separator: ", ")))")
        }
        if let tm = mapping(rd["tls"], "redis.tls", allowed: ["ca", "cert", "key", "server_name", "insecure_skip_verify"]) {
            redis.tls.ca = string(tm["ca"], "redis.tls.ca")
            redis.tls.cert = string(tm["cert"], "redis.tls.cert")
            redis.tls.key = string(tm["key"], "redis.tls.key")
            redis.tls.serverName = string(tm["server_name"], "redis.tls.server_name")
            redis.tls.insecureSkipVerify = bool(tm["insecure_skip_verify"], "redis.tls.insecure_skip_verify") ?? false
            if redis.tls.key != nil && redis.tls.cert == nil {
                problem("redis.tls.key", tm["key"], "a client key needs its certificate (redis.tls.cert)")
            }
        }
        if let url = environment["REDIS_URL"], !url.isEmpty {
            if redis.cluster != nil || redis.sentinel != nil {
                problem("redis", top["redis"], "REDIS_URL is set but the file configures redis.\(redis.cluster != nil ? "cluster" : "sentinel"); unset one of them")
            }
            redis.url = url
        }
        if let v = number(rd["replay_after_failover"], "redis.replay_after_failover", unit: "seconds", allowZero: true) {
            redis.replayAfterFailover = v
        }
        if let v = number(rd["timeout"], "redis.timeout", unit: "seconds") { redis.timeout = v }
        if let v = integer(rd["max_pending"], "redis.max_pending", unit: "operations") { redis.maxPending = v }
        if let v = number(rd["max_outage"], "redis.max_outage", unit: "seconds") { redis.maxOutage = v }

        // http
        let ht = mapping(
            top["http"], "http",
            allowed: [
                "listen", "heartbeat", "replay", "client_buffer", "cors", "auth", "metrics", "request_timeout",
                "max_connections", "max_topics", "tls", "relay", "relay_takeover",
            ]
        ) ?? [:]
        var http = HTTPSettings()
        if let v = string(ht["listen"], "http.listen") { http.listen = v }
        if let v = environment["FRESHET_LISTEN"], !v.isEmpty { http.listen = v }
        if let v = number(ht["heartbeat"], "http.heartbeat", unit: "seconds") { http.heartbeat = v }
        if let v = integer(ht["replay"], "http.replay", unit: "events") { http.replay = v }
        if let v = integer(ht["client_buffer"], "http.client_buffer", unit: "bytes") { http.clientBuffer = v }
        if let v = bool(ht["metrics"], "http.metrics") { http.metrics = v }
        if let v = number(ht["request_timeout"], "http.request_timeout", unit: "seconds") { http.requestTimeout = v }
        if let v = integer(ht["max_connections"], "http.max_connections", unit: "connections") { http.maxConnections = v }
        if let v = integer(ht["max_topics"], "http.max_topics", unit: "topics") { http.maxTopics = v }
        if let text = string(ht["relay"], "http.relay") {
            if let mode = RelayMode(rawValue: text) { http.relay = mode } else {
                problem("http.relay", ht["relay"], "expected none or redis")
            }
        }
        if let v = number(ht["relay_takeover"], "http.relay_takeover", unit: "seconds") { http.relayTakeover = v }
        if let tls = mapping(ht["tls"], "http.tls", allowed: ["cert", "key"]) {
            let cert = string(tls["cert"], "http.tls.cert")
            let key = string(tls["key"], "http.tls.key")
            if cert == nil { problem("http.tls.cert", tls["cert"] ?? ht["tls"], "give the PEM file of the server's certificate chain") }
            if key == nil { problem("http.tls.key", tls["key"] ?? ht["tls"], "give the PEM file of the certificate's private key") }
            if let cert, let key { http.tls = HTTPTLSSettings(cert: cert, key: key) }
        }
        if let cors = mapping(ht["cors"], "http.cors", allowed: ["allowed_origins"]), let origins = cors["allowed_origins"] {
            if origins.scalar != nil, string(origins, "http.cors.allowed_origins") == "*" {
                http.cors = CORSSettings(allowAny: true)
            } else if origins.scalar != nil {
                problem("http.cors.allowed_origins", origins, "expected a list of origins or \"*\"")
            } else if let list = stringList(origins, "http.cors.allowed_origins") {
                http.cors = CORSSettings(allowedOrigins: list, allowAny: list.contains("*"))
            }
        }
        if let auth = mapping(ht["auth"], "http.auth", allowed: ["tokens", "jwt"]) {
            var settings = AuthSettings()
            settings.tokens = stringList(auth["tokens"], "http.auth.tokens") ?? []
            if let jwt = mapping(
                auth["jwt"], "http.auth.jwt", allowed: ["secret", "public_key", "jwks", "leeway", "audience", "issuer"]
            ) {
                var j = JWTSettings()
                j.secret = string(jwt["secret"], "http.auth.jwt.secret")
                j.publicKeyPath = string(jwt["public_key"], "http.auth.jwt.public_key")
                j.jwksPath = string(jwt["jwks"], "http.auth.jwt.jwks")
                if let v = number(jwt["leeway"], "http.auth.jwt.leeway", unit: "seconds", allowZero: true) { j.leeway = v }
                j.audience = string(jwt["audience"], "http.auth.jwt.audience")
                j.issuer = string(jwt["issuer"], "http.auth.jwt.issuer")
                if let secret = j.secret, secret.utf8.count < 32 {
                    problem("http.auth.jwt.secret", jwt["secret"], "must be at least 32 bytes (256 bits) for HS256; it has \(secret.utf8.count)")
                }
                if j.secret == nil && j.publicKeyPath == nil && j.jwksPath == nil {
                    problem("http.auth.jwt", auth["jwt"], "give secret, public_key or jwks")
                }
                if j.publicKeyPath != nil && j.jwksPath != nil {
                    problem("http.auth.jwt.jwks", jwt["jwks"], "give either public_key or jwks, not both")
                }
                settings.jwt = j
            }
            if settings.tokens.isEmpty && settings.jwt == nil {
                problem("http.auth", ht["auth"], "give tokens or jwt, or remove http.auth to leave /events open")
            }
            http.auth = settings
        }

        // log
        let lg = mapping(top["log"], "log", allowed: ["level", "format"]) ?? [:]
        var log = LogSettings()
        if let level = string(lg["level"], "log.level") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            if levels.contains(level) {
                log.level = level
            } else {
                problem("log.level", lg["level"], "unknown level \"\(level)\"; expected one of: \(levels.joined(separator: ", "))")
            }
        }
        if let format = enumeration(lg["format"], "log.format", LogFormat.self) { log.format = format }

        let onGap = enumeration(top["on_gap"], "on_gap", GapPolicy.self) ?? .flush
        let shutdownTimeout = number(top["shutdown_timeout"], "shutdown_timeout", unit: "seconds") ?? 5

        // tables
        var tables: [TableConfig] = []
        if let node = top["tables"] {
            if let sequence = node.sequence {
                for (i, item) in sequence.enumerated() {
                    if let table = readTable(item, "tables[\(i)]") { tables.append(table) }
                }
            } else {
                problem("tables", node, "expected a list of tables")
            }
        }
        if tables.isEmpty && top["tables"]?.sequence?.isEmpty ?? true {
            problem("tables", top["tables"], "at least one table is required")
        }

        return FreshetConfig(
            postgres: postgres, redis: redis, http: http, log: log, tables: tables, onGap: onGap,
            shutdownTimeout: shutdownTimeout
        )
    }

    mutating func readTable(_ node: Node, _ field: String) -> TableConfig? {
        guard let map = mapping(node, field, allowed: ["name", "key", "ignore_columns", "redis", "sse"]) else { return nil }
        guard let name = string(map["name"], "\(field).name") else {
            if map["name"] == nil { problem("\(field).name", node, "required") }
            return nil
        }
        guard let qualified = TableName(parsing: name) else {
            problem("\(field).name", map["name"], "\"\(name)\" is not a table name (write table or schema.table; quote odd names with \")")
            return nil
        }
        var table = TableConfig(name: name, qualifiedName: qualified)
        table.key = stringList(map["key"], "\(field).key")
        table.ignoreColumns = stringList(map["ignore_columns"], "\(field).ignore_columns") ?? []
        if let rules = map["redis"] {
            if let sequence = rules.sequence {
                for (i, item) in sequence.enumerated() {
                    if let rule = readRule(item, "\(field).redis[\(i)]") { table.redis.append(rule) }
                }
            } else {
                problem("\(field).redis", rules, "expected a list of key rules")
            }
        }
        if let sse = mapping(map["sse"], "\(field).sse", allowed: ["topics", "columns", "show_keys"]) {
            if let topics = sse["topics"] {
                if let sequence = topics.sequence {
                    var templates: [KeyTemplate] = []
                    for (i, item) in sequence.enumerated() {
                        if let t = template(item, "\(field).sse.topics[\(i)]") { templates.append(t) }
                    }
                    table.sse.topics = templates
                } else {
                    problem("\(field).sse.topics", topics, "expected a list of topic templates")
                }
            }
            table.sse.columns = stringList(sse["columns"], "\(field).sse.columns")
            if let show = bool(sse["show_keys"], "\(field).sse.show_keys") { table.sse.showKeys = show }
        }
        return table
    }

    mutating func readRule(_ node: Node, _ field: String) -> RedisRule? {
        guard let map = mapping(node, field, allowed: ["key", "action", "columns", "ttl"]) else { return nil }
        guard map["key"] != nil else {
            problem("\(field).key", node, "required")
            return nil
        }
        guard let key = template(map["key"], "\(field).key") else { return nil }
        var rule = RedisRule(key: key)
        if let action = enumeration(map["action"], "\(field).action", RedisAction.self) { rule.action = action }
        rule.columns = stringList(map["columns"], "\(field).columns")
        rule.ttl = number(map["ttl"], "\(field).ttl", unit: "seconds")
        if rule.action == .delete {
            if map["columns"] != nil { problem("\(field).columns", map["columns"], "only applies to action: set") }
            if map["ttl"] != nil { problem("\(field).ttl", map["ttl"], "only applies to action: set") }
        }
        return rule
    }
}

/// The allowed key closest to a misspelt one, for "did you mean" hints.
func closest(_ word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1]
            for (j, cb) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
    let scored = candidates.map { ($0, distance(Array(word), Array($0))) }.min { $0.1 < $1.1 }
    guard let (best, score) = scored, score <= max(2, word.count / 3) else { return nil }
    return best
}
