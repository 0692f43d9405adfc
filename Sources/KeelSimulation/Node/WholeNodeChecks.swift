import KeelCore
import KeelRuntime

/// The properties a whole-node run is checked against, fed as the run goes (applies,
/// acknowledgements, crashes) and once at the end.
final class WholeNodeChecks {
    unowned let cluster: WholeNodeCluster
    let mode: DurabilityMode
    /// The first property that failed.
    private(set) var violation: String?
    /// The hash of the entry first applied at each end position, by any replica.
    var hashAtPosition: [Int64: UInt64] = [:]
    /// End positions at which each key was applied (a resent request may be applied more than once).
    var positionsOfKey: [Int64: [Int64]] = [:]
    /// For a stopped member: the log position its disk holds for sure.
    var heldWhileDown: [Int64] = [0, 0, 0]
    /// Replicated mode: members that lost power and are not yet known to be caught up again.
    var suspectSinceNanos: [Int64?] = [nil, nil, nil]
    /// Replicated mode: whether a majority was ever suspect at once (the promise then is "stop").
    private(set) var majorityLostPowerUncaughtUp = false

    init(cluster: WholeNodeCluster, mode: DurabilityMode) {
        self.cluster = cluster
        self.mode = mode
    }

    func fail(_ message: String) {
        if violation == nil { violation = message }
    }

    /// No replica applies an entry at a position where another applied a different one.
    func applied(member: Int, entry: ApplyRecorder.Applied) {
        let position = entry.position.rawValue
        if let hash = hashAtPosition[position] {
            if hash != entry.hash {
                fail("divergence: m\(member) applied key \(entry.key) at position \(position), where another replica applied a different entry")
            }
            return
        }
        hashAtPosition[position] = entry.hash
        positionsOfKey[entry.key, default: []].append(position)
        // The entry must be held by a majority when the leader learns it is committed (this is what
        // its acknowledgement promises). `checkLeaderCommits` checks that in the round the commit
        // moves; a leader's service may apply it rounds later (a per-cycle entry limit, adaptive
        // threading), after a fault took a holder, so only a position beyond what was checked is
        // checked here.
        if cluster.members[member].consensus.role == .leader && position > commitCheckedUpTo {
            let holders = (0..<3).filter { held($0) >= position }
            if holders.count < 2 {
                fail("m\(member) (leader) applied key \(entry.key) at position \(position) held by fewer than a majority (held: \((0..<3).map(held)))")
            }
        }
    }

    /// The log position member `index` holds for sure (its disk's when it is down).
    func held(_ index: Int) -> Int64 {
        let member = cluster.members[index]
        guard member.isUp else { return heldWhileDown[index] }
        if mode == .replicated && suspectSinceNanos[index] != nil {
            // Caught up since the last periodic check: its log counts again from the moment it votes.
            guard !member.consensus.isCatchingUp else { return 0 }
            suspectSinceNanos[index] = nil
        }
        return mode == .durable ? member.consensus.log.durablePosition.rawValue : member.consensus.log.appendedPosition.rawValue
    }

    /// An acknowledged request was applied (on the leader, with a majority holding it: `applied`).
    func acknowledged(key: Int64) {
        if positionsOfKey[key] == nil { fail("key \(key) was acknowledged but no replica applied it") }
    }

    /// Member `index`'s process is about to crash: its page cache survives.
    func willStop(_ index: Int) {
        let log = cluster.members[index].consensus.log
        heldWhileDown[index] = mode == .durable ? log.durablePosition.rawValue : log.appendedPosition.rawValue
    }

    /// Member `index` is about to lose power: only what was synced survives.
    func willLosePower(_ index: Int) {
        heldWhileDown[index] = mode == .durable ? cluster.members[index].consensus.log.durablePosition.rawValue : 0
        if mode == .replicated {
            suspectSinceNanos[index] = cluster.time.nowNanos
            if suspectSinceNanos.compactMap({ $0 }).count >= 2 { majorityLostPowerUncaughtUp = true }
        }
    }

    /// Member `index`'s disk is about to be wiped: it holds nothing (in durable mode too).
    func wiped(_ index: Int) {
        heldWhileDown[index] = 0
    }

    /// Durable mode survives any power loss; replicated mode only while no other member is still
    /// catching up after one (the simulation keeps to the promise's precondition).
    func mayLosePower(_ index: Int) -> Bool {
        mode == .durable || suspectSinceNanos.indices.allSatisfy { $0 == index || suspectSinceNanos[$0] == nil }
    }

    /// Clears the suspicion on a member once its runtime says it has been caught up (it votes and
    /// acknowledges again).
    /// The highest commit position a leader reached, checked held by a majority in that round (a
    /// new leader's commit below it was checked when first reached).
    private var commitCheckedUpTo: Int64 = 0

    /// A leader's commit position is held by a majority in the round it moves.
    private func checkLeaderCommits() {
        for index in 0..<3 where cluster.members[index].isUp && cluster.members[index].consensus.role == .leader {
            let commit = cluster.members[index].consensus.commitPosition.rawValue
            guard commit > commitCheckedUpTo else { continue }
            let holders = (0..<3).filter { held($0) >= commit }
            guard holders.count >= 2 else {
                fail("m\(index) (leader) committed position \(commit) held by fewer than a majority (held: \((0..<3).map(held)))")
                return
            }
            commitCheckedUpTo = commit
        }
    }

    func afterRound() {
        checkLeaderCommits()
        guard mode == .replicated, cluster.time.nowNanos % 10_000_000 == 0 else { return }
        for index in 0..<3 where suspectSinceNanos[index] != nil {
            let member = cluster.members[index]
            if member.isUp && !member.consensus.isCatchingUp { suspectSinceNanos[index] = nil }
        }
        if suspectSinceNanos.compactMap({ $0 }).count >= 2 { majorityLostPowerUncaughtUp = true }
    }

    /// Replicated mode: members up whose runtime still holds them non-voting after a power loss.
    var membersStillCatchingUp: [Int] {
        cluster.members.indices.filter { cluster.members[$0].isUp && cluster.members[$0].consensus.isCatchingUp }
    }

    /// All members up and at the same commit, appended and applied positions.
    func converged() -> Bool {
        let members = cluster.members
        guard members.allSatisfy(\.isUp) else { return false }
        let commit = members[0].consensus.commitPosition
        return members.allSatisfy {
            $0.consensus.commitPosition == commit && $0.consensus.log.appendedPosition == commit
                && $0.service.appliedPosition == commit && $0.service.service.messagesApplied == members[0].service.service.messagesApplied
        }
    }

    /// Same entries, same order, on every replica; every acknowledged key among them; every key
    /// applied once (exactly-once under retries, reattaches and crashes) unless the cluster closed
    /// the session it was outstanding in; the same session table (sequences, windows) everywhere.
    func finalCheck(acknowledged: [Int64], maybeAppliedTwice: Set<Int64>) {
        for (key, positions) in positionsOfKey.sorted(by: { $0.key < $1.key }) where positions.count > 1 && !maybeAppliedTwice.contains(key) {
            fail("exactly-once: key \(key) was applied \(positions.count) times (at positions \(positions))")
            return
        }
        let tables = cluster.members.map(\.service.sessionTable)
        for index in 1..<tables.count where tables[index] != tables[0] {
            fail("m0 and m\(index) hold different session tables (\(tables[0].sessions.count) and \(tables[index].sessions.count) sessions)")
            return
        }
        // A member restarted from a snapshot applied only what followed it: compare the replicas'
        // sequences from the newest start on, and their whole state through the digests.
        let commonStart = cluster.members.map { $0.service.service.startPosition }.max() ?? .zero
        let lists = cluster.members.map { $0.recorder.applied.filter { $0.position > commonStart } }
        for index in 1..<lists.count where lists[index] != lists[0] {
            let first = lists[0].indices.first { $0 >= lists[index].count || lists[0][$0] != lists[index][$0] } ?? lists[0].count
            fail("m0 and m\(index) applied different sequences after position \(commonStart.rawValue) (\(lists[0].count) and \(lists[index].count) entries; first difference at entry \(first))")
            return
        }
        for (index, member) in cluster.members.enumerated() {
            let list = member.recorder.applied
            for pair in zip(list, list.dropFirst()) where pair.0.position >= pair.1.position {
                fail("m\(index) applied position \(pair.1.position.rawValue) after \(pair.0.position.rawValue)")
                return
            }
        }
        let digests = cluster.members.map { $0.service.service.stateDigest() }
        for index in 1..<digests.count where digests[index] != digests[0] {
            fail("final service state: m0 \(digests[0]), m\(index) \(digests[index]) (restarted from snapshots at \(cluster.members.map { $0.restoredFrom?.rawValue ?? 0 }))")
            return
        }
        for (index, member) in cluster.members.enumerated() {
            if let lost = acknowledged.first(where: { !member.service.service.appliedKeys.contains($0) }) {
                fail("acknowledged key \(lost) is not in m\(index)'s service state after the crashes (lost)")
                return
            }
        }
    }
}
