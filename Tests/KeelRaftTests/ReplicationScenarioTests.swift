import KeelCore
import KeelRaft
import Testing

/// Scenarios for replication and commit, named after the Raft paper's figures where they come from.
@Suite struct ReplicationScenarioTests {
    private static func isVote(_ envelope: ScenarioHarness.Envelope) -> Bool {
        switch envelope.message.body {
        case .voteRequest, .voteResponse: true
        default: false
        }
    }

    /// Figure 8 set up for members 0…4 (paper S1…S5): 0 leads term 4 holding an entry of term 2 that only
    /// a minority had; it replicates that entry to 2 but the term-4 entry never gets there.
    private static func figure8(plantedBug: RaftPlantedBug? = nil) -> ScenarioHarness {
        let logs = [
            ScenarioHarness.log([(1, 32), (2, 64)]), ScenarioHarness.log([(1, 32), (2, 64)]), ScenarioHarness.log([(1, 32)]),
            ScenarioHarness.log([(1, 32)]), ScenarioHarness.log([(1, 32), (3, 64)]),
        ]
        var cluster = ScenarioHarness(count: 5, logs: logs, terms: Array(repeating: Term(3), count: 5), plantedBug: plantedBug) {
            $0.checkQuorum = false
        }
        cluster.step(0, .campaign)
        cluster.deliverAll(where: isVote)
        #expect(cluster.leaders == [0])
        #expect(cluster.core(0).term == Term(4))
        cluster.advance(byNanos: 60_000_000, ticking: [0])  // the first probes were dropped with the filter above
        // Only 0, 1 and 2 talk, and the term-4 entry reaches 2 only in the first probe (which 2 rejects: it
        // lacks [32, 64)); once 2 holds [32, 64) the term-4 entry is lost on the way.
        var firstProbeToTwo = true
        cluster.deliverAll { envelope in
            let members: Set<MemberID> = [MemberID(0), MemberID(1), MemberID(2)]
            guard members.contains(envelope.from), members.contains(envelope.to) else { return false }
            if envelope.to == MemberID(2), case .appendEntries(let append) = envelope.message.body, append.entryTerm == Term(4) {
                defer { firstProbeToTwo = false }
                return firstProbeToTwo
            }
            return true
        }
        return cluster
    }

    @Test func figure8LeaderMustNotCommitAnOldTermEntryByCounting() {
        var cluster = Self.figure8()
        // The term-2 entry [32, 64) is on 0, 1 and 2 — a majority — but it is not of the current term.
        #expect(cluster.core(2).termIndex == ScenarioHarness.log([(1, 32), (2, 64)]))
        #expect(cluster.commits[0] == .zero)
        // 0 crashes; 4 (last term 3) wins term 5 with the votes of 2 and 3 and overwrites [32, 64) on 2.
        cluster.isolated = [MemberID(0)]
        cluster.step(4, .campaign)
        cluster.deliverAll()
        #expect(cluster.leaders.contains(4))
        #expect(cluster.core(4).term == Term(5))
        #expect(cluster.core(2).termIndex == ScenarioHarness.log([(1, 32), (3, 64), (5, 128)]))
        #expect(cluster.core(2).refusedUnsafeTruncations == 0)  // what was overwritten was never committed
    }

    @Test func figure8WithThePlantedBugCommitsWhatALaterLeaderOverwrites() {
        var cluster = Self.figure8(plantedBug: .commitOldTermByCounting)
        #expect(cluster.commits[0] == LogPosition(64))  // the bug: committed by counting replicas
        cluster.isolated = [MemberID(0)]
        cluster.step(4, .campaign)
        cluster.deliverAll()
        #expect(cluster.core(4).role == .leader)
        #expect(cluster.core(4).termIndex.term(at: LogPosition(64)) == Term(3))  // "committed" t2 entry is gone
    }

    @Test func figure7FollowerWithExtraUncommittedEntriesIsTruncated() {
        let logs = [ScenarioHarness.log([(1, 64)]), ScenarioHarness.log([(1, 64), (2, 160)]), ScenarioHarness.log([(1, 64)])]
        var cluster = ScenarioHarness(count: 3, logs: logs, terms: [Term(2), Term(2), Term(2)])
        cluster.elect(0)
        #expect(cluster.leaders == [0])
        #expect(cluster.core(0).term == Term(3))
        let follower = cluster.actions[1].compactMap { action -> String? in
            switch action {
            case .truncate(let from): "truncate \(from)"
            case .append(let from, let to, let term, let kind): "append \(from)..\(to) \(term) \(kind)"
            default: nil
            }
        }
        #expect(follower == ["truncate @64", "append @64..@128 t3 replicated"])
        #expect(cluster.core(1).termIndex == cluster.core(0).termIndex)
        #expect(cluster.commits[0] == LogPosition(128))
    }

    @Test func rejectionHintBacksUpAWholeTermPerRoundTrip() {
        // Member 1 holds ten stale entries of term 2; the leader backs up past all of them in one step.
        let logs = [ScenarioHarness.log([(1, 32), (3, 64)]), ScenarioHarness.log([(1, 32), (2, 352)]), ScenarioHarness.log([(1, 32), (3, 64)])]
        var cluster = ScenarioHarness(count: 3, logs: logs, terms: [Term(3), Term(3), Term(3)])
        cluster.elect(0)
        let rejections = cluster.sent(by: 1).filter { if case .appendResponse(let r) = $0.body { !r.success } else { false } }
        #expect(rejections.count == 1)
        #expect(cluster.core(1).termIndex == cluster.core(0).termIndex)
        #expect(cluster.actions[1].contains { if case .truncate(LogPosition(32)) = $0 { true } else { false } })
    }

    @Test func durableFollowersAcknowledgeOnlyWhatIsPersisted() {
        var cluster = ScenarioHarness(count: 3)
        cluster.persistImmediately = false
        cluster.elect(0)
        #expect(cluster.core(1).endPosition == LogPosition(64))
        #expect(cluster.commits[0] == .zero)  // written everywhere, durable nowhere
        cluster.step(0, .persisted(upTo: LogPosition(64), term: Term(1)))
        #expect(cluster.commits[0] == .zero)  // the leader alone is no majority
        cluster.step(1, .persisted(upTo: LogPosition(64), term: Term(1)))
        cluster.deliverAll()
        #expect(cluster.commits[0] == LogPosition(64))
    }

    @Test func plantedBugAcknowledgesBeforePersisting() {
        var cluster = ScenarioHarness(count: 3, plantedBug: .ackBeforePersist)
        cluster.persistImmediately = false
        cluster.elect(0)
        #expect(cluster.commits[0] == LogPosition(64))  // committed with nothing durable anywhere
    }

    @Test func persistedReportForRewrittenBytesIsIgnored() {
        var cluster = ScenarioHarness(count: 3, logs: [ScenarioHarness.log([(1, 64)]), ScenarioHarness.log([(1, 64), (2, 128)]), ScenarioHarness.log([(1, 64)])],
                                      terms: [Term(2), Term(2), Term(2)])
        cluster.persistImmediately = false
        cluster.step(1, .persisted(upTo: LogPosition(64), term: Term(1)))
        #expect(cluster.core(1).persistedPosition == LogPosition(128))  // opened with the whole log durable
        cluster.elect(0)  // truncates member 1 at 64 and appends t3 there
        #expect(cluster.core(1).persistedPosition == LogPosition(64))
        cluster.step(1, .persisted(upTo: LogPosition(128), term: Term(2)))  // late report about the old bytes
        #expect(cluster.core(1).persistedPosition == LogPosition(64))
        cluster.step(1, .persisted(upTo: LogPosition(128), term: Term(3)))
        #expect(cluster.core(1).persistedPosition == LogPosition(128))
    }

    @Test func replicatedMemberRebootedAfterPowerLossRejoinsNonVotingUntilCaughtUp() {
        var cluster = ScenarioHarness(count: 3, durability: .replicated)
        cluster.elect(0)
        cluster.run(forNanos: 100_000_000)
        // Member 2 loses power: same hard state, new boot.
        let old = cluster.core(2)
        cluster.cores[2] = RaftCore(
            configuration: old.configuration, hardState: cluster.hardStates[2], termIndex: TermIndex(),
            persistedPosition: .zero, bootID: 2, random: SeededRandom(seed: 9), nowNanos: cluster.nowNanos)
        #expect(cluster.core(2).catchingUp)
        // It neither campaigns nor votes.
        cluster.step(2, .tick(nowNanos: cluster.nowNanos + 2_000_000_000))
        #expect(cluster.core(2).role == .follower)
        let request = RaftMessage(term: Term(7), body: .voteRequest(VoteRequest(preVote: false, transfer: true, lastPosition: LogPosition(999), lastTerm: Term(6))))
        cluster.step(2, .message(from: MemberID(1), request))
        #expect(cluster.sent(by: 2).last?.body == .voteResponse(preVote: false, granted: false))
        cluster.queue.removeAll()
        // Caught up by the (new-term) leader, it persists its boot as voting and acknowledges again.
        var fresh = ScenarioHarness(count: 3, durability: .replicated)
        fresh.elect(0)
        fresh.cores[2] = RaftCore(
            configuration: old.configuration, hardState: fresh.hardStates[2], termIndex: TermIndex(),
            persistedPosition: .zero, bootID: 2, random: SeededRandom(seed: 9), nowNanos: fresh.nowNanos)
        fresh.actions[2] = []
        fresh.step(0, .propose(byteCount: 32))
        fresh.run(forNanos: 200_000_000, ticking: [0])
        #expect(!fresh.core(2).catchingUp)
        #expect(fresh.hardStates[2].votingBootID == 2)
        #expect(fresh.core(2).termIndex == fresh.core(0).termIndex)
        let acks = fresh.sent(by: 2).compactMap { if case .appendResponse(let r) = $0.body, r.success { r } else { nil } }
        #expect(acks.first?.catchingUp == true)
        #expect(acks.last?.catchingUp == false && acks.last?.persistedPosition == LogPosition(96))
    }

    @Test func plantedBugLetsARebootedReplicatedMemberVoteAtOnce() {
        var configuration = RaftConfiguration(selfID: MemberID(2), members: [MemberID(0), MemberID(1), MemberID(2)], durability: .replicated)
        configuration.plantedBug = .rebootedMemberVotesAtOnce
        let core = RaftCore(configuration: configuration, hardState: RaftHardState(term: Term(3), votingBootID: 1), termIndex: TermIndex(),
                            persistedPosition: .zero, bootID: 2, random: SeededRandom(seed: 1), nowNanos: 0)
        #expect(!core.catchingUp)
    }

    @Test func laggardBehindTheLogStartIsSentASnapshot() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        cluster.run(forNanos: 100_000_000)
        cluster.isolated = [MemberID(2)]
        for _ in 0..<4 { cluster.step(0, .propose(byteCount: 96)) }
        cluster.run(forNanos: 100_000_000, ticking: [0, 1])
        #expect(cluster.commits[0] == LogPosition(448))
        cluster.step(0, .logCompacted(upTo: LogPosition(352)))
        #expect(cluster.core(0).termIndex.startPosition == LogPosition(352))
        cluster.isolated = []
        cluster.run(forNanos: 100_000_000, ticking: [0])
        #expect(cluster.snapshotRequests.count == 1)
        #expect(cluster.snapshotRequests.first?.to == MemberID(2))
        // The runtime ships the snapshot; member 2 installs it and the leader streams the rest.
        cluster.step(2, .snapshotInstalled(position: LogPosition(352), term: Term(1)))
        cluster.run(forNanos: 100_000_000, ticking: [0])
        #expect(cluster.core(2).termIndex.startPosition == LogPosition(352))
        #expect(cluster.core(2).endPosition == LogPosition(448))
        #expect(cluster.commits[2] == LogPosition(448))
        #expect(cluster.snapshotRequests.count == 1)
    }

    @Test func replicateStatePipelinesAppendsWithoutWaitingForAcknowledgements() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        cluster.queue.removeAll()
        let before = cluster.sent(by: 0).count
        for _ in 0..<3 { cluster.step(0, .propose(byteCount: 64)) }
        // Three appends to each follower went out back to back, none answered yet.
        let appends = cluster.sent(by: 0).dropFirst(before).compactMap { message -> AppendEntries? in
            if case .appendEntries(let append) = message.body { append } else { nil }
        }
        #expect(appends.map(\.prevPosition) == [64, 64, 128, 128, 192, 192].map { LogPosition($0) })
        cluster.deliverAll()
        #expect(cluster.commits[0] == LogPosition(256))
    }

    @Test func heartbeatsAreSuppressedWhileAppendsFlow() {
        var cluster = ScenarioHarness(count: 3)
        cluster.elect(0)
        let before = cluster.sent(by: 0).count
        for _ in 0..<20 {  // a proposal every 10 ms for 200 ms: appends carry the commit position
            cluster.step(0, .propose(byteCount: 32))
            cluster.advance(byNanos: 10_000_000)
            cluster.deliverAll()
        }
        let heartbeats = cluster.sent(by: 0).dropFirst(before).filter { if case .heartbeat = $0.body { true } else { false } }
        #expect(heartbeats.isEmpty)
        cluster.run(forNanos: 200_000_000)  // idle: now heartbeats go out
        #expect(cluster.sent(by: 0).contains { if case .heartbeat = $0.body { true } else { false } })
        #expect(cluster.commits == [LogPosition(704), LogPosition(704), LogPosition(704)])
    }
}
