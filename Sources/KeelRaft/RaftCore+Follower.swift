import KeelCore

extension RaftCore {
    /// What this follower reports to the leader: matching and persisted (not counted while catching up).
    var acknowledgement: LogPosition {
        if configuration.plantedBug == .ackBeforePersist { return leaderMatchPosition }
        return min(persistedPosition, leaderMatchPosition)
    }

    /// The consistency check, conflict truncation and append (Raft §5.3), with the rejection hint of
    /// thesis §5.3 / etcd's `findConflictByTerm`.
    mutating func handleAppend(_ append: AppendEntries, from leader: MemberID, into output: inout RaftOutput) {
        // Entries below our commit position match any current leader's: check from there at the latest.
        let checkPosition = max(append.prevPosition, commitPosition)
        let expectedTerm = checkPosition == append.prevPosition ? append.prevTerm : append.entryTerm
        if checkPosition > append.endPosition {
            // Entirely below our commit position: nothing to do but say how far we match.
            leaderMatchPosition = max(leaderMatchPosition, commitPosition)
            respondSuccess(to: leader, into: &output)
            return
        }
        guard termIndex.term(at: checkPosition) == expectedTerm else {
            if checkPosition == commitPosition && checkPosition <= termIndex.endPosition {
                refusedUnsafeTruncations += 1  // the leader disagrees with a committed entry
            }
            respondRejection(at: checkPosition, rejecting: append.prevPosition, to: leader, into: &output)
            return
        }
        var conflict = checkPosition
        let end = termIndex.endPosition
        if conflict < end, termIndex.term(at: conflict.advanced(by: 1)) == append.entryTerm {
            conflict = min(termIndex.runEnd(after: conflict), append.endPosition)
        }
        if conflict < append.endPosition && conflict < end {
            guard conflict >= commitPosition else {
                refusedUnsafeTruncations += 1
                return
            }
            termIndex.truncate(from: conflict)
            persistedPosition = min(persistedPosition, conflict)
            leaderMatchPosition = min(leaderMatchPosition, conflict)
            emit(.truncate(from: conflict), into: &output)
        }
        if conflict < append.endPosition {
            termIndex.append(term: append.entryTerm, to: append.endPosition)
            emit(.append(from: conflict, to: append.endPosition, term: append.entryTerm, kind: .replicated), into: &output)
        }
        leaderMatchPosition = max(leaderMatchPosition, append.endPosition)
        advanceCommit(to: min(append.leaderCommit, leaderMatchPosition), into: &output)
        respondSuccess(to: leader, into: &output)
    }

    mutating func handleHeartbeat(leaderCommit: LogPosition, from leader: MemberID, into output: inout RaftOutput) {
        advanceCommit(to: min(leaderCommit, leaderMatchPosition), into: &output)
        send(.heartbeatResponse(appendedPosition: leaderMatchPosition), to: leader, into: &output)
    }

    private mutating func respondSuccess(to leader: MemberID, into output: inout RaftOutput) {
        let ack = acknowledgement
        lastAckSent = max(lastAckSent, ack)
        let response = AppendResponse(
            success: true, appendedPosition: leaderMatchPosition, persistedPosition: ack, catchingUp: catchingUp, bootID: bootID)
        send(.appendResponse(response), to: leader, into: &output)
    }

    private mutating func respondRejection(at position: LogPosition, rejecting prevPosition: LogPosition, to leader: MemberID, into output: inout RaftOutput) {
        let hintPosition = min(position, termIndex.endPosition)
        let response = AppendResponse(
            success: false, appendedPosition: leaderMatchPosition, persistedPosition: acknowledgement,
            catchingUp: catchingUp, bootID: bootID, rejectedPosition: prevPosition, hintPosition: hintPosition, hintTerm: termIndex.term(at: hintPosition) ?? .zero,
            hintTermStart: termIndex.termStart(at: hintPosition))
        send(.appendResponse(response), to: leader, into: &output)
    }

    /// After the log became durable further: tell the leader about the new acknowledgement.
    mutating func sendAcknowledgementIfAdvanced(into output: inout RaftOutput) {
        guard role == .follower, let leader = leaderID, acknowledgement > lastAckSent else { return }
        respondSuccess(to: leader, into: &output)
    }

    /// A member catching up after a power loss becomes voting again when the current leader says it holds
    /// everything up to a commit position of the leader's term, seen after this boot began (so it covers
    /// every entry committed before — including any this member acknowledged and then lost).
    mutating func handleCaughtUp(position: LogPosition, bootID caughtUpBoot: UInt64, into output: inout RaftOutput) {
        guard catchingUp, caughtUpBoot == bootID, persistedPosition >= position, leaderMatchPosition >= position,
              let leader = leaderID
        else { return }
        catchingUp = false
        hardState.votingBootID = bootID
        hardStateDirty = true
        respondSuccess(to: leader, into: &output)
    }
}
