import KeelCore
import Synchronization

// What the Raft core needs from the log beyond appending: the follower path, truncation, term
// queries, raw reads, and moving the log start.
extension ReplicatedLog {
    /// The term of the frame containing `position` (nil outside the log).
    public func term(at position: LogPosition) -> Term? { termIndex.term(at: position, end: appendedPosition) }

    /// The term of the frame ending at `position` (Raft's prevTerm for a prevPosition): the
    /// log-start term at the start position; nil outside [start, end].
    public func term(before position: LogPosition) -> Term? { termIndex.term(before: position, end: appendedPosition) }

    /// Where `term`'s first frame is, if the log holds any frame of it.
    public func startOfTerm(_ term: Term) -> LogPosition? {
        guard let start = termIndex.start(of: term), start < appendedPosition else { return nil }
        return start
    }

    /// Follower path: appends frames received from the leader, byte for byte, at `position` (which
    /// must be the appended position). Every frame is validated (CRC, version, layout, terms in
    /// order) before anything is committed; only the durable-position field is re-stamped with this
    /// node's own (the leader's says nothing about what this node has synced) and its CRC re-sealed.
    /// Returns the new appended position. On an invalid frame nothing of the call is kept.
    @discardableResult
    public func appendRaw(_ bytes: UnsafeRawBufferPointer, at position: LogPosition) throws(LogError) -> LogPosition {
        precondition(!batchOpen, "commit or abandon the open batch before appending raw frames")
        guard position == appendedPosition else {
            throw .badPosition(position, reason: "raw frames must be appended at the end, \(appendedPosition.rawValue)")
        }
        var offset = 0
        while offset < bytes.count {
            let frame = bytes.baseAddress! + offset
            let segmentOffset = Int(cursor.rawValue % segmentLength)
            let check = FrameCodec.check(
                frame, bytesToSegmentEnd: Int(segmentLength) - segmentOffset, maxFrameBytes: maxFrameBytes,
                availableBytes: bytes.count - offset)
            let occupied: Int
            switch check {
            case .valid(let bytes): occupied = bytes
            case .empty: abandonBatch(); throw .invalidFrames(position: cursor, reason: "zeros where a frame should be")
            case .invalid(let reason): abandonBatch(); throw .invalidFrames(position: cursor, reason: reason)
            case .unsupportedVersion(let version):
                abandonBatch()
                throw .invalidFrames(position: cursor, reason: "format version \(version); this build reads only \(LogFormat.version)")
            }
            let view = LogFrameView(base: frame, position: cursor)
            guard view.term >= termIndex.lastTerm else {
                abandonBatch()
                throw .invalidFrames(position: cursor, reason: "term \(view.term.rawValue) after term \(termIndex.lastTerm.rawValue)")
            }
            if view.type == .padding {
                if !batchOpen { _ = try reserve(occupiedBytes: 0, term: view.term) }
                try pad(term: view.term)
            } else {
                let destination = try reserve(occupiedBytes: occupied, term: view.term)
                destination.copyMemory(from: frame, byteCount: occupied)
                FrameCodec.restampDurablePosition(destination, batchDurablePosition)
                placed(occupiedBytes: occupied, term: view.term)
            }
            offset += occupied
        }
        return try commitBatch()
    }

    /// Raft conflict resolution: removes every frame from `position` (a frame boundary) on, durably,
    /// by zeroing within the preallocated segments (never shrinking a mapped file) and fdatasyncing.
    public func truncate(from position: LogPosition) throws(LogError) {
        precondition(!batchOpen, "commit or abandon the open batch before truncating")
        guard position >= startPosition, position <= appendedPosition else {
            throw .badPosition(position, reason: "outside the log [\(startPosition.rawValue), \(appendedPosition.rawValue)]")
        }
        guard position < appendedPosition else { return }
        let segment = segments[segmentIndex(of: position)]
        let offset = Int(position.bytes(since: segment.start))
        let remaining = Int(segmentLength) - offset
        guard position.rawValue % Int64(LogFormat.frameAlignmentBytes) == 0,
              case .valid = FrameCodec.check(segment.data + offset, bytesToSegmentEnd: remaining, maxFrameBytes: maxFrameBytes, availableBytes: remaining)
        else { throw .badPosition(position, reason: "not a frame boundary") }
        // Readers must stop short of what is about to be zeroed.
        publication.appendedPosition.store(position.rawValue, ordering: .releasing)
        try zero(from: position, to: appendedPosition, sync: true)
        syncGeneration += 1
        appendedPosition = position
        cursor = position
        stagingPosition = position
        if durablePosition > position {
            durablePosition = position
            publication.durablePosition.store(position.rawValue, ordering: .releasing)
        }
        termIndex.truncate(from: position)
    }

    /// Moves the log start forward to `position` (a committed frame boundary; compaction after a
    /// snapshot): records the start and the term before it durably, then deletes every segment file
    /// that lies wholly before it. The runtime makes sure no reader still reads those segments.
    /// Returns the names of the segment files deleted. The directory is not synced: a deletion a
    /// power loss undoes leaves a file wholly before the durable start, which recovery removes (and
    /// a directory sync here cost the caller's thread up to a journal commit).
    @discardableResult
    public func moveStart(to position: LogPosition) throws(LogError) -> [String] {
        precondition(!batchOpen, "commit or abandon the open batch before moving the log start")
        guard position >= startPosition, position <= appendedPosition, let term = term(before: position) else {
            throw .badPosition(position, reason: "outside the log [\(startPosition.rawValue), \(appendedPosition.rawValue)]")
        }
        try LogStartRecord.write(&logStartRecord, position: position, term: term)
        termIndex.moveStart(to: position, term: term)
        publication.startPosition.store(position.rawValue, ordering: .releasing)
        var removed: [String] = []
        while segments.count > 1, segments[0].start.rawValue + segmentLength <= position.rawValue {
            let segment = segments.removeFirst()
            cachedSegmentStart = -1
            publication.setSegmentData(start: segment.start.rawValue, base: nil)
            segment.close(storage: storage)
            do { try storage.deleteFile(segment.name) } catch { throw .storage(error) }
            removed.append(segment.name)
        }
        return removed
    }

    /// Empties the log and restarts it at `position` with `term` before it (a follower installing a
    /// snapshot its log does not reach). Segments are deleted first, so a crash midway leaves an
    /// empty log at the old start rather than old frames under a new start.
    public func reset(to position: LogPosition, term: Term) throws(LogError) {
        precondition(!batchOpen, "commit or abandon the open batch before resetting the log")
        precondition(position.rawValue % Int64(LogFormat.frameAlignmentBytes) == 0, "the log starts at a frame boundary")
        publication.appendedPosition.store(min(position.rawValue, appendedPosition.rawValue), ordering: .releasing)
        drainPreparer()
        for segment in segments {
            publication.setSegmentData(start: segment.start.rawValue, base: nil)
            segment.close(storage: storage)
            do { try storage.deleteFile(segment.name) } catch { throw .storage(error) }
        }
        segments.removeAll()
        cachedSegmentStart = -1
        do { try storage.syncDirectory() } catch { throw .storage(error) }
        try LogStartRecord.write(&logStartRecord, position: position, term: term)
        let first = try LogSegment.create(storage: storage, start: LogPosition(position.rawValue - position.rawValue % segmentLength), configuration: configuration)
        publication.setSegmentData(start: first.start.rawValue, base: first.data)
        segments.append(first)
        syncGeneration += 1
        termIndex.reset(logStart: position, term: term)
        publication.startPosition.store(position.rawValue, ordering: .releasing)
        appendedPosition = position
        durablePosition = position
        cursor = position
        stagingPosition = position
        publication.durablePosition.store(position.rawValue, ordering: .releasing)
        publication.appendedPosition.store(position.rawValue, ordering: .releasing)
    }
}
