import KeelCore
import KeelRaft
import Testing

/// Scenarios for elections: short scripts with exact expected outcomes (Raft §5.2, thesis §9.6).
@Suite struct ElectionScenarioTests {
    @Test func firstElectionWinsTermOneAndCommitsTheLeadershipEntry() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        #expect(cluster.leaders == [0])
        #expect(cluster.core(0).term == Term(1))
        #expect(cluster.hardStates[0] == RaftHardState(term: Term(1), votedFor: MemberID(0), votingBootID: 1))
        #expect(cluster.hardStates[1].votedFor == MemberID(0))
        // The new leader appended its 64-byte leadership entry, replicated and committed it.
        #expect(cluster.core(0).endPosition == LogPosition(64))
        #expect(cluster.commits[0] == LogPosition(64))
        cluster.run(forNanos: 100_000_000, ticking: [0])
        #expect(cluster.commits == [LogPosition(64), LogPosition(64), LogPosition(64)])
        #expect(cluster.core(1).leaderID == MemberID(0))
    }

    @Test func hardStateIsPersistedBeforeTheVoteIsSent() {
        var cluster = ScenarioHarness(count: 3)
        cluster.step(0, .campaign)  // pre-vote round
        cluster.deliverAll(rounds: 1)  // pre-vote requests reach 1 and 2
        cluster.deliverAll(rounds: 1)  // grants reach 0, which starts the real election
        cluster.deliverAll(rounds: 1)  // vote requests reach 1 and 2
        for voter in [1, 2] {
            let kinds = cluster.actions[voter].map { action -> String in
                switch action {
                case .persistHardState(let state): return "persist t\(state.term.rawValue) v\(state.votedFor?.rawValue ?? -1)"
                case .send(_, let message): return "\(message)"
                case .roleChanged: return "role"
                default: return "other"
                }
            }
            #expect(kinds == ["preVoteGranted(t1)", "persist t1 v0", "voteGranted(t1)", "role"], "member \(voter): \(kinds)")
        }
    }

    @Test func oneVotePerTerm() {
        var cluster = ScenarioHarness(count: 3)
        let request = RaftMessage(term: Term(1), body: .voteRequest(VoteRequest(preVote: false, transfer: false, lastPosition: .zero, lastTerm: .zero)))
        cluster.step(2, .message(from: MemberID(0), request))
        cluster.step(2, .message(from: MemberID(1), request))
        cluster.step(2, .message(from: MemberID(0), request))  // a repeat to the same candidate is granted again
        let answers = cluster.sent(by: 2).map(\.body)
        #expect(answers == [
            .voteResponse(preVote: false, granted: true), .voteResponse(preVote: false, granted: false),
            .voteResponse(preVote: false, granted: true),
        ])
        #expect(cluster.hardStates[2].votedFor == MemberID(0))
    }

    @Test func voteRefusedToACandidateWithAShorterOrOlderLog() {
        // Member 2 holds t1 up to 64 and t2 up to 96.
        let logs = [ScenarioHarness.log([(1, 64)]), ScenarioHarness.log([(1, 128)]), ScenarioHarness.log([(1, 64), (2, 96)])]
        var cluster = ScenarioHarness(count: 3, logs: logs, terms: [Term(2), Term(2), Term(2)])
        let older = VoteRequest(preVote: false, transfer: false, lastPosition: LogPosition(128), lastTerm: Term(1))
        cluster.step(2, .message(from: MemberID(1), RaftMessage(term: Term(3), body: .voteRequest(older))))
        let shorter = VoteRequest(preVote: false, transfer: false, lastPosition: LogPosition(64), lastTerm: Term(2))
        cluster.step(2, .message(from: MemberID(0), RaftMessage(term: Term(4), body: .voteRequest(shorter))))
        let equal = VoteRequest(preVote: false, transfer: false, lastPosition: LogPosition(96), lastTerm: Term(2))
        cluster.step(2, .message(from: MemberID(0), RaftMessage(term: Term(5), body: .voteRequest(equal))))
        #expect(cluster.sent(by: 2).map(\.body) == [
            .voteResponse(preVote: false, granted: false), .voteResponse(preVote: false, granted: false),
            .voteResponse(preVote: false, granted: true),
        ])
        #expect(cluster.hardStates[2] == RaftHardState(term: Term(5), votedFor: MemberID(0), votingBootID: 1))
    }

    @Test func plantedBugVotesWithoutTheLogCheck() {
        let logs = [ScenarioHarness.log([(1, 64)]), ScenarioHarness.log([(1, 64)]), ScenarioHarness.log([(1, 64), (2, 96)])]
        var cluster = ScenarioHarness(count: 3, logs: logs, terms: [Term(2), Term(2), Term(2)], plantedBug: .voteWithoutLogCheck)
        let older = VoteRequest(preVote: false, transfer: false, lastPosition: LogPosition(64), lastTerm: Term(1))
        cluster.step(2, .message(from: MemberID(1), RaftMessage(term: Term(3), body: .voteRequest(older))))
        #expect(cluster.sent(by: 2).map(\.body) == [.voteResponse(preVote: false, granted: true)])
    }

    @Test func lowerTermMessagesAreAnsweredWithTheCurrentTermAndIgnored() {
        var cluster = ScenarioHarness(count: 3, terms: [Term(5), Term(5), Term(5)])
        let stale = AppendEntries(prevPosition: .zero, prevTerm: .zero, endPosition: LogPosition(32), entryTerm: Term(3), leaderCommit: .zero)
        cluster.step(1, .message(from: MemberID(0), RaftMessage(term: Term(3), body: .appendEntries(stale))))
        let answers = cluster.sent(by: 1)
        #expect(answers.count == 1)
        #expect(answers.first?.term == Term(5))
        if case .appendResponse(let response)? = answers.first?.body { #expect(!response.success) } else { Issue.record("no append response") }
        #expect(cluster.core(1).endPosition == .zero)
        #expect(cluster.core(1).leaderID == nil)
    }

    @Test func preVoteKeepsAPartitionedMemberFromInflatingItsTerm() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        cluster.run(forNanos: 200_000_000)
        cluster.isolated = [MemberID(2)]
        cluster.run(forNanos: 5_000_000_000)
        // Member 2 timed out many times, but only ran pre-votes that nobody answered: its term is unchanged.
        #expect(cluster.core(2).term == Term(1))
        #expect(cluster.core(2).electionsStarted == 0)
        cluster.isolated = []
        cluster.run(forNanos: 1_000_000_000)
        #expect(cluster.leaders == [0])
        #expect(cluster.core(0).term == Term(1))
        #expect(cluster.core(2).leaderID == MemberID(0))
    }

    @Test func withoutPreVoteThePartitionedMemberWouldDisruptTheLeader() {
        var cluster = ScenarioHarness(count: 3) { $0.preVote = false }
        cluster.elect(0)
        cluster.run(forNanos: 200_000_000)
        cluster.isolated = [MemberID(2)]
        cluster.run(forNanos: 5_000_000_000)
        #expect(cluster.core(2).term > Term(3))  // the contrast that shows what pre-vote prevents
    }

    @Test func preVoteRefusedWhileFollowersHearFromTheLeader() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        cluster.run(forNanos: 100_000_000)
        // Member 2 campaigns (say its timer fired early) while 0 and 1 are in contact: refused.
        cluster.step(2, .campaign)
        #expect(cluster.core(2).role == .preCandidate)
        cluster.deliverAll()
        #expect(cluster.core(0).role == .leader)
        #expect(cluster.core(1).term == Term(1))
        #expect(cluster.core(2).term == Term(1))
    }

    @Test func checkQuorumStepsDownAnIsolatedLeader() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        cluster.run(forNanos: 100_000_000)
        cluster.isolated = [MemberID(0)]
        cluster.run(forNanos: 250_000_000, ticking: [0])
        #expect(cluster.core(0).role == .leader)  // less than one election timeout without contact
        cluster.run(forNanos: 400_000_000, ticking: [0])
        #expect(cluster.core(0).role == .follower)
        #expect(cluster.core(0).term == Term(1))
    }

    @Test func partitionedOldLeaderStepsDownAndLosesItsUncommittedEntry() {
        var cluster = ScenarioHarness(count: 3) { $0.checkQuorum = false }
        cluster.elect(0)
        cluster.run(forNanos: 100_000_000)
        cluster.isolated = [MemberID(0)]
        cluster.step(0, .propose(byteCount: 96))  // accepted, but can reach nobody
        #expect(cluster.core(0).endPosition == LogPosition(160))
        cluster.run(forNanos: 2_000_000_000, ticking: [1, 2])
        let newLeader = cluster.leaders.filter { $0 != 0 }
        #expect(newLeader.count == 1)
        #expect(cluster.core(0).role == .leader)  // without check-quorum it does not know yet
        #expect(cluster.commits[0] == LogPosition(64))  // and cannot commit alone
        cluster.isolated = []
        cluster.run(forNanos: 300_000_000)
        #expect(cluster.leaders == newLeader)
        #expect(cluster.core(0).term == cluster.core(newLeader[0]).term)
        #expect(cluster.core(0).termIndex == cluster.core(newLeader[0]).termIndex)
        #expect(cluster.actions[0].contains { if case .truncate(LogPosition(64)) = $0 { true } else { false } })
    }

    @Test func transferHandsLeadershipOverWithoutAnElectionTimeout() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        cluster.run(forNanos: 100_000_000)
        cluster.step(0, .propose(byteCount: 64))
        cluster.step(0, .transferLeadership(to: MemberID(2)))
        cluster.deliverAll()
        #expect(cluster.leaders == [2])
        #expect(cluster.core(2).term == Term(2))
        #expect(cluster.core(0).leaderID == MemberID(2))
        #expect(cluster.core(0).role == .follower)
        // Proposals made before the transfer survive it.
        #expect(cluster.core(2).endPosition == LogPosition(192))
    }

    @Test func proposalsAreRefusedByFollowersAndDuringTransfer() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        cluster.step(1, .propose(byteCount: 32))
        #expect(cluster.actions[1].contains { if case .proposalRefused(32, MemberID(0)) = $0 { true } else { false } })
        cluster.isolated = [MemberID(2)]
        cluster.step(0, .transferLeadership(to: MemberID(2)))
        cluster.step(0, .propose(byteCount: 32))
        #expect(cluster.actions[0].contains { if case .proposalRefused(32, nil) = $0 { true } else { false } })
    }
}
