import KeelCore

extension RaftCore {
    /// Starts a pre-vote round or a real election.
    mutating func campaign(preVote: Bool, transfer: Bool, into output: inout RaftOutput) {
        votesGranted = 1 << UInt64(selfSlot)
        votesRefused = 0
        leaderID = nil
        resetElectionTimer()
        let campaignTerm: Term
        if preVote {
            role = .preCandidate
            campaignTerm = hardState.term.next
        } else {
            role = .candidate
            hardState.term = hardState.term.next
            hardState.votedFor = configuration.selfID
            hardStateDirty = true
            campaignTerm = hardState.term
            electionsStarted += 1
        }
        if votesGranted.nonzeroBitCount >= configuration.quorum {
            winRound(preVote: preVote, into: &output)
            return
        }
        let request = VoteRequest(
            preVote: preVote, transfer: transfer, lastPosition: termIndex.endPosition, lastTerm: termIndex.lastTerm)
        for member in configuration.members where member != configuration.selfID {
            send(.voteRequest(request), to: member, term: campaignTerm, into: &output)
        }
    }

    private mutating func winRound(preVote: Bool, into output: inout RaftOutput) {
        if preVote {
            campaign(preVote: false, transfer: false, into: &output)
        } else {
            becomeLeader(into: &output)
        }
    }

    mutating func handleVoteRequest(_ request: VoteRequest, term: Term, from candidate: MemberID, into output: inout RaftOutput) {
        let canVote = hardState.votedFor == candidate
            || (hardState.votedFor == nil && leaderID == nil)
            || (request.preVote && term > hardState.term)
        let upToDate = configuration.plantedBug == .voteWithoutLogCheck
            || (request.lastTerm, request.lastPosition.rawValue) >= (termIndex.lastTerm, termIndex.endPosition.rawValue)
        let grant = canVote && upToDate && !catchingUp && role != .leader
        if grant && !request.preVote {
            hardState.votedFor = candidate
            hardStateDirty = true
            resetElectionTimer()
        }
        // A granted pre-vote answers in the term asked about; anything else in our own term.
        let answerTerm = grant && request.preVote ? term : hardState.term
        send(.voteResponse(preVote: request.preVote, granted: grant), to: candidate, term: answerTerm, into: &output)
    }

    mutating func handleVoteResponse(preVote: Bool, granted: Bool, slot: Int, into output: inout RaftOutput) {
        guard (preVote && role == .preCandidate) || (!preVote && role == .candidate) else { return }
        let bit: UInt64 = 1 << UInt64(slot)
        if granted { votesGranted |= bit } else { votesRefused |= bit }
        if votesGranted.nonzeroBitCount >= configuration.quorum {
            winRound(preVote: preVote, into: &output)
        } else if votesRefused.nonzeroBitCount > configuration.members.count - configuration.quorum {
            becomeFollower(term: hardState.term, leader: nil)
        }
    }

    /// Leadership transfer (thesis §3.10): bring the target up to date, then tell it to campaign at once.
    mutating func transferLeadership(to target: MemberID, into output: inout RaftOutput) {
        guard role == .leader, target != configuration.selfID, let targetSlot = slot(of: target) else { return }
        transferTarget = target
        transferDeadlineNanos = nowNanos &+ configuration.electionTimeoutMinNanos
        if progress[targetSlot].appendedPosition == termIndex.endPosition && !progress[targetSlot].catchingUp {
            send(.timeoutNow, to: target, into: &output)
        } else {
            progress[targetSlot].probeSentNanos = .min
            sendAppends(slot: targetSlot, into: &output)
        }
    }

    /// Becomes leader: appends the new-leadership-term entry at once (so entries of earlier terms can
    /// commit, Raft §5.4.2) and starts probing every follower from the log end.
    mutating func becomeLeader(into output: inout RaftOutput) {
        role = .leader
        leaderID = configuration.selfID
        transferTarget = nil
        let end = termIndex.endPosition
        for index in progress.indices {
            progress[index] = ReplicationProgress(nextPosition: end)
        }
        checkQuorumDeadlineNanos = nowNanos &+ configuration.electionTimeoutMinNanos
        let entryEnd = end.advanced(by: configuration.leadershipTermEntryBytes)
        termIndex.append(term: hardState.term, to: entryEnd)
        emit(.append(from: end, to: entryEnd, term: hardState.term, kind: .leadershipTerm), into: &output)
        for index in progress.indices where index != selfSlot {
            sendAppends(slot: index, into: &output)
        }
        maybeCommit(into: &output)
    }
}
