/// Decides what the replication source may confirm to its slot: the flush LSN of the standby status update.
///
/// At-least-once, in commit order: a transaction is confirmed only when every Redis command of it, and of every
/// earlier transaction, was acknowledged. A transaction without Redis commands is complete as soon as every earlier one
/// is. When nothing is open or waiting, a keepalive's WAL end (the walsender's sent position: every commit before it
/// has been decoded and sent) becomes the confirmed position, so an idle slot never pins WAL. With each confirmation
/// goes the id of the last event of the confirmed transactions, which proves a resume complete after a restart.
///
/// A value: the replication reader's thread drives it; `ConfirmTrackerTests` drive it without a server.
public struct ConfirmTracker: Sendable, Equatable {
    /// A transaction received (its commit seen) and not yet confirmed.
    struct Waiting: Sendable, Equatable {
        var commit: UInt64
        var lastEvent: EventID?
        var hasCommands: Bool
    }

    private var waiting: [Waiting] = []
    private var head = 0
    /// The highest commit LSN whose commands (and every earlier transaction's) Redis acknowledged.
    private var acknowledged: UInt64 = 0
    private var open = false
    /// The position confirmed (or to confirm): the commit LSN of the newest complete transaction, or an idle
    /// keepalive's WAL end.
    public private(set) var confirmed: UInt64
    /// The id of the last event among the confirmed transactions.
    public private(set) var lastConfirmedEvent: EventID?

    public init(confirmed: UInt64, lastEvent: EventID? = nil) {
        self.confirmed = confirmed
        self.lastConfirmedEvent = lastEvent
    }

    /// Transactions received and not yet confirmed.
    public var waitingCount: Int { waiting.count - head }

    /// A transaction began (`B`).
    public mutating func begin() { open = true }

    /// A transaction committed (`C`) and its commands, if any, were handed to the Redis writer.
    public mutating func commit(_ lsn: UInt64, lastEvent: EventID?, hasCommands: Bool) {
        open = false
        waiting.append(Waiting(commit: lsn, lastEvent: lastEvent, hasCommands: hasCommands))
        advance()
    }

    /// A transaction committed that was already handed over before a reconnect (the slot sent it again).
    public mutating func skipped() { open = false }

    /// Redis acknowledged every command of the transactions up to commit `lsn` (the writer applies in order).
    public mutating func acknowledged(through lsn: UInt64) {
        acknowledged = max(acknowledged, lsn)
        advance()
    }

    /// A keepalive (or XLogData) with the walsender's WAL end: followed while nothing is open or waiting.
    public mutating func keepalive(walEnd: UInt64) {
        guard !open, head == waiting.count, walEnd > confirmed else { return }
        confirmed = walEnd
    }

    /// The connection was lost: what was open is gone (the slot sends it again); what is waiting stays, since its
    /// commands are still with the writer.
    public mutating func disconnected() { open = false }

    private mutating func advance() {
        while head < waiting.count {
            let next = waiting[head]
            guard !next.hasCommands || next.commit <= acknowledged else { break }
            confirmed = max(confirmed, next.commit)
            if let event = next.lastEvent { lastConfirmedEvent = event }
            head += 1
        }
        if head > 1024 && head * 2 > waiting.count {
            waiting.removeFirst(head)
            head = 0
        }
    }
}
