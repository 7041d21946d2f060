import FreshetCore
import Testing

/// The confirm-position rules of the replication source, without a server.
struct ConfirmTrackerTests {
    func id(_ lsn: UInt64, _ n: UInt64) -> EventID { EventID(epoch: lsn, sequence: n) }

    @Test func aTransactionIsConfirmedOnlyOnceItsCommandsAndEveryEarlierOnesAreAcknowledged() {
        var t = ConfirmTracker(confirmed: 100)
        t.begin(); t.commit(200, lastEvent: id(200, 2), hasCommands: true)
        t.begin(); t.commit(300, lastEvent: id(300, 1), hasCommands: true)
        #expect(t.confirmed == 100)
        t.acknowledged(through: 150)  // nothing complete yet
        #expect(t.confirmed == 100)
        t.acknowledged(through: 200)
        #expect(t.confirmed == 200 && t.lastConfirmedEvent == id(200, 2))
        t.acknowledged(through: 300)
        #expect(t.confirmed == 300 && t.lastConfirmedEvent == id(300, 1) && t.waitingCount == 0)
    }

    @Test func aTransactionWithoutCommandsWaitsForTheOnesBeforeIt() {
        var t = ConfirmTracker(confirmed: 0)
        t.begin(); t.commit(10, lastEvent: id(10, 1), hasCommands: true)
        t.begin(); t.commit(20, lastEvent: nil, hasCommands: false)
        #expect(t.confirmed == 0)  // 20 has nothing to wait for, but 10 has
        t.acknowledged(through: 10)
        #expect(t.confirmed == 20 && t.lastConfirmedEvent == id(10, 1))
    }

    @Test func theIdleSlotFollowsTheServerOnlyWhenNothingIsOpenOrWaiting() {
        var t = ConfirmTracker(confirmed: 50)
        t.keepalive(walEnd: 80)
        #expect(t.confirmed == 80)  // idle: follow the server
        t.begin()
        t.keepalive(walEnd: 90)
        #expect(t.confirmed == 80)  // a transaction is open
        t.commit(95, lastEvent: id(95, 1), hasCommands: true)
        t.keepalive(walEnd: 120)
        #expect(t.confirmed == 80)  // its commands are not acknowledged yet (the Electric #4731 case)
        t.acknowledged(through: 95)
        #expect(t.confirmed == 95)
        t.keepalive(walEnd: 120)
        #expect(t.confirmed == 120)
        t.keepalive(walEnd: 110)
        #expect(t.confirmed == 120)  // never backwards
    }

    @Test func theConfirmedPositionNeverPassesAnUnacknowledgedTransaction() {
        // Property: for random interleavings, confirmed ≤ the commit LSN of the oldest unacknowledged transaction, and
        // it never moves backwards.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var t = ConfirmTracker(confirmed: 0)
            var lsn: UInt64 = 0
            var walEnd: UInt64 = 0
            var commits: [(lsn: UInt64, commands: Bool)] = []
            var acked: UInt64 = 0
            var previous: UInt64 = 0
            for _ in 0..<50 {
                switch Int.random(in: 0..<4, using: &generator) {
                case 0:
                    // A commit after the last WAL end the server reported (its commit record comes later in the WAL).
                    lsn = max(lsn, walEnd) + UInt64.random(in: 1...100, using: &generator)
                    let commands = Bool.random(using: &generator)
                    t.begin()
                    t.commit(lsn, lastEvent: id(lsn, 1), hasCommands: commands)
                    commits.append((lsn, commands))
                case 1:
                    let pending = commits.filter { $0.commands && $0.lsn > acked }
                    if let next = pending.randomElement(using: &generator) {
                        acked = max(acked, next.lsn)
                        t.acknowledged(through: acked)
                    }
                default:
                    walEnd = max(walEnd, lsn + UInt64.random(in: 0...10, using: &generator))
                    t.keepalive(walEnd: walEnd)
                }
                if let oldest = commits.first(where: { $0.commands && $0.lsn > acked }) {
                    #expect(t.confirmed < oldest.lsn)
                }
                #expect(t.confirmed >= previous)
                previous = t.confirmed
            }
        }
    }
}
