import KeelCore
import KeelRuntime

// Suspensions in the whole-node simulation: the leader appends a suspend entry (as `keel tool
// suspend` makes it do); once the suspension's time is up the run appends resumes until every
// member that is up applies the cluster as serving — also when a suspend entry of an earlier
// leader commits late.
extension WholeNodeRun {
    /// Suspends the cluster through `leader`; false if it did not take the entry or one is under way.
    mutating func suspend(_ leader: Int) -> Bool {
        guard suspendedUntilNanos == nil, cluster.members[leader].consensus.appendClusterAction(.suspend) else { return false }
        suspendedUntilNanos = nowNanos + random.integer(in: 20_000_000...800_000_000)
        cluster.note("FAULT suspend through m\(leader)")
        result.suspensions += 1
        return true
    }

    mutating func superviseSuspension() {
        if let until = suspendedUntilNanos {
            guard nowNanos >= until else { return }
            suspendedUntilNanos = nil
        }
        let suspended = cluster.members.contains { $0.isUp && $0.shared.suspended.load(ordering: .acquiring) }
        guard suspended, nowNanos >= nextResumeNanos, let leader = cluster.leaders.first, cluster.members[leader].isUp else { return }
        nextResumeNanos = nowNanos + 100_000_000
        if cluster.members[leader].consensus.appendClusterAction(.resume) { cluster.note("resume through m\(leader)") }
    }
}
