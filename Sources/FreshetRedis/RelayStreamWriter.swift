import FreshetCore

/// The writer's half of `http.relay: redis`: appends the events of each batch to a capped Redis Stream
/// (`XADD key MAXLEN ~ N id field value …`, pipelined) on the writer's thread, after the batch's operations were
/// acknowledged and before its jobs are reported or confirmed to the replication slot: invalidate, append, confirm.
/// Every Freshet process (this one included) serves `/events` from that stream (`RelayReader`).
///
/// - Ids: `*` (Redis assigns `MS-SEQ`) with the notify source; the change's `LSN-N` with the replication source, so
///   that a change the slot delivers again after a takeover is refused by Redis as not newer than the stream's top
///   (counted, never sent twice). A resync entry in replication mode takes the last id's `LSN-*`.
/// - A failed append fails the batch: the writer retries it (UNLINK and SET are idempotent; a re-appended change is
///   refused as a duplicate in replication mode).
/// - A replication slot made again may start below the stream's top (a failover to a standby that lagged): its repair's
///   resync entry then **starts the stream over** — `DEL` the stream, `INCR` the generation key, append the resync
///   and the new history's entries after it. Every reader reads the generation with each `XREAD` and follows
///   (`RelayReader`). Ids that only compared with the old slot's mean nothing now, so nothing of them is kept.
package final class RelayStreamWriter: @unchecked Sendable {
    /// One stream entry: its id (`LSN-N`, or nil: `*`, or right after the last one with explicit ids) and fields.
    package struct Entry: Sendable {
        package var id: String?
        package var fields: [String]
        /// A resync for a new slot history whose ids start after this position (`RedisJob.historyStart`).
        package var historyStart: EventID?

        package init(id: String?, fields: [String], historyStart: EventID? = nil) {
            self.id = id
            self.fields = fields
            self.historyStart = historyStart
        }
    }

    package let key: String
    /// Counts the stream's lives: incremented whenever it starts over (same hash tag as `key`).
    package let generationKey: String
    private let maxLength: Int
    private let explicitIDs: Bool
    private let entries: @Sendable ([RedisJob]) -> [Entry]
    private let onDuplicate: @Sendable (Int) -> Void
    private let onStartOver: @Sendable (_ top: EventID, _ start: EventID) -> Void
    /// Explicit ids: the stream's top id as last seen (touched on the writer's thread only).
    private var lastID: EventID?

    /// - Parameter entries: the stream entries of a batch's jobs, in order (events, and resyncs for repairs).
    package init(
        key: String, generationKey: String, maxLength: Int, explicitIDs: Bool, entries: @escaping @Sendable ([RedisJob]) -> [Entry],
        onDuplicate: @escaping @Sendable (Int) -> Void = { _ in },
        onStartOver: @escaping @Sendable (_ top: EventID, _ start: EventID) -> Void = { _, _ in }
    ) {
        self.key = key
        self.generationKey = generationKey
        self.onStartOver = onStartOver
        self.maxLength = max(maxLength, 1)
        self.explicitIDs = explicitIDs
        self.entries = entries
        self.onDuplicate = onDuplicate
    }

    /// Appends the jobs' entries. Throws when Redis did not take them all (nothing is reported then).
    func append(_ jobs: [RedisJob], on target: RedisTarget) throws(RedisError) {
        let batch = entries(jobs)
        guard !batch.isEmpty else { return }
        do throws(RedisError) {
            if explicitIDs && lastID == nil { lastID = try Self.topID(key, on: target) ?? EventID(epoch: 0, sequence: 0) }
            var commands: [RedisCommand] = []
            for entry in batch {
                var id = entry.id ?? "*"
                if explicitIDs, let start = entry.historyStart, start <= lastID! {
                    // The new slot's ids start at or below entries already in the stream: start it over.
                    onStartOver(lastID!, start)
                    commands.append(RedisCommand(key: key, arguments: ["DEL", key]))
                    commands.append(RedisCommand(key: generationKey, arguments: ["INCR", generationKey]))
                    lastID = EventID(epoch: 0, sequence: 0)  // the resync becomes 0-1, below every id of the new slot
                }
                if explicitIDs {
                    if let parsed = entry.id.flatMap(EventID.init(parsing:)) {
                        if parsed > lastID! { lastID = parsed }
                    } else {
                        id = "\(lastID!.epoch)-*"
                    }
                }
                commands.append(RedisCommand(key: key, arguments: ["XADD", key, "MAXLEN", "~", String(maxLength), id] + entry.fields))
            }
            var duplicates = 0
            for reply in try target.pipeline(commands) {
                if let text = reply.errorText {
                    guard text.contains("equal or smaller") else { throw RedisError.refused("XADD", RedisErrorReply(text)) }
                    duplicates += 1
                } else if explicitIDs, let id = reply.text.flatMap(EventID.init(parsing:)), id > lastID! {
                    lastID = id
                }
            }
            if duplicates > 0 { onDuplicate(duplicates) }
        } catch {
            lastID = nil  // read again: another writer may have appended meanwhile
            throw error
        }
    }

    /// The stream's last id (`XREVRANGE key + - COUNT 1`), or nil when it is empty.
    static func topID(_ key: String, on target: RedisTarget) throws(RedisError) -> EventID? {
        let reply = try target.command(["XREVRANGE", key, "+", "-", "COUNT", "1"], key: key)
        if let text = reply.errorText { throw RedisError.refused("XREVRANGE", RedisErrorReply(text)) }
        guard case .array(let list) = reply, case .array(let first)? = list.first else { return nil }
        return first.first?.text.flatMap(EventID.init(parsing:))
    }
}
