import KeelCore
import KeelRaft

/// Checks that look at all members at once. They are sharper than waiting for a lost entry to show up
/// at the next election: each states what the promise needs at every instant.
extension RaftSimulator {
    /// Durable mode: when a leader commits `position`, a majority holds that prefix fdatasync'ed. (Not in
    /// replicated mode: there an acknowledged write may be lost with one member's page cache, which is
    /// why that member rejoins non-voting; the electability check below covers it.)
    func checkCommittedOnMajority(_ position: LogPosition, leader: Int) {
        guard options.mode == .durable, let digest = members[leader].log.digest(at: position) else { return }
        var holders = 0
        for member in members {
            let log = member.log
            if position <= log.basePosition {
                holders += 1
                continue
            }
            if let entry = log.durableEntries.last(where: { $0.end == position }), entry.digest == digest { holders += 1 }
        }
        if holders < configurations[0].quorum {
            checker.fail("m\(leader) committed up to \(position) while only \(holders) members held it durable")
        }
    }

    /// Would this member take part in an election (vote or campaign) once up? Not while it rejoins after
    /// a power loss in replicated mode.
    private func isVoting(_ member: Int) -> Bool {
        if let core = members[member].core { return !core.catchingUp }
        return !(options.mode == .replicated && members[member].hardState.votingBootID != members[member].bootID
                 && options.plantedBug != .rebootedMemberVotesAtOnce)
    }

    /// No member lacking a committed entry may have a log at least as up to date as a majority of voting
    /// members (itself included): such a member could be elected and lose the entry. Correct Raft keeps
    /// this true at every instant (the voters that acknowledged the entry refuse it); it catches the
    /// figure-8 commit and lost acknowledgements long before an unlucky election would.
    func checkNoMemberElectableWithoutCommitted() {
        let committedEnd = checker.committedEnd
        guard committedEnd > .zero, let expected = checker.committedDigest(at: committedEnd) else { return }
        let count = members.count
        for candidate in 0..<count where isVoting(candidate) {
            let log = members[candidate].log
            if log.endPosition >= committedEnd && log.basePosition <= committedEnd && log.digest(at: committedEnd) == expected { continue }
            if log.basePosition > committedEnd { continue }
            let last = (members[candidate].lastTerm.rawValue, log.endPosition.rawValue)
            var supporters = 0
            for voter in 0..<count where isVoting(voter) {
                let voterLast = (members[voter].lastTerm.rawValue, members[voter].log.endPosition.rawValue)
                if last >= voterLast { supporters += 1 }
            }
            if supporters >= configurations[0].quorum {
                checker.fail("m\(candidate) lacks the committed entry ending at \(committedEnd) yet \(supporters) voting members would elect it")
                return
            }
        }
    }
}

extension SimulatedMember {
    /// The term of the last entry of the log (the snapshot's if the log is empty).
    var lastTerm: Term { log.entries.last?.term ?? log.baseTerm }
}
