import FreshetCore
import FreshetHTTP
import Glibc
import NIOCore
import FreshetPostgres
import FreshetRedis
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Options of `freshet run` that are not part of the configuration file.
public struct RunOptions: Sendable {
    /// Install the triggers at start (`--no-install` turns it off).
    public var installTriggers: Bool
    /// Called with each event after it was published (tests).
    public var onEvent: @Sendable (ChangeEvent) -> Void
    /// The registry `/metrics` serves; `nil` turns the endpoint off.
    public var metrics: MetricsExport?
    /// Signals that start a graceful shutdown; tests pass none and call `shutdown()`.
    public var signals: [UnixSignal]

    public init(
        installTriggers: Bool = true, metrics: MetricsExport? = nil, signals: [UnixSignal] = [.sigterm, .sigint],
        onEvent: @escaping @Sendable (ChangeEvent) -> Void = { _ in }
    ) {
        self.installTriggers = installTriggers
        self.metrics = metrics
        self.signals = signals
        self.onEvent = onEvent
    }
}

/// A whole Freshet process: source (notify or replication) → Redis writer → publisher → hub → HTTP, as one
/// `ServiceGroup`.
///
/// The CLI's `run` and the integration tests both build it with `FreshetApplication(config:options:logger:)`.
public final class FreshetApplication: Sendable {
    public let config: FreshetConfig
    package let hub: EventHub
    package let listener: PostgresListener
    package let writer: RedisWriter
    /// Counts of what was skipped, for tests and logs.
    public let stats = PipelineStats()
    let readiness = ReadinessState()
    let group: ServiceGroup
    let logger: Logger
    let boundPortBox = BoundPort()
    /// Every HTTP connection still open when the services stopped is closed then.
    let connections: OpenConnections

    /// The HTTP port once the server listens (useful with `http.listen: 127.0.0.1:0`).
    public var boundPort: Int? { boundPortBox.value }
    let listenAddress: ListenAddress

    /// Builds the services. Throws `ConfigError` for a configuration that cannot work (e.g. a bad Redis URL).
    public init(config: FreshetConfig, options: RunOptions = .init(), logger: Logger) throws(ConfigError) {
        self.config = config
        self.logger = logger
        let connections = OpenConnections()
        self.connections = connections
        let redis: RedisAccess
        do {
            redis = try RedisAccess(config.redis)
        } catch {
            throw ConfigError(problems: [ConfigProblem(field: error.field, message: error.message)])
        }
        var authenticator: Authenticator?
        if let auth = config.http.auth {
            do {
                authenticator = try Authenticator(auth)
            } catch {
                throw ConfigError(problems: [ConfigProblem(field: error.field, message: error.message)])
            }
        }
        guard let address = ListenAddress(parsing: config.http.listen) else {
            throw ConfigError(problems: [ConfigProblem(field: "http.listen", message: "not host:port")])
        }
        listenAddress = address
        let metrics = FreshetMetrics()
        let replication = config.postgres.source == .replication
        let relayed = config.http.relay == .redis
        hub = EventHub(
            replay: config.http.replay, clientBuffer: config.http.clientBuffer, heartbeat: config.http.heartbeat,
            durableIDs: replication || relayed, logger: logger
        )
        listener = PostgresListener(
            conninfo: config.postgres.url, channel: config.postgres.channel, logger: logger,
            onQueueUsage: { metrics.notifyQueueUsage($0) }
        )
        // `http.relay: redis`: the writer appends each batch's events to the relay stream; every process reads it.
        let relayName = replication ? config.postgres.replication.slot : config.postgres.channel
        let relayKey = "freshet:{\(relayName)}:events"  // one hash tag: the stream lives on one Cluster node
        let relayGenerationKey = "freshet:{\(relayName)}:generation"
        let hub = self.hub
        let relayStream = relayed
            ? RelayStreamWriter(
                key: relayKey, generationKey: relayGenerationKey, maxLength: config.http.replay, explicitIDs: replication,
                entries: { RelayEntries.entries($0, explicitIDs: replication, hub: hub) }, onDuplicate: { metrics.relayDuplicates($0) },
                onStartOver: { [logger] top, start in
                    logger.warning("relay stream started over for a new replication slot (its ids may be below the stream's)", metadata: [
                        "stream_top": "\(top)", "slot_start": "\(start)",
                    ])
                }
            )
            : nil
        let fence: WriterFence? = relayed ? WriterFence() : nil  // opened by the writer role while it holds the lock
        let positions = ReplicationPositions()
        var onApplied: (@Sendable (JobConfirmation) -> Void)?
        if replication { onApplied = { positions.record($0) } }
        writer = RedisWriter(
            topology: redis.topology, tls: redis.tls, timeout: config.redis.timeout, maxPending: config.redis.maxPending,
            maxOutage: config.redis.maxOutage, replayAfterFailover: config.redis.replayAfterFailover,
            shutdownTimeout: config.shutdownTimeout, logger: logger, observer: metrics,
            durable: replication, onApplied: onApplied, relay: relayStream, fence: fence
        )
        let queries = PostgresQueryConnection(conninfo: config.postgres.url)
        // One source; everything after it (the `ChangeSink`, writer, publisher, hub) is shared.
        let pipeline: any Service
        let context = SourceContext(
            config: config, writer: writer, hub: hub, queries: queries, readiness: readiness, logger: logger, metrics: metrics,
            stats: stats, fence: fence
        )
        if replication {
            readiness.update { $0.replication = true }
            pipeline = ReplicationSource(context: context, redis: redis, positions: positions)
        } else {
            pipeline = NotifySource(context: context, listener: listener, installTriggers: options.installTriggers)
        }
        let publisher = EventPublisher(
            writer: writer, hub: hub, metrics: metrics, readiness: readiness, logger: logger, relayed: relayed,
            onEvent: options.onEvent
        )

        let router = Router(context: FreshetRequestContext.self)
        let readiness = self.readiness
        let writer = self.writer
        let eventsOptions = Routes.EventsOptions(authenticator: authenticator, cors: config.http.cors, logger: logger, maxTopics: config.http.maxTopics)
        Routes.add(
            to: router, hub: hub, readiness: Readiness { readiness.reasons(redis: writer.notReadyReasons) }, options: eventsOptions
        )
        if let metrics = options.metrics {
            Routes.addMetrics(to: router) { metrics.text() }
        }
        let boundPort = self.boundPortBox
        let server: HTTPServerBuilder
        do {
            server = try ServerBuilder.make(
                connections: connections, http: config.http,
                events: EventsServer(options: eventsOptions, hub: hub, http: config.http, connections: connections)
            )
        } catch {
            throw ConfigError(problems: [ConfigProblem(field: error.field, message: error.message)])
        }
        let http = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "freshet"),
            onServerRunning: { channel in boundPort.set(channel.localAddress?.port) },
            logger: logger
        )
        // Shutdown runs in reverse: the hub first (ends every SSE stream, or the HTTP server would wait for them), then
        // HTTP, the source (stops its connection after handing on what it received), the writer (drains), and the
        // publisher last (ends when the writer's completions end).
        var writerSide: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: publisher),
            .init(service: writer),
            .init(service: pipeline),
        ]
        var relayServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if relayed, let fence {
            let lock = WriterLock(
                conninfo: config.postgres.url, name: "freshet writer \(relayName)", takeover: config.http.relayTakeover, logger: logger
            )
            readiness.update { $0.standby = true }
            writerSide = [.init(service: WriterRole(
                lock: lock, fence: fence, services: writerSide, readiness: readiness, logger: logger, shutdownTimeout: config.shutdownTimeout
            ))]
            relayServices = [.init(service: RelayReader(
                access: redis, key: relayKey, generationKey: relayGenerationKey, hub: hub, replay: config.http.replay, readiness: readiness, logger: logger
            ))]
        }
        let services: [ServiceGroupConfiguration.ServiceConfiguration] = writerSide + relayServices + [
            .init(service: http),
            .init(service: hub),
        ]
        var configuration = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: options.signals,
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = .seconds(config.shutdownTimeout + 5)
        // No cancellation limit: ServiceGroup would crash the process when it passes. A second SIGTERM exits at once.
        configuration.maximumCancellationDuration = nil
        group = ServiceGroup(configuration: configuration)
    }

    /// Runs until SIGTERM/SIGINT or `shutdown()` (graceful: flush Redis for at most `shutdown_timeout`), or until a
    /// service fails: a `ConfigError` when a table or column does not exist.
    public func run() async throws {
        defer { connections.closeAll() }
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw StartupError(message: "cannot listen on \(listenAddress): address already in use (set http.listen or FRESHET_LISTEN)")
        }
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
    }

    /// Why `/readyz` would say 503 now; empty when ready.
    public var notReadyReasons: [String] { readiness.reasons(redis: writer.notReadyReasons) }

    /// Whether this process applies Redis operations: always with `http.relay: none`; with `redis`, while it holds
    /// the writer lock.
    public var writing: Bool { !readiness.isStandby }
}

/// A problem that stops Freshet from starting, other than configuration: exit code 1, with this message.
public struct StartupError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The port the HTTP server got, set once it listens.
final class BoundPort: Sendable {
    private let port = Atomic<Int>(0)
    var value: Int? { port.load(ordering: .acquiring).nonZero }
    func set(_ value: Int?) { port.store(value ?? 0, ordering: .releasing) }
}

extension Int {
    fileprivate var nonZero: Int? { self == 0 ? nil : self }
}
