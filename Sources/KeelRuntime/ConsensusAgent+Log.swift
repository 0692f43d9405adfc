import KeelCore
import KeelLog
import KeelRaft
import KeelWire

// The log side of the core's actions: proposals from the ingress batch, the new leader's entry,
// the follower's raw appends (with frames split across AppendEntries), and truncation.
extension ConsensusAgent {
    /// Leader: the whole ingress of this cycle becomes one proposal and one log append.
    func proposeIngress() throws -> Int {
        guard !ingress.isEmpty else { return 0 }
        guard core.role == .leader else {
            ingress.removeAll()
            return 0
        }
        let start = log.appendedPosition
        let end = ingress.endPosition(appendedAt: start, segmentLengthBytes: log.configuration.segmentLengthBytes)
        try step(.propose(byteCount: end.bytes(since: start)))
        ingress.removeAll()  // written by the `.proposal` action, or refused
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
            let header = LogEntryHeader(type: .newLeadershipTerm, timestamp: nextClusterTime())
            try log.append(term: term, header, payload: UnsafeRawBufferPointer(start: nil, count: 0))
            let end = try log.commitBatch()
            precondition(end == to, "the leadership entry occupies \(end.bytes(since: from)) bytes, not \(to.bytes(since: from))")
        case .replicated:
            guard let append = currentAppend else { preconditionFailure("a replicated append without its AppendEntries") }
            let skip = Int(from.bytes(since: append.prevPosition))
            let count = Int(to.bytes(since: from))
            precondition(skip >= 0 && skip + count <= append.bytes.count, "append range outside the message's bytes")
            try appendReplicated(UnsafeRawBufferPointer(rebasing: append.bytes[skip..<(skip + count)]), at: from)
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

    /// Follower: appends the leader's bytes for [position, position + bytes.count). The core may cut
    /// an AppendEntries inside a frame; the log takes whole frames only, so the tail of a split frame
    /// waits in `partial` for the next AppendEntries (the core's view of the log runs ahead of the
    /// log's appended position by at most one frame).
    func appendReplicated(_ bytes: UnsafeRawBufferPointer, at position: LogPosition) throws {
        precondition(position == log.appendedPosition.advanced(by: Int64(partialCount)), "replicated bytes must continue the log")
        var rest = bytes
        if partialCount > 0 {
            rest = try completePartialFrame(rest)
            if partialCount > 0 { return }
        }
        let whole = wholeFramePrefix(rest)
        if whole > 0 {
            let frames = UnsafeRawBufferPointer(rebasing: rest[0..<whole])
            frames.forEachFrameTimestamp { lastClusterTime = max(lastClusterTime, $0) }
            try log.appendRaw(frames, at: log.appendedPosition)
        }
        let remainder = rest.count - whole
        if remainder > 0 {
            precondition(remainder <= partial.count, "a split frame larger than the largest frame")
            partial.baseAddress!.copyMemory(from: rest.baseAddress! + whole, byteCount: remainder)
            partialCount = remainder
        }
    }

    /// Adds bytes to the split frame; appends it once whole. Returns the bytes not used.
    private func completePartialFrame(_ bytes: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer {
        var rest = bytes
        if partialCount < 4 {
            let take = min(4 - partialCount, rest.count)
            (partial.baseAddress! + partialCount).copyMemory(from: rest.baseAddress!, byteCount: take)
            partialCount += take
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            if partialCount < 4 { return rest }
        }
        let length = Int(UInt32(littleEndian: partial.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        let occupied = LogFormat.aligned(length)
        guard length > 0, occupied <= partial.count else {
            throw ConfigurationError("leader sent a frame of length \(length) at \(log.appendedPosition.rawValue)")
        }
        let take = min(occupied - partialCount, rest.count)
        if take > 0 { (partial.baseAddress! + partialCount).copyMemory(from: rest.baseAddress!, byteCount: take) }
        partialCount += take
        rest = UnsafeRawBufferPointer(rebasing: rest[take...])
        if partialCount == occupied {
            let frame = UnsafeRawBufferPointer(start: partial.baseAddress!, count: occupied)
            frame.forEachFrameTimestamp { lastClusterTime = max(lastClusterTime, $0) }
            partialCount = 0
            try log.appendRaw(frame, at: log.appendedPosition)
        }
        return rest
    }

    /// The length of the longest prefix of `bytes` made of whole frames (by their length fields; the
    /// log validates them).
    private func wholeFramePrefix(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while bytes.count - offset >= 4 {
            let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            let occupied = LogFormat.aligned(length)
            // A zero length is invalid: hand it to the log, which rejects it with a reason.
            guard length > 0 else { return bytes.count - offset >= 32 ? offset + 32 : offset }
            guard offset + occupied <= bytes.count else { break }
            offset += occupied
        }
        return offset
    }

    func truncateLog(from position: LogPosition) throws {
        let appended = log.appendedPosition
        if position >= appended {
            partialCount = min(partialCount, Int(position.bytes(since: appended)))
            return
        }
        partialCount = 0
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
