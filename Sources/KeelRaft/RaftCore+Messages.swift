import KeelCore

extension RaftCore {
    /// The term rules every message passes through first (Raft §5.1, thesis §9.6), then the dispatch.
    mutating func receive(_ message: RaftMessage, from sender: MemberID, into output: inout RaftOutput) {
        guard let senderSlot = slot(of: sender), senderSlot != selfSlot else { return }
        if message.term > hardState.term {
            guard acceptHigherTerm(message, from: sender, into: &output) else { return }
        } else if message.term < hardState.term {
            answerStale(message, from: sender, into: &output)
            return
        }
        if role == .leader { progress[senderSlot].recentlyActive = true }
        switch message.body {
        case .appendEntries(let append):
            followLeader(sender, into: &output)
            guard role == .follower else { return }
            handleAppend(append, from: sender, into: &output)
        case .heartbeat(let leaderCommit):
            followLeader(sender, into: &output)
            guard role == .follower else { return }
            handleHeartbeat(leaderCommit: leaderCommit, from: sender, into: &output)
        case .appendResponse(let response):
            guard role == .leader else { return }
            handleAppendResponse(response, slot: senderSlot, into: &output)
        case .heartbeatResponse(let appended):
            guard role == .leader else { return }
            handleHeartbeatResponse(appendedPosition: appended, slot: senderSlot, into: &output)
        case .voteRequest(let request):
            handleVoteRequest(request, term: message.term, from: sender, into: &output)
        case .voteResponse(let preVote, let granted):
            handleVoteResponse(preVote: preVote, granted: granted, slot: senderSlot, into: &output)
        case .timeoutNow:
            guard role == .follower, !catchingUp else { return }
            campaign(preVote: false, transfer: true, into: &output)
        case .caughtUp(let position, let bootID):
            followLeader(sender, into: &output)
            guard role == .follower else { return }
            handleCaughtUp(position: position, bootID: bootID, into: &output)
        }
    }

    /// Returns false when the message must be dropped without changing term.
    private mutating func acceptHigherTerm(_ message: RaftMessage, from sender: MemberID, into output: inout RaftOutput) -> Bool {
        switch message.body {
        case .voteRequest(let request):
            // Leader stickiness: while a leader is heard from, a vote request (not a transfer) is
            // disruptive; ignore it without raising our term (thesis §4.2.3).
            let inLease = configuration.checkQuorum && leaderID != nil
                && nanosSince(lastLeaderContactNanos) < configuration.electionTimeoutMinNanos
            if inLease && !request.transfer { return false }
            if request.preVote { return true }  // a pre-vote changes nobody's term
            becomeFollower(term: message.term, leader: nil)
        case .voteResponse(let preVote, let granted) where preVote && granted:
            return true  // granted in the term we would campaign in
        case .appendEntries, .heartbeat, .timeoutNow, .caughtUp:
            becomeFollower(term: message.term, leader: sender)
        default:
            becomeFollower(term: message.term, leader: nil)
        }
        return true
    }

    /// A lower-term message is answered with the current term (so a stale leader or candidate learns it)
    /// and otherwise ignored; responses are just dropped.
    private mutating func answerStale(_ message: RaftMessage, from sender: MemberID, into output: inout RaftOutput) {
        switch message.body {
        case .appendEntries, .heartbeat:
            let response = AppendResponse(success: false, appendedPosition: .zero, persistedPosition: .zero)
            send(.appendResponse(response), to: sender, into: &output)
        case .voteRequest(let request):
            send(.voteResponse(preVote: request.preVote, granted: false), to: sender, into: &output)
        default:
            break
        }
    }

    /// A message from the leader of the current term: candidates give up, followers note the contact.
    private mutating func followLeader(_ leader: MemberID, into output: inout RaftOutput) {
        if role == .leader {
            // Two leaders in one term cannot happen; drop the message rather than corrupt the log.
            return
        }
        if role != .follower || leaderID != leader {
            becomeFollower(term: hardState.term, leader: leader)
        }
        lastLeaderContactNanos = nowNanos
        resetElectionTimer()
    }

    mutating func becomeFollower(term: Term, leader: MemberID?) {
        if term > hardState.term {
            hardState.term = term
            hardState.votedFor = nil
            hardStateDirty = true
        }
        if leader != leaderID || role != .follower {
            leaderMatchPosition = .zero
            lastAckSent = .zero
        }
        role = .follower
        leaderID = leader
        transferTarget = nil
        resetElectionTimer()
    }
}
