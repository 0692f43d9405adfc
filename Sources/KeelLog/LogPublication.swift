import KeelCore
import Synchronization

/// What the log's owner thread publishes for readers on other threads: the appended and durable
/// positions (stored with release, loaded with acquire) and where each segment's data is mapped.
///
/// A segment's slot is written before any position inside that segment is published, so a reader
/// that acquires a position also sees the mapping of every segment below it.
public final class LogPublication: @unchecked Sendable {
    // Safe because: `slots` is written only by the owner thread, each slot before a release store of
    // a position inside its segment, and read by readers only for segments below an acquired position.
    // The ring holds `slotCount` segments; the log never keeps more mapped at once (checked on create).

    /// End of the last whole batch written (readers never look past it).
    public let appendedPosition: Atomic<Int64>
    /// Everything below this position is covered by a completed fdatasync.
    public let durablePosition: Atomic<Int64>
    /// Where the log begins: segments before it may be deleted (compaction), so no read starts below it.
    public let startPosition: Atomic<Int64>
    /// Data bytes per segment.
    public let segmentLengthBytes: Int64
    /// How many segments can be mapped at once.
    public let slotCount: Int
    private let slots: UnsafeMutablePointer<UInt>

    init(segmentLengthBytes: Int64, slotCount: Int = 4096) {
        self.segmentLengthBytes = segmentLengthBytes
        self.slotCount = slotCount
        appendedPosition = Atomic(0)
        durablePosition = Atomic(0)
        startPosition = Atomic(0)
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: 0, count: slotCount)
    }

    deinit { slots.deallocate() }

    @inline(__always)
    func slotIndex(ofSegmentStarting start: Int64) -> Int { Int((start / segmentLengthBytes) % Int64(slotCount)) }

    func setSegmentData(start: Int64, base: UnsafeRawPointer?) {
        slots[slotIndex(ofSegmentStarting: start)] = UInt(bitPattern: base)
    }

    /// The mapped byte at `position` (which must be below an acquired published position).
    @inline(__always)
    func address(of position: Int64) -> UnsafeRawPointer {
        let start = position - position % segmentLengthBytes
        let base = UnsafeRawPointer(bitPattern: slots[slotIndex(ofSegmentStarting: start)])
        precondition(base != nil, "segment of position \(position) is not mapped")
        return base! + Int(position - start)
    }
}

/// Reads committed frames straight from the mapping, on any thread. Zero-copy: the views point into
/// the mapped segments and stay valid until those segments are deleted (compaction, coordinated by
/// the runtime so that it never deletes what a reader is still reading).
public struct LogReader: Sendable {
    /// The publication of the log being read.
    public let publication: LogPublication

    public init(publication: LogPublication) { self.publication = publication }

    /// The published appended position (acquire).
    public var appendedPosition: LogPosition { LogPosition(publication.appendedPosition.load(ordering: .acquiring)) }
    /// Where the log begins (acquire); reads must start at or after it.
    public var startPosition: LogPosition { LogPosition(publication.startPosition.load(ordering: .acquiring)) }

    /// Calls `body` for every entry (padding skipped) starting at `from` (a frame boundary) and
    /// ending at or before `limit` and the published position. `body` returns false to stop early.
    /// Returns the position after the last frame visited.
    @discardableResult
    public func forEachFrame<E: Error>(
        from: LogPosition, limit: LogPosition, _ body: (LogFrameView) throws(E) -> Bool
    ) throws(E) -> LogPosition {
        let end = min(limit.rawValue, publication.appendedPosition.load(ordering: .acquiring))
        var position = from.rawValue
        checkStart(position)
        while position < end {
            let frame = LogFrameView(base: publication.address(of: position), position: LogPosition(position))
            let next = position + Int64(frame.occupiedBytes)
            precondition(frame.lengthBytes > 0 && next <= end, "published frames are whole; a frame boundary was expected at \(position) (length \(frame.lengthBytes), published end \(end))")
            if frame.type != .padding {
                guard try body(frame) else { return LogPosition(next) }
            }
            position = next
        }
        return LogPosition(position)
    }

    /// Calls `body` with the raw bytes of [from, to), one contiguous piece per segment (for
    /// AppendEntries: the bytes go on the wire as they are). `to` must not exceed the published position.
    public func withRawBytes<E: Error>(
        from: LogPosition, to: LogPosition, _ body: (UnsafeRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        precondition(to.rawValue <= publication.appendedPosition.load(ordering: .acquiring), "raw read past the published position")
        var position = from.rawValue
        if position < to.rawValue { checkStart(position) }
        while position < to.rawValue {
            let segmentEnd = position - position % publication.segmentLengthBytes + publication.segmentLengthBytes
            let pieceEnd = min(segmentEnd, to.rawValue)
            try body(UnsafeRawBufferPointer(start: publication.address(of: position), count: Int(pieceEnd - position)))
            position = pieceEnd
        }
    }

    /// Refuses a read that starts before the log start: those segments may already be deleted. (The
    /// runtime never compacts past what a reader still needs; this catches a reader that would.)
    @inline(__always)
    func checkStart(_ position: Int64) {
        let start = publication.startPosition.load(ordering: .acquiring)
        precondition(position >= start, "read at log position \(position), before the log start \(start) (compacted away)")
    }
}
