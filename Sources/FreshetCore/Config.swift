/// Freshet's whole configuration, as read from `freshet.yml` with environment overrides applied and defaults filled in.
///
/// Every duration is in seconds (fractions allowed) and every size in bytes. See `docs/configuration.md`.
public struct FreshetConfig: Sendable, Equatable {
    public var postgres: PostgresSettings
    public var redis: RedisSettings
    public var http: HTTPSettings
    public var log: LogSettings
    public var tables: [TableConfig]
    /// What to do after a gap in the notification stream (`flush` by default).
    public var onGap: GapPolicy
    /// How long SIGTERM waits for Redis operations already received. Default 5 s.
    public var shutdownTimeout: Double

    public init(
        postgres: PostgresSettings, redis: RedisSettings = .init(), http: HTTPSettings = .init(),
        log: LogSettings = .init(), tables: [TableConfig], onGap: GapPolicy = .flush, shutdownTimeout: Double = 5
    ) {
        self.postgres = postgres
        self.redis = redis
        self.http = http
        self.log = log
        self.tables = tables
        self.onGap = onGap
        self.shutdownTimeout = shutdownTimeout
    }
}

/// `postgres:` — the database whose tables Freshet watches.
public struct PostgresSettings: Sendable, Equatable {
    /// Any libpq connection string: a `postgresql://` URL or `key=value` pairs. Env `DATABASE_URL` overrides it.
    public var url: String
    /// The NOTIFY channel the triggers send on. Default `freshet`.
    public var channel: String
    /// How changes are captured: `notify` (triggers + LISTEN, the default) or `replication` (a logical slot).
    public var source: CaptureSource
    /// `postgres.replication:` — the slot and publication of the `replication` source.
    public var replication: ReplicationSettings

    public init(
        url: String, channel: String = "freshet", source: CaptureSource = .notify, replication: ReplicationSettings = .init()
    ) {
        self.url = url
        self.channel = channel
        self.source = source
        self.replication = replication
    }
}

/// Where Freshet learns of row changes.
public enum CaptureSource: String, Sendable, Equatable, CaseIterable {
    /// Statement-level triggers that `pg_notify`, and one LISTEN connection: any PostgreSQL, at-most-once (gaps are
    /// repaired by a flush).
    case notify
    /// A permanent logical replication slot (pgoutput): needs `wal_level = logical`; at-least-once, in commit order,
    /// nothing lost across restarts, nothing added to the application's writes.
    case replication
}

/// `postgres.replication:` — the logical slot and the publication Freshet reads.
public struct ReplicationSettings: Sendable, Equatable {
    /// The permanent logical slot (pgoutput), created when missing. Default `freshet`.
    public var slot: String
    /// The publication, created and kept equal to `tables` when `manage` is true. Default `freshet`.
    public var publication: String
    /// Create and alter the publication (true, the default), or require it to exist as configured.
    public var manage: Bool
    /// Bytes of WAL the slot may hold back before `/readyz` says 503 and a warning is logged. Default 1 GiB.
    public var maxRetained: Int

    public init(slot: String = "freshet", publication: String = "freshet", manage: Bool = true, maxRetained: Int = 1 << 30) {
        self.slot = slot
        self.publication = publication
        self.manage = manage
        self.maxRetained = maxRetained
    }
}

/// `redis:` — the cache Freshet invalidates: one server (`url`), a Redis Cluster (`cluster`), or the master that
/// Redis Sentinel names (`sentinel`); exactly one of them.
public struct RedisSettings: Sendable, Equatable {
    /// `redis[s]://[[user]:password@]host[:port][/db]` or `unix:///path/redis.sock?db=N`. Env `REDIS_URL` overrides it.
    public var url: String
    /// Seed nodes of a Redis Cluster (`redis[s]://[[user]:password@]host:port`); the rest is discovered.
    public var cluster: [String]?
    /// The sentinels and the master name they watch.
    public var sentinel: RedisSentinelSettings?
    /// TLS for `rediss://` URLs (standalone, cluster and sentinel nodes).
    public var tls: RedisTLSSettings
    /// Connect and command timeout, seconds. Default 2.
    public var timeout: Double
    /// Operations allowed to wait for Redis; past this the queue is dropped and a gap recorded. Default 100,000.
    public var maxPending: Int
    /// How long Redis may be away before the waiting operations are dropped and a gap recorded. Default 30 s.
    public var maxOutage: Double
    /// After a master changes (a Sentinel or Cluster failover), the operations of this many seconds of events are
    /// applied again: the old master may have acknowledged writes its replica never received. Default 15 s.
    public var replayAfterFailover: Double

    public init(
        url: String = "redis://127.0.0.1:6379/0", cluster: [String]? = nil, sentinel: RedisSentinelSettings? = nil,
        tls: RedisTLSSettings = .init(), timeout: Double = 2, maxPending: Int = 100_000, maxOutage: Double = 30,
        replayAfterFailover: Double = 15
    ) {
        self.url = url
        self.cluster = cluster
        self.sentinel = sentinel
        self.tls = tls
        self.timeout = timeout
        self.maxPending = maxPending
        self.maxOutage = maxOutage
        self.replayAfterFailover = replayAfterFailover
    }
}

/// `redis.sentinel:` — where the sentinels are and which master to ask them for.
public struct RedisSentinelSettings: Sendable, Equatable {
    /// `redis[s]://[[user]:password@]host:port` of each sentinel (the credentials are the sentinels' own).
    public var nodes: [String]
    /// The master's name in the sentinels' configuration.
    public var master: String
    /// ACL user and password of the master (and its replicas), when they need one.
    public var username: String?
    public var password: String?
    /// The database to select on the master. Default 0.
    public var database: Int

    public init(nodes: [String], master: String, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.nodes = nodes
        self.master = master
        self.username = username
        self.password = password
        self.database = database
    }
}

/// `redis.tls:` — how `rediss://` connections verify the server and present a client certificate.
public struct RedisTLSSettings: Sendable, Equatable {
    /// PEM file of the certificate authorities to trust; default: the system's trust store.
    public var ca: String?
    /// PEM client certificate (and `key`, its private key), for servers that require one.
    public var cert: String?
    public var key: String?
    /// The name to verify in the server's certificate (and send as SNI); default: the host Freshet connects to.
    public var serverName: String?
    /// Accept any certificate. For tests only: anyone on the path can then read and change the traffic.
    public var insecureSkipVerify: Bool

    public init(ca: String? = nil, cert: String? = nil, key: String? = nil, serverName: String? = nil, insecureSkipVerify: Bool = false) {
        self.ca = ca
        self.cert = cert
        self.key = key
        self.serverName = serverName
        self.insecureSkipVerify = insecureSkipVerify
    }

    /// Whether anything was configured.
    public var isConfigured: Bool { self != RedisTLSSettings() }
}

/// `http:` — the SSE, health and metrics endpoint.
public struct HTTPSettings: Sendable, Equatable {
    /// `host:port` to bind. Default `127.0.0.1:8080` (loopback). Env `FRESHET_LISTEN` overrides it.
    public var listen: String
    /// Seconds between SSE comment heartbeats. Default 15.
    public var heartbeat: Double
    /// Events kept for `Last-Event-ID` resume. Default 10,000.
    public var replay: Int
    /// Bytes a subscriber may have waiting before it is dropped. Default 1 MiB.
    public var clientBuffer: Int
    public var cors: CORSSettings
    /// Authentication for `/events`; `nil` means open.
    public var auth: AuthSettings?
    /// Serve `/metrics`. Default true.
    public var metrics: Bool
    /// Seconds a connection has to send a whole request head (after connecting, or after its last response);
    /// then it is closed. Default 10.
    public var requestTimeout: Double
    /// Open connections allowed; past it a new connection's request gets 503 and the connection is closed.
    /// Default 20,000.
    public var maxConnections: Int
    /// Topics one `/events` subscription may name; past it 400. Default 100.
    public var maxTopics: Int
    /// HTTPS with HTTP/2 (ALPN `h2`, HTTP/1.1 still served); nil serves plain HTTP/1.1.
    public var tls: HTTPTLSSettings?
    /// `none`: each process serves what it captured. `redis`: several processes share one configuration; one (the
    /// writer, elected with a PostgreSQL advisory lock) applies Redis operations and appends each event to a Redis
    /// Stream, and every process serves `/events` from that stream.
    public var relay: RelayMode = .none
    /// Seconds within which a standby takes over from a writer that died. Default 5.
    public var relayTakeover: Double = 5

    public init(
        listen: String = "127.0.0.1:8080", heartbeat: Double = 15, replay: Int = 10_000, clientBuffer: Int = 1 << 20,
        cors: CORSSettings = .init(), auth: AuthSettings? = nil, metrics: Bool = true, requestTimeout: Double = 10,
        maxConnections: Int = 20_000, maxTopics: Int = 100
    ) {
        self.requestTimeout = requestTimeout
        self.maxConnections = maxConnections
        self.maxTopics = maxTopics
        self.listen = listen
        self.heartbeat = heartbeat
        self.replay = replay
        self.clientBuffer = clientBuffer
        self.cors = cors
        self.auth = auth
        self.metrics = metrics
    }
}

/// `http.relay`: how events reach the subscribers of several Freshet processes.
public enum RelayMode: String, Sendable, Equatable, CaseIterable {
    case none
    case redis
}

/// `http.tls:` — the server's certificate chain and key (PEM files), for HTTPS and HTTP/2.
public struct HTTPTLSSettings: Sendable, Equatable {
    public var cert: String
    public var key: String

    public init(cert: String, key: String) {
        self.cert = cert
        self.key = key
    }
}

/// `http.cors:` — which browser origins may read `/events`.
public struct CORSSettings: Sendable, Equatable {
    /// Allowed origins; `nil` with `allowAny` false means CORS is off.
    public var allowedOrigins: [String]
    /// `allowed_origins: "*"`.
    public var allowAny: Bool

    public init(allowedOrigins: [String] = [], allowAny: Bool = false) {
        self.allowedOrigins = allowedOrigins
        self.allowAny = allowAny
    }
}

/// `http.auth:` — static bearer tokens and/or JWTs.
public struct AuthSettings: Sendable, Equatable {
    public var tokens: [String]
    public var jwt: JWTSettings?

    public init(tokens: [String] = [], jwt: JWTSettings? = nil) {
        self.tokens = tokens
        self.jwt = jwt
    }
}

/// `http.auth.jwt:` — how JWTs are verified. At least one of `secret`, `public_key`, `jwks`; not both `public_key` and
/// `jwks`. A token's `alg` must be the configured key's algorithm; `none` is never accepted.
public struct JWTSettings: Sendable, Equatable {
    /// `secret`: HS256, and HS384/HS512 when it is long enough (48/64 bytes). At least 32 bytes.
    public var secret: String?
    /// `public_key`: a PEM file with an RSA (RS256) or P-256 (ES256) public key, or a certificate holding one.
    public var publicKeyPath: String?
    /// `jwks`: a JWKS file (an identity provider's `/.well-known/jwks.json`); RS256 and ES256 keys, picked by `kid`.
    public var jwksPath: String?
    /// `leeway`: seconds of clock skew allowed for `exp` and `nbf`. Default 0.
    public var leeway: Double
    /// `audience`: when set, the token's `aud` must name it.
    public var audience: String?
    /// `issuer`: when set, the token's `iss` must equal it.
    public var issuer: String?

    public init(
        secret: String? = nil, publicKeyPath: String? = nil, jwksPath: String? = nil, leeway: Double = 0,
        audience: String? = nil, issuer: String? = nil
    ) {
        self.secret = secret
        self.publicKeyPath = publicKeyPath
        self.jwksPath = jwksPath
        self.leeway = leeway
        self.audience = audience
        self.issuer = issuer
    }
}

/// `log:` — level and line format.
public struct LogSettings: Sendable, Equatable {
    /// swift-log level name: trace, debug, info, notice, warning, error, critical. Default info.
    public var level: String
    public var format: LogFormat

    public init(level: String = "info", format: LogFormat = .text) {
        self.level = level
        self.format = format
    }
}

/// How log lines are written.
public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    case text, json
}

/// `on_gap:` — what Freshet does when it may have missed changes.
public enum GapPolicy: String, Sendable, Equatable, CaseIterable {
    /// Delete every key matching the configured templates and tell subscribers to resync (default).
    case flush
    /// Do nothing (unsafe: stale keys may stay until something else invalidates them).
    case none
}

/// One entry of `tables:`.
public struct TableConfig: Sendable, Equatable {
    /// The table as written in the config (`users`, `billing.invoices`): the metric label and default topic.
    public var name: String
    /// The parsed, case-folded name used to find the table in the catalog.
    public var qualifiedName: TableName
    /// Key columns; `nil` means the primary key from the catalog.
    public var key: [String]?
    /// An UPDATE that changes only these columns fires nothing.
    public var ignoreColumns: [String]
    public var redis: [RedisRule]
    public var sse: SSETableSettings

    public init(
        name: String, qualifiedName: TableName, key: [String]? = nil, ignoreColumns: [String] = [],
        redis: [RedisRule] = [], sse: SSETableSettings = .init()
    ) {
        self.name = name
        self.qualifiedName = qualifiedName
        self.key = key
        self.ignoreColumns = ignoreColumns
        self.redis = redis
        self.sse = sse
    }
}

/// One entry of a table's `redis:` list: a key template and what to do with the key.
public struct RedisRule: Sendable, Equatable {
    public var key: KeyTemplate
    public var action: RedisAction
    /// For `set`: the columns written as JSON; `nil` means every column.
    public var columns: [String]?
    /// For `set`: expiry in seconds; `nil` means no TTL.
    public var ttl: Double?

    public init(key: KeyTemplate, action: RedisAction = .delete, columns: [String]? = nil, ttl: Double? = nil) {
        self.key = key
        self.action = action
        self.columns = columns
        self.ttl = ttl
    }
}

/// What a Redis rule does to its key on a change.
public enum RedisAction: String, Sendable, Equatable, CaseIterable {
    /// UNLINK the key.
    case delete
    /// SET the key to the row as JSON (UNLINK it on delete).
    case set
}

/// A table's `sse:` section.
public struct SSETableSettings: Sendable, Equatable {
    /// Topic templates; `nil` means `NAME` and `NAME/{key1}/{key2}…`.
    public var topics: [KeyTemplate]?
    /// Row columns sent to subscribers; `nil` means the key columns only.
    public var columns: [String]?
    /// Include the Redis keys acted on in each event.
    public var showKeys: Bool

    public init(topics: [KeyTemplate]? = nil, columns: [String]? = nil, showKeys: Bool = false) {
        self.topics = topics
        self.columns = columns
        self.showKeys = showKeys
    }
}
