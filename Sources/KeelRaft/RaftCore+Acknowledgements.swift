import KeelCore

extension RaftCore {
    mutating func handleAppendResponse(_ response: AppendResponse, slot index: Int, into output: inout RaftOutput) {
        guard response.success else {
            handleRejection(response, slot: index, into: &output)
            return
        }
        progress[index].catchingUp = response.catchingUp
        if response.appendedPosition > progress[index].appendedPosition {
            progress[index].appendedPosition = response.appendedPosition
            progress[index].lastProgressNanos = nowNanos
        }
        if response.catchingUp {
            progress[index].matchPosition = .zero  // acknowledges nothing until caught up (decision 7)
            progress[index].catchingUpPersisted = response.persistedPosition
            progress[index].catchingUpBootID = response.bootID
            offerCaughtUp(slot: index, into: &output)
        } else {
            progress[index].matchPosition = max(progress[index].matchPosition, response.persistedPosition)
        }
        switch progress[index].state {
        case .probe, .snapshot:
            progress[index].state = .replicate
            progress[index].nextPosition = response.appendedPosition
            progress[index].lastProgressNanos = nowNanos
        case .replicate:
            if progress[index].nextPosition < response.appendedPosition {
                progress[index].nextPosition = response.appendedPosition
            }
        }
        maybeCommit(into: &output)
        if role != .leader { return }
        let member = configuration.members[index]
        if transferTarget == member && progress[index].appendedPosition == termIndex.endPosition && !response.catchingUp {
            send(.timeoutNow, to: member, into: &output)
            return
        }
        sendAppends(slot: index, into: &output)
    }

    private mutating func handleRejection(_ response: AppendResponse, slot index: Int, into output: inout RaftOutput) {
        if progress[index].state == .snapshot { return }
        if response.catchingUp {
            // It lost its page cache: what it acknowledged before may be gone (decision 7).
            progress[index].catchingUp = true
            progress[index].matchPosition = .zero
        }
        // A late answer to an append older than what the follower has since acknowledged: ignore it
        // (acting on it would send a snapshot or re-probe for nothing).
        if response.rejectedPosition < progress[index].matchPosition { return }
        let next = nextPosition(hintPosition: response.hintPosition, hintTerm: response.hintTerm, hintTermStart: response.hintTermStart)
        progress[index].appendedPosition = min(progress[index].appendedPosition, next)
        enterProbe(slot: index, at: next)
        sendAppends(slot: index, into: &output)
    }

    /// Where to probe next after a rejection: the highest position, at or below the follower's hint,
    /// where the two logs may agree, backing up a whole term per round trip. Always an entry boundary of
    /// this leader's log (or below its start, which calls for a snapshot).
    func nextPosition(hintPosition: LogPosition, hintTerm: Term, hintTermStart: LogPosition) -> LogPosition {
        if termIndex.term(at: hintPosition) == hintTerm { return hintPosition }
        if let end = termIndex.end(ofTerm: hintTerm), end > hintTermStart, end < hintPosition { return end }
        if termIndex.startTerm == hintTerm, termIndex.startPosition > hintTermStart, termIndex.startPosition < hintPosition {
            return termIndex.startPosition
        }
        if hintTermStart < termIndex.startPosition { return hintTermStart }
        return termIndex.boundary(atOrBefore: min(hintTermStart, termIndex.endPosition))
    }

    /// Tells a follower catching up after a power loss that it is caught up, once it holds our commit
    /// position and that position is of our term: everything committed before it rejoined is at or
    /// below it. Also offered on heartbeat answers, because the commit position may reach our term
    /// only after the follower's last append response (an idle cluster sends no more of those).
    mutating func offerCaughtUp(slot index: Int, into output: inout RaftOutput) {
        guard progress[index].catchingUp, progress[index].catchingUpPersisted >= commitPosition,
              termIndex.term(at: commitPosition) == hardState.term
        else { return }
        send(.caughtUp(position: commitPosition, bootID: progress[index].catchingUpBootID), to: configuration.members[index], into: &output)
    }

    mutating func handleHeartbeatResponse(appendedPosition: LogPosition, slot index: Int, into output: inout RaftOutput) {
        offerCaughtUp(slot: index, into: &output)
        switch progress[index].state {
        case .probe:
            sendAppends(slot: index, into: &output)
        case .replicate:
            // The follower forgot how far it matches (it restarted): re-establish it with a probe.
            if appendedPosition < progress[index].appendedPosition && progress[index].inflightBytes == 0 {
                enterProbe(slot: index, at: progress[index].appendedPosition)
                sendAppends(slot: index, into: &output)
            } else if progress[index].nextPosition < termIndex.endPosition {
                sendAppends(slot: index, into: &output)
            }
        case .snapshot:
            break
        }
    }

    /// The commit rule (Raft §5.3, §5.4.2): the highest position held by a majority — this leader's own
    /// persisted position counts — whose entry is of the current term.
    mutating func maybeCommit(into output: inout RaftOutput) {
        guard role == .leader else { return }
        var best = commitPosition
        for candidateSlot in progress.indices {
            let candidate = acknowledged(slot: candidateSlot)
            guard candidate > best else { continue }
            var holders = 0
            for index in progress.indices where acknowledged(slot: index) >= candidate { holders += 1 }
            if holders >= configuration.quorum { best = candidate }
        }
        guard best > commitPosition else { return }
        if configuration.plantedBug != .commitOldTermByCounting {
            guard termIndex.term(at: best) == hardState.term else { return }
        }
        advanceCommit(to: best, into: &output)
    }

    private func acknowledged(slot index: Int) -> LogPosition {
        if index == selfSlot { return selfAcknowledgedPosition }
        return progress[index].catchingUp ? .zero : progress[index].matchPosition
    }
}
