import KeelCore
import KeelLog
import KeelRaft

/// A follower's AppendEntries, trimmed back to whole log frames.
///
/// The leader's core cuts AppendEntries by bytes, so one may end inside a frame. The log takes whole
/// frames only, and the follower's core must never believe it holds bytes the log does not (it would
/// vote, acknowledge and lead on them). So the runtime shows the core each AppendEntries cut back to
/// its last whole frame, and carries the cut frame's head over to the next AppendEntries, which the
/// leader starts exactly where the last one ended:
///
/// ```
///  log end (S)        carried head      message bytes
///      |<--------------------->|<------------------------------------->|
///      [ frame k ...  (carried) | ... frame k ][ frame k+1 ][ frame k+2 ...
///      S                        P                          S+W          E
///  the core sees: AppendEntries(prev: S, end: S+W); [S+W, E) is carried to the next message
/// ```
///
/// A carried head is only joined to a message that continues it: one starting at its end, of the
/// same term. By Raft's log matching, a leader whose log has an entry of that term ending there holds
/// the same bytes before it, so the head is still right. Anything else drops the head; the core then
/// answers as usual (a gap: the leader backs up to the log end).
///
/// A message may also start inside a frame the follower already holds (a resent or overlapping
/// AppendEntries, or one following a message that brought nothing new). The runtime then adopts the
/// head from its own log (`adoptHead`): the same log-matching argument makes those bytes the leader's.
struct IncomingAppend {
    /// Where the trimmed range starts: the message's prevPosition, or the log end when a head is carried.
    let start: LogPosition
    /// Bytes of the carried head at the front of the range (they sit in the carry's buffer).
    let carriedBytes: Int
    /// The message's own log bytes, for [start + carriedBytes, messageEnd).
    let messageBytes: UnsafeRawBufferPointer
    /// The end of the last whole frame in [start, messageEnd): what the core is shown.
    let wholeEnd: LogPosition
    /// The message's endPosition.
    let messageEnd: LogPosition
    /// The trimmed message for the core.
    let append: AppendEntries
}

/// Holds the head of a frame cut by an AppendEntries until the next one completes it (see `IncomingAppend`).
final class SplitFrameCarry {
    private let buffer: UnsafeMutableRawBufferPointer
    /// Carried bytes, at the front of `buffer`.
    private(set) var count = 0
    /// The leader's position where the carried bytes end (the next message's expected prevPosition).
    private var endPosition: LogPosition = .zero
    private var term: Term = .zero

    /// `maxFrameBytes`: the largest frame the log accepts (a head is shorter than its frame).
    init(maxFrameBytes: Int) {
        buffer = .allocate(byteCount: maxFrameBytes + 64, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// Forgets the carried head (the log was truncated, or the head can no longer be continued).
    func drop() { count = 0 }

    /// True when the carried head ends where `append` starts, in its term.
    func continues(_ append: AppendEntries) -> Bool {
        count > 0 && append.prevPosition == endPosition && append.prevTerm == term && append.entryTerm == term
    }

    /// Carries the follower's own bytes of the frame `append` starts inside of: `head` is the log's
    /// [frame start, append.prevPosition), of the message's term.
    func adoptHead(_ head: UnsafeRawBufferPointer, for append: AppendEntries) {
        precondition(!head.isEmpty && head.count < buffer.count, "a frame's head is shorter than the largest frame")
        buffer.baseAddress!.copyMemory(from: head.baseAddress!, byteCount: head.count)
        count = head.count
        endPosition = append.prevPosition
        term = append.entryTerm
    }

    /// Joins the carried head to `append` if it continues it, and trims the result to whole frames.
    /// `logEnd` is the log's appended position; `termBefore` gives the term of the log's frame ending
    /// at a position (the new prevTerm when a head is carried).
    func take(
        _ append: AppendEntries, bytes: UnsafeRawBufferPointer, logEnd: LogPosition, termBefore: (LogPosition) -> Term?
    ) -> IncomingAppend {
        var headTerm: Term?
        if continues(append), endPosition.advanced(by: Int64(-count)) <= logEnd {
            headTerm = termBefore(endPosition.advanced(by: Int64(-count)))
        }
        if headTerm == nil { count = 0 }
        let carried = count
        count = 0  // consumed: `keepRemainder` decides what is carried after this message
        let start = append.prevPosition.advanced(by: Int64(-carried))
        let whole = wholeFramePrefix(carried: carried, bytes)
        let wholeEnd = start.advanced(by: Int64(whole))
        let trimmed = AppendEntries(
            prevPosition: start, prevTerm: headTerm ?? append.prevTerm,
            endPosition: wholeEnd, entryTerm: append.entryTerm, leaderCommit: append.leaderCommit)
        return IncomingAppend(
            start: start, carriedBytes: carried, messageBytes: bytes, wholeEnd: wholeEnd, messageEnd: append.endPosition,
            append: trimmed)
    }

    /// After the core accepted `incoming` and the log ends at its whole end: carries the bytes after it.
    /// Returns false (carrying nothing) when the head is not a plausible frame start.
    func keepRemainder(of incoming: IncomingAppend, term: Term) -> Bool {
        let total = incoming.carriedBytes + incoming.messageBytes.count
        let whole = Int(incoming.wholeEnd.bytes(since: incoming.start))
        let remainder = total - whole
        guard remainder > 0, remainder < buffer.count else { return remainder == 0 }
        if whole == 0 {
            // The carried head is still at the front of the buffer: add the whole message after it.
            if !incoming.messageBytes.isEmpty {
                (buffer.baseAddress! + incoming.carriedBytes).copyMemory(
                    from: incoming.messageBytes.baseAddress!, byteCount: incoming.messageBytes.count)
            }
        } else {
            // A whole frame ended in the message: the remainder lies in the message's bytes alone.
            buffer.baseAddress!.copyMemory(
                from: incoming.messageBytes.baseAddress! + (whole - incoming.carriedBytes), byteCount: remainder)
        }
        count = remainder
        endPosition = incoming.messageEnd
        self.term = term
        return true
    }

    /// Calls `body` with the whole frames of `incoming` in [from, to) (from = the log end), as one or two
    /// contiguous pieces: the carried frame completed in the buffer, then the rest of the message's bytes.
    func forEachPiece(
        of incoming: IncomingAppend, from: LogPosition, to: LogPosition, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var offset = Int(from.bytes(since: incoming.start))
        let end = Int(to.bytes(since: incoming.start))
        precondition(offset >= 0 && end <= Int(incoming.wholeEnd.bytes(since: incoming.start)), "append range outside the whole frames")
        let carried = incoming.carriedBytes
        if offset < carried && end > offset {
            precondition(offset == 0, "a carried frame is appended from its start")
            let occupied = frameOccupiedBytes(at: 0, carried: carried, incoming.messageBytes)
            let fromMessage = occupied - carried
            buffer.baseAddress!.advanced(by: carried).copyMemory(from: incoming.messageBytes.baseAddress!, byteCount: fromMessage)
            try body(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: occupied))
            offset = occupied
        }
        if end > offset {
            let messageOffset = offset - carried
            try body(UnsafeRawBufferPointer(rebasing: incoming.messageBytes[messageOffset..<(messageOffset + end - offset)]))
        }
    }

    /// The length of the longest prefix of (carried head + `bytes`) made of whole frames, by their
    /// length fields (the log validates everything else). Stops at a zero or oversized length, leaving
    /// the bad bytes out: the core acknowledges up to there and the leader resends the rest.
    private func wholeFramePrefix(carried: Int, _ bytes: UnsafeRawBufferPointer) -> Int {
        let total = carried + bytes.count
        var offset = 0
        while total - offset >= 4 {
            let occupied = frameOccupiedBytes(at: offset, carried: carried, bytes)
            guard occupied > 0, occupied < buffer.count, offset + occupied <= total else { break }
            offset += occupied
        }
        return offset
    }

    /// The aligned size of the frame whose length field is at `offset` of (carried head + `bytes`);
    /// 0 for an invalid length. The field may straddle the two.
    private func frameOccupiedBytes(at offset: Int, carried: Int, _ bytes: UnsafeRawBufferPointer) -> Int {
        var length: UInt32 = 0
        for index in 0..<4 {
            let at = offset + index
            let byte = at < carried ? buffer[at] : bytes[at - carried]
            length |= UInt32(byte) << (8 * UInt32(index))
        }
        guard length > 0 else { return 0 }
        return LogFormat.aligned(Int(length))
    }
}
