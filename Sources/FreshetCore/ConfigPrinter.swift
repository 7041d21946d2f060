/// Writes the effective configuration as YAML for `freshet run --print-config`, with every secret replaced by `***`
/// (passwords in URLs, `http.auth.tokens`, `http.auth.jwt.secret`).
public enum ConfigPrinter {
    public static func yaml(_ config: FreshetConfig) -> String {
        var lines: [String] = []
        func q(_ s: String) -> String { JSONValue.string(s).jsonText }  // JSON strings are valid YAML
        func n(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }
        func list(_ items: [String]) -> String { "[" + items.map(q).joined(separator: ", ") + "]" }
        lines.append("postgres:")
        lines.append("  url: \(q(Redaction.connectionString(config.postgres.url)))")
        lines.append("  channel: \(q(config.postgres.channel))")
        lines.append("  source: \(q(config.postgres.source.rawValue))")
        lines.append("  replication:")
        lines.append("    slot: \(q(config.postgres.replication.slot))")
        lines.append("    publication: \(q(config.postgres.replication.publication))")
        lines.append("    manage: \(config.postgres.replication.manage)")
        lines.append("    max_retained: \(config.postgres.replication.maxRetained)")
        lines.append("redis:")
        if let nodes = config.redis.cluster {
            lines.append("  cluster: " + list(nodes.map(Redaction.connectionString)))
        } else if let sentinel = config.redis.sentinel {
            lines.append("  sentinel:")
            lines.append("    nodes: " + list(sentinel.nodes.map(Redaction.connectionString)))
            lines.append("    master: \(q(sentinel.master))")
            if let user = sentinel.username { lines.append("    username: \(q(user))") }
            if sentinel.password != nil { lines.append("    password: \(q(Redaction.mask))") }
            lines.append("    database: \(sentinel.database)")
        } else {
            lines.append("  url: \(q(Redaction.connectionString(config.redis.url)))")
        }
        if config.redis.tls.isConfigured {
            let tls = config.redis.tls
            lines.append("  tls:")
            if let v = tls.ca { lines.append("    ca: \(q(v))") }
            if let v = tls.cert { lines.append("    cert: \(q(v))") }
            if let v = tls.key { lines.append("    key: \(q(v))") }
            if let v = tls.serverName { lines.append("    server_name: \(q(v))") }
            lines.append("    insecure_skip_verify: \(tls.insecureSkipVerify)")
        }
        lines.append("  replay_after_failover: \(n(config.redis.replayAfterFailover))")
        lines.append("  timeout: \(n(config.redis.timeout))")
        lines.append("  max_pending: \(config.redis.maxPending)")
        lines.append("  max_outage: \(n(config.redis.maxOutage))")
        lines.append("http:")
        lines.append("  listen: \(q(config.http.listen))")
        lines.append("  heartbeat: \(n(config.http.heartbeat))")
        lines.append("  replay: \(config.http.replay)")
        lines.append("  client_buffer: \(config.http.clientBuffer)")
        lines.append("  request_timeout: \(n(config.http.requestTimeout))")
        lines.append("  max_connections: \(config.http.maxConnections)")
        lines.append("  max_topics: \(config.http.maxTopics)")
        lines.append("  relay: \(config.http.relay.rawValue)")
        lines.append("  relay_takeover: \(n(config.http.relayTakeover))")
        if let tls = config.http.tls {
            lines.append("  tls:")
            lines.append("    cert: \(q(tls.cert))")
            lines.append("    key: \(q(tls.key))")
        }
        lines.append("  metrics: \(config.http.metrics)")
        lines.append("  cors:")
        lines.append("    allowed_origins: " + (config.http.cors.allowAny ? q("*") : list(config.http.cors.allowedOrigins)))
        if let auth = config.http.auth {
            lines.append("  auth:")
            lines.append("    tokens: " + list(auth.tokens.map { _ in Redaction.mask }))
            if let jwt = auth.jwt {
                lines.append("    jwt:")
                if jwt.secret != nil { lines.append("      secret: \(q(Redaction.mask))") }
                if let path = jwt.publicKeyPath { lines.append("      public_key: \(q(path))") }
                if let path = jwt.jwksPath { lines.append("      jwks: \(q(path))") }
                lines.append("      leeway: \(n(jwt.leeway))")
                if let audience = jwt.audience { lines.append("      audience: \(q(audience))") }
                if let issuer = jwt.issuer { lines.append("      issuer: \(q(issuer))") }
            }
        }
        lines.append("log:")
        lines.append("  level: \(q(config.log.level))")
        lines.append("  format: \(q(config.log.format.rawValue))")
        lines.append("on_gap: \(q(config.onGap.rawValue))")
        lines.append("shutdown_timeout: \(n(config.shutdownTimeout))")
        lines.append("tables:")
        for table in config.tables {
            lines.append("  - name: \(q(table.name))")
            if let key = table.key { lines.append("    key: \(list(key))") }
            lines.append("    ignore_columns: \(list(table.ignoreColumns))")
            lines.append("    redis:" + (table.redis.isEmpty ? " []" : ""))
            for rule in table.redis {
                lines.append("      - key: \(q(rule.key.source))")
                lines.append("        action: \(rule.action.rawValue)")
                if let columns = rule.columns { lines.append("        columns: \(list(columns))") }
                if let ttl = rule.ttl { lines.append("        ttl: \(n(ttl))") }
            }
            lines.append("    sse:")
            if let topics = table.sse.topics { lines.append("      topics: \(list(topics.map(\.source)))") }
            if let columns = table.sse.columns { lines.append("      columns: \(list(columns))") }
            lines.append("      show_keys: \(table.sse.showKeys)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
