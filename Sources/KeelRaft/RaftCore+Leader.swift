import KeelCore

extension RaftCore {
    /// Proposals: the leader names the positions the batch will occupy and starts replicating at once.
    mutating func propose(byteCount: Int64, into output: inout RaftOutput) {
        precondition(byteCount > 0, "a proposal holds at least one byte")
        guard role == .leader, transferTarget == nil else {
            emit(.proposalRefused(byteCount: byteCount, leader: role == .leader ? nil : leaderID), into: &output)
            return
        }
        let start = termIndex.endPosition
        let end = start.advanced(by: byteCount)
        termIndex.append(term: hardState.term, to: end)
        emit(.append(from: start, to: end, term: hardState.term, kind: .proposal), into: &output)
        for index in progress.indices where index != selfSlot && progress[index].state == .replicate {
            sendAppends(slot: index, into: &output)
        }
        maybeCommit(into: &output)
    }

    mutating func leaderTick(into output: inout RaftOutput) {
        if nowNanos >= checkQuorumDeadlineNanos {
            checkQuorumDeadlineNanos = nowNanos &+ configuration.electionTimeoutMinNanos
            if configuration.checkQuorum && !hasRecentQuorum() {
                becomeFollower(term: hardState.term, leader: nil)
                return
            }
        }
        if transferTarget != nil && nowNanos >= transferDeadlineNanos { transferTarget = nil }
        for index in progress.indices where index != selfSlot {
            followerTick(slot: index, into: &output)
        }
    }

    /// True when a majority (this member included) was heard from since the last check; clears the marks.
    private mutating func hasRecentQuorum() -> Bool {
        var active = 1
        for index in progress.indices where index != selfSlot {
            if progress[index].recentlyActive { active += 1 }
            progress[index].recentlyActive = false
        }
        return active >= configuration.quorum
    }

    private mutating func followerTick(slot index: Int, into output: inout RaftOutput) {
        let heartbeatDue = nanosSince(progress[index].lastSendNanos) >= configuration.heartbeatIntervalNanos
        switch progress[index].state {
        case .snapshot:
            // No answer for a whole election timeout: the snapshot was lost; find the match point again.
            if nanosSince(progress[index].probeSentNanos) >= configuration.electionTimeoutMaxNanos {
                enterProbe(slot: index, at: termIndex.startPosition)
                sendAppends(slot: index, into: &output)
            } else if heartbeatDue {
                sendHeartbeat(slot: index, into: &output)
            }
        case .replicate:
            let stalled = progress[index].inflightBytes > 0
                && nanosSince(progress[index].lastProgressNanos) >= configuration.replicateTimeoutNanos
            if stalled {
                enterProbe(slot: index, at: progress[index].appendedPosition)
                sendAppends(slot: index, into: &output)
            } else if heartbeatDue {
                sendHeartbeat(slot: index, into: &output)
            }
        case .probe:
            if nanosSince(progress[index].probeSentNanos) >= configuration.heartbeatIntervalNanos {
                sendAppends(slot: index, into: &output)
            } else if heartbeatDue {
                sendHeartbeat(slot: index, into: &output)
            }
        }
    }

    private mutating func sendHeartbeat(slot index: Int, into output: inout RaftOutput) {
        progress[index].lastSendNanos = nowNanos
        send(.heartbeat(leaderCommit: commitPosition), to: configuration.members[index], into: &output)
    }

    mutating func enterProbe(slot index: Int, at position: LogPosition) {
        progress[index].state = .probe
        progress[index].nextPosition = position
        progress[index].probeSentNanos = .min
    }

    /// Sends what the follower's state allows: one probe, or appends up to the window, or a snapshot.
    mutating func sendAppends(slot index: Int, into output: inout RaftOutput) {
        let member = configuration.members[index]
        if progress[index].state != .snapshot && progress[index].nextPosition < termIndex.startPosition {
            progress[index].state = .snapshot
            progress[index].probeSentNanos = nowNanos
            progress[index].lastSendNanos = nowNanos
            emit(.sendSnapshot(to: member), into: &output)
            return
        }
        switch progress[index].state {
        case .snapshot:
            return
        case .probe:
            guard nanosSince(progress[index].probeSentNanos) >= configuration.heartbeatIntervalNanos else { return }
            progress[index].probeSentNanos = nowNanos
            sendAppend(slot: index, into: &output)
        case .replicate:
            if progress[index].inflightBytes == 0 { progress[index].lastProgressNanos = nowNanos }
            while progress[index].nextPosition < termIndex.endPosition
                && progress[index].inflightBytes < configuration.windowBytesMax
            {
                sendAppend(slot: index, into: &output)
            }
        }
    }

    /// One AppendEntries from the follower's next position: at most `appendBytesMax`, never across a
    /// term boundary (so the message carries one term and stays a fixed-size value).
    private mutating func sendAppend(slot index: Int, into output: inout RaftOutput) {
        let start = progress[index].nextPosition
        guard let prevTerm = termIndex.term(at: start) else { return }
        var end = min(termIndex.runEnd(after: start), start.advanced(by: configuration.appendBytesMax))
        end = min(end, termIndex.endPosition)
        let entryTerm = end > start ? termIndex.term(at: end)! : hardState.term
        let append = AppendEntries(
            prevPosition: start, prevTerm: prevTerm, endPosition: end, entryTerm: entryTerm, leaderCommit: commitPosition)
        // A probe stays where it is until answered; in the replicate state the pipeline moves on.
        if progress[index].state == .replicate { progress[index].nextPosition = end }
        progress[index].lastSendNanos = nowNanos
        send(.appendEntries(append), to: configuration.members[index], into: &output)
    }
}
