import KeelCore
import KeelLog
import KeelRaft
import KeelWire

// The log side of the core's actions: proposals from the ingress batch, the new leader's entry,
// the follower's raw appends (trimmed to whole frames, see SplitFrameCarry), and truncation.
extension ConsensusAgent {
    /// Leader: the whole ingress of this cycle becomes one proposal and one log append.
    func proposeIngress() throws -> Int {
        guard !ingress.isEmpty else { return 0 }
        guard core.role == .leader else {
            ingress.removeAll()
            timers.batchDropped()
            return 0
        }
        if control.shutdownInLog {
            // Nothing after the shutdown entry: the final snapshots are at the log's end.
            ingress.removeAll()
            timers.batchDropped()
            return 0
        }
        // A leadership transfer refuses proposals: the batch waits (client reads are paused).
        guard core.leadershipTransferTarget == nil else { return 0 }
        let start = log.appendedPosition
        let end = ingress.endPosition(appendedAt: start, segmentLengthBytes: log.configuration.segmentLengthBytes)
        try step(.propose(byteCount: end.bytes(since: start)))
        ingress.removeAll()  // written by the `.proposal` action, or refused
        let appended = log.appendedPosition == end
        if appended { timers.batchAppended(endingAt: end) } else { timers.batchDropped() }
        controlBatchAppended(endingAt: appended ? end : nil)
        return 1
    }

    func appendToLog(from: LogPosition, to: LogPosition, term: Term, kind: RaftEntryKind) throws {
        switch kind {
        case .proposal:
            precondition(from == log.appendedPosition, "a proposal starts at the end of the log")
            let timestamp = nextClusterTime()
            for entry in ingress.entries {
                let header = LogEntryHeader(type: entry.type, sessionID: entry.sessionID, correlationID: entry.correlationID, timestamp: timestamp)
                try log.append(term: term, header, payload: ingress.payload(of: entry))
            }
            let end = try log.commitBatch()
            precondition(end == to, "the batch occupies \(end.bytes(since: from)) bytes, not the \(to.bytes(since: from)) proposed")
        case .leadershipTerm:
            precondition(from == log.appendedPosition, "the leadership entry starts at the end of the log")
            shared.leaderEgressStart.store(from.rawValue, ordering: .releasing)  // before the role is published
            let header = LogEntryHeader(type: .newLeadershipTerm, timestamp: nextClusterTime())
            try log.append(term: term, header, payload: UnsafeRawBufferPointer(start: nil, count: 0))
            let end = try log.commitBatch()
            precondition(end == to, "the leadership entry occupies \(end.bytes(since: from)) bytes, not \(to.bytes(since: from))")
        case .replicated:
            guard let incoming = currentAppend else { preconditionFailure("a replicated append without its AppendEntries") }
            precondition(from == log.appendedPosition, "replicated bytes must continue the log")
            try carry.forEachPiece(of: incoming, from: from, to: to) { frames in
                frames.forEachFrameTimestamp { lastClusterTime = max(lastClusterTime, $0) }
                try log.appendRaw(frames, at: log.appendedPosition)
            }
        case .configurationChange:
            preconditionFailure("membership changes are not produced yet")
        }
        counters?.appendPosition.set(log.appendedPosition.rawValue)
    }

    /// Leader: cluster time never goes back, across leader changes too (DESIGN.md decision 9).
    func nextClusterTime() -> ClusterTime {
        lastClusterTime = max(lastClusterTime, ClusterTime(nanosSinceEpoch: clock.epochNanos()))
        return lastClusterTime
    }

    /// Follower: steps an AppendEntries trimmed to whole frames (`SplitFrameCarry` says why), then
    /// carries the head of a frame it cut, if the core took the message and the log now ends where the
    /// whole frames did.
    func stepAppend(_ append: AppendEntries, term: Term, bytes: UnsafeRawBufferPointer, from member: MemberID) throws {
        let logEnd = log.appendedPosition
        if !carry.continues(append) { adoptOwnHead(for: append, logEnd: logEnd) }
        let incoming = carry.take(append, bytes: bytes, logEnd: logEnd) { log.term(before: $0) }
        currentAppend = incoming
        defer { currentAppend = nil }
        try step(.message(from: member, RaftMessage(term: term, body: .appendEntries(incoming.append))))
        guard incoming.wholeEnd < incoming.messageEnd, log.appendedPosition == incoming.wholeEnd, acceptedAppend() else { return }
        if !carry.keepRemainder(of: incoming, term: append.entryTerm) {
            reportError(.protocolViolation, "member \(member.rawValue) sent a frame too large to carry at \(incoming.wholeEnd.rawValue)")
        }
    }

    /// When `append` starts inside a frame this log already holds, in that frame's term, carries the
    /// frame's head from the log (see `SplitFrameCarry`), so the core is shown whole frames only.
    private func adoptOwnHead(for append: AppendEntries, logEnd: LogPosition) {
        let position = append.prevPosition
        guard position > log.startPosition, position < logEnd, append.prevTerm == append.entryTerm,
              log.term(at: position) == append.prevTerm, let start = frameStart(containing: position), start < position
        else { return }
        log.reader.withRawBytes(from: start, to: position) { head in carry.adoptHead(head, for: append) }
    }

    /// The start of the log's frame holding `position` (padding included), found by walking frame
    /// headers from the nearest known frame boundary: the published commit or the start of the term.
    private func frameStart(containing position: LogPosition) -> LogPosition? {
        guard let term = log.term(at: position), let termStart = log.startOfTerm(term) else { return nil }
        var boundary = publishedCommit >= termStart && publishedCommit <= position ? publishedCommit : termStart
        var found: LogPosition?
        log.reader.forEachFrame(from: boundary, limit: log.appendedPosition) { frame in
            if frame.position > position {
                found = boundary  // `position` lies in padding between the last frame and this one
                return false
            }
            if frame.endPosition > position {
                found = frame.position
                return false
            }
            boundary = frame.endPosition
            return true
        }
        return found
    }

    /// True when the step just taken answered an AppendEntries with success.
    private func acceptedAppend() -> Bool {
        for action in output.actions {
            if case .send(_, let message) = action, case .appendResponse(let response) = message.body { return response.success }
        }
        return false
    }

    func truncateLog(from position: LogPosition) throws {
        let appended = log.appendedPosition
        carry.drop()
        if position >= appended { return }
        try log.truncate(from: position)
        reportedPersisted = min(reportedPersisted, position)
        event("log truncated from \(position.rawValue) (was \(appended.rawValue))")
    }
}

extension UnsafeRawBufferPointer {
    /// Calls `body` with the timestamp of each whole frame (padding included, whose timestamp is 0).
    func forEachFrameTimestamp(_ body: (ClusterTime) -> Void) {
        var offset = 0
        while count - offset >= LogFormat.frameHeaderBytes {
            let view = LogFrameView(base: baseAddress! + offset, position: .zero)
            let occupied = view.occupiedBytes
            guard view.lengthBytes >= LogFormat.paddingFrameMinimumBytes, offset + occupied <= count else { return }
            if view.type != .padding { body(view.timestamp) }
            offset += occupied
        }
    }
}
