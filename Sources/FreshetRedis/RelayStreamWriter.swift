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
///   resync entry **starts the stream over** — in one script: `DEL` the stream, a new value of the generation
///   key (a count and the history's start, so that a retry does not start it over twice), the resync as `0-1`; the
///   new history's entries follow. Every reader reads the generation with each `XREAD` and follows (`RelayReader`).
///   Ids that only compared with the old slot's mean nothing now, so nothing of them is kept.
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
    /// Names the stream's life: `<count> <slot start>`, set whenever it starts over (same hash tag as `key`).
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
                if explicitIDs, let start = entry.historyStart {
                    // A new slot: its ids may start below entries already in the stream (a failover to a standby that
                    // lagged). Start the stream over, on its own (nothing before it in this batch may be reordered
                    // after it), with the resync as its first entry.
                    try send(commands, on: target)
                    commands = []
                    let reply = try target.command(
                        ["EVAL", Self.startOverScript, "2", key, generationKey, start.description, String(maxLength)] + entry.fields, key: key
                    )
                    if let text = reply.errorText { throw RedisError.refused("EVAL", RedisErrorReply(text)) }
                    if reply == .integer(1) {
                        onStartOver(lastID!, start)
                        lastID = EventID(epoch: 0, sequence: 1)
                    }  // 0: this history already started the stream over (a retry after a lost reply): keep its top
                    continue
                }
                var id = entry.id ?? "*"
                if explicitIDs {
                    if let parsed = entry.id.flatMap(EventID.init(parsing:)) {
                        if parsed > lastID! { lastID = parsed }
                    } else {
                        id = "\(lastID!.epoch)-*"
                    }
                }
                commands.append(RedisCommand(key: key, arguments: ["XADD", key, "MAXLEN", "~", String(maxLength), id] + entry.fields))
            }
            try send(commands, on: target)
        } catch {
            lastID = nil  // read again: another writer may have appended meanwhile
            throw error
        }
    }

    /// Sends XADDs; a refusal as not newer than the top is a duplicate (counted), any other error fails the batch.
    private func send(_ commands: [RedisCommand], on target: RedisTarget) throws(RedisError) {
        guard !commands.isEmpty else { return }
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
    }

    /// Starts the stream over, atomically: unless the generation key already names this history's start (a retry),
    /// `DEL` the stream, set the generation to `<n+1> <start>` and append the resync (`ARGV[3…]`) as `0-1`. Returns 1
    /// when it started over, 0 when this history had already. Both keys share one hash tag (one Cluster slot).
    static let startOverScript = """
        local generation = redis.call('GET', KEYS[2])
        local count = 0
        if generation then
          local n, start = string.match(generation, '^(%d+) (.*)$')
          if start == ARGV[1] then return 0 end
          count = tonumber(n) or 0
        end
        redis.call('DEL', KEYS[1])
        redis.call('SET', KEYS[2], (count + 1) .. ' ' .. ARGV[1])
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '0-1', unpack(ARGV, 3))
        return 1
        """

    /// The stream's last id (`XREVRANGE key + - COUNT 1`), or nil when it is empty.
    static func topID(_ key: String, on target: RedisTarget) throws(RedisError) -> EventID? {
        let reply = try target.command(["XREVRANGE", key, "+", "-", "COUNT", "1"], key: key)
        if let text = reply.errorText { throw RedisError.refused("XREVRANGE", RedisErrorReply(text)) }
        guard case .array(let list) = reply, case .array(let first)? = list.first else { return nil }
        return first.first?.text.flatMap(EventID.init(parsing:))
    }
}
