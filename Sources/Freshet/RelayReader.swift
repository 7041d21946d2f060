import Foundation
import FreshetCore
import FreshetHTTP
import FreshetRedis
import FreshetSystem
import Logging
import ServiceLifecycle
import Synchronization

/// Every process's half of `http.relay: redis`: reads the relay stream (`XREAD BLOCK`) on a thread that owns its
/// connections and publishes each entry to this process's hub, so that every process — the writer included — serves
/// the same events with the same ids, in the same order, and each only after the writer's Redis operations for it
/// were acknowledged (the writer appends after that).
///
/// At start it loads the stream's last `http.replay` entries into the hub, so a `Last-Event-ID` from any process, or
/// from before a restart of all of them, resumes from the stream; an id older than the oldest entry gets a resync.
/// After losing Redis it goes on from the last id it read; if the stream was trimmed past it meanwhile, subscribers
/// get a resync.
///
/// When the writer started the stream over (a replication slot made again below its entries: the generation key
/// changed, read with each `XREAD`), the hub starts a new history (old ids resync) and the reader reads the new stream
/// from its start; subscribers get one resync.
final class RelayReader: Service, @unchecked Sendable {
    let access: RedisAccess
    let key: String
    let generationKey: String
    let hub: EventHub
    let replay: Int
    let readiness: ReadinessState
    let logger: Logger
    private let stopped = Mutex(false)

    init(
        access: RedisAccess, key: String, generationKey: String, hub: EventHub, replay: Int, readiness: ReadinessState,
        logger: Logger
    ) {
        self.access = access
        self.key = key
        self.generationKey = generationKey
        self.hub = hub
        self.replay = replay
        self.readiness = readiness
        self.logger = logger
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await runOnDedicatedThread(name: "freshet-relay-in", body: { self.loop() }, stop: { self.stop() }, cancelStop: { self.stop() })
        } onGracefulShutdown: {
            self.stop()
        }
    }

    func stop() { stopped.withLock { $0 = true } }

    private var isStopped: Bool { stopped.withLock { $0 } }

    private func loop() {
        let target = access.target(logger: logger)
        var lastID: String?
        var lostAfter: String?
        /// The stream's generation as last read (nil: never started over).
        var generation: RedisReply = .null
        /// Started over: the first entry read must be the writer's resync, or subscribers get one of ours.
        var expectResync = false
        var backoff = Backoff(base: 0.05, cap: 1)
        let block = String(max(100, min(1000, Int(access.timeout * 500))))
        while !isStopped {
            do throws(RedisError) {
                if lastID == nil {
                    (lastID, generation) = try load(target)
                } else if let since = lostAfter {
                    // Back after losing Redis: were entries after the last one read trimmed away meanwhile?
                    let first = try target.command(["XRANGE", key, "-", "+", "COUNT", "1"], key: key)
                    if case .array(let entries) = first, case .array(let entry)? = entries.first, let id = entry.first?.text,
                       let oldest = EventID(parsing: id), let seen = EventID(parsing: since), oldest > seen,
                       try target.command(["XRANGE", key, since, since], key: key) == .array([]) {
                        hub.publishResync(reason: "relay stream trimmed while Redis was away")
                    }
                    lostAfter = nil
                }
                // The generation is read after the XREAD returns: when it is unchanged, so was the stream the XREAD read.
                let replies = try target.pipeline([
                    RedisCommand(key: key, arguments: ["XREAD", "COUNT", "1000", "BLOCK", block, "STREAMS", key, lastID!]),
                    RedisCommand(key: generationKey, arguments: ["GET", generationKey]),
                ])
                let reply = replies[0]
                if let text = reply.errorText { throw RedisError.refused("XREAD", RedisErrorReply(text)) }
                if let text = replies[1].errorText { throw RedisError.refused("GET", RedisErrorReply(text)) }
                if replies[1] != generation {
                    // Started over: what this XREAD returned may be the new stream's; read that from its start.
                    logger.warning("relay stream started over (a new replication slot); subscribers resync", metadata: ["last_id": "\(lastID!)"])
                    hub.setResumeFloor(EventID(epoch: 0, sequence: 0), ceiling: 0, gap: true)
                    generation = replies[1]
                    lastID = "0-0"
                    expectResync = true
                    continue
                }
                if case .array(let streams) = reply, case .array(let stream)? = streams.first, stream.count == 2 {
                    for entry in Self.entries(stream[1]) {
                        if expectResync {
                            expectResync = false
                            if entry.fields["type"] != Array("resync".utf8) { hub.publishResync(reason: "relay stream started over") }
                        }
                        deliver(entry)
                        lastID = entry.id
                    }
                }
                if backoff.attempt > 0 { logger.info("relay stream readable again") }
                backoff.reset()
                readiness.update { $0.relayProblem = nil }
            } catch {
                target.reset()
                if lastID != nil { lostAfter = lastID }
                readiness.update { $0.relayProblem = "relay stream \(key) unreadable: \(error.message)" }
                if backoff.attempt == 0 { logger.error("relay: cannot read the stream; retrying", metadata: ["error": "\(error.message)"]) }
                Thread.sleep(forTimeInterval: backoff.next())
            }
        }
    }

    /// Publishes the stream's last `replay` entries and sets the hub's resume floor; returns the last id and the
    /// stream's generation.
    private func load(_ target: RedisTarget) throws(RedisError) -> (String, RedisReply) {
        let replies = try target.pipeline([
            RedisCommand(key: generationKey, arguments: ["GET", generationKey]),
            RedisCommand(key: key, arguments: ["XREVRANGE", key, "+", "-", "COUNT", String(max(replay, 1))]),
        ])
        if let text = replies[0].errorText { throw RedisError.refused("GET", RedisErrorReply(text)) }
        let reply = replies[1]
        if let text = reply.errorText { throw RedisError.refused("XREVRANGE", RedisErrorReply(text)) }
        let entries = Self.entries(reply).reversed()
        for entry in entries { deliver(entry) }
        let oldest = entries.first.flatMap { EventID(parsing: $0.id) } ?? EventID(epoch: 0, sequence: 0)
        let newest = entries.last.flatMap { EventID(parsing: $0.id) } ?? oldest
        hub.setResumeFloor(oldest, ceiling: newest.epoch, gap: false)
        logger.info("relay stream loaded", metadata: ["entries": "\(entries.count)", "last_id": "\(newest)"])
        return (entries.last?.id ?? "0-0", replies[0])
    }

    struct Entry {
        var id: String
        var fields: [String: [UInt8]]
    }

    /// `[[id, [field, value, …]], …]`.
    static func entries(_ reply: RedisReply) -> [Entry] {
        guard case .array(let items) = reply else { return [] }
        var out: [Entry] = []
        for case .array(let parts) in items where parts.count == 2 {
            guard let id = parts[0].text, case .array(let flat) = parts[1] else { continue }
            var fields: [String: [UInt8]] = [:]
            var i = 0
            while i + 1 < flat.count {
                if let name = flat[i].text, case .string(let value) = flat[i + 1] { fields[name] = value }
                i += 2
            }
            out.append(Entry(id: id, fields: fields))
        }
        return out
    }

    private func deliver(_ entry: Entry) {
        func text(_ name: String) -> String { entry.fields[name].map { String(decoding: $0, as: UTF8.self) } ?? "" }
        switch text("type") {
        case "change":
            guard let id = EventID(parsing: entry.id), let data = entry.fields["data"] else { return }
            let topics = text("topics").split(separator: "\n").map(String.init)
            let shapes = text("whole") == "1" ? text("shapes").split(separator: "\n").map { TopicPattern(String($0)) } : nil
            hub.publishRelayed(id: id, topics: topics, configName: text("table"), wholeTableShapes: shapes, data: data, at: text("at"))
        case "resync":
            hub.publishResync(reason: text("reason"))
        default:
            logger.warning("relay: skipped a stream entry of an unknown type", metadata: ["id": "\(entry.id)"])
        }
    }
}

/// The relay stream's entries: one per event, one resync per gap repair.
enum RelayEntries {
    static func entries(_ jobs: [RedisJob], explicitIDs: Bool, hub: EventHub) -> [RelayStreamWriter.Entry] {
        jobs.compactMap { job in
            if let cause = job.repairCause {
                return RelayStreamWriter.Entry(
                    id: explicitIDs ? nil : "*", fields: ["type", "resync", "reason", "gap: \(cause)"], historyStart: job.historyStart
                )
            }
            guard let event = job.event else { return nil }
            var fields = [
                "type", "change", "data", String(decoding: event.jsonBytes, as: UTF8.self), "topics", event.topics.joined(separator: "\n"),
                "table", event.configName, "whole", event.concernsWholeTable ? "1" : "0", "at", event.at,
            ]
            if event.concernsWholeTable {
                fields += ["shapes", hub.wholeTableShapes(event.configName).map(\.source).joined(separator: "\n")]
            }
            return RelayStreamWriter.Entry(id: explicitIDs ? event.id?.description : "*", fields: fields)
        }
    }
}
