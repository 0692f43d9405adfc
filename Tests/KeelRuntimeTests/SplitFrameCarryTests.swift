import KeelCore
import KeelLog
import KeelRaft
@testable import KeelRuntime
import Testing

/// The follower's whole-frame trimming: a stream of frames cut into AppendEntries at arbitrary byte
/// positions must reach the log as exactly the same bytes, with the core only ever shown whole frames.
@Suite struct SplitFrameCarryTests {
    /// Frames of the given total lengths (header included), each filled with its index, length field first.
    static func frameStream(lengths: [Int]) -> (bytes: [UInt8], boundaries: Set<Int>) {
        var bytes: [UInt8] = []
        var boundaries: Set<Int> = [0]
        for (index, length) in lengths.enumerated() {
            var frame = [UInt8](repeating: UInt8(truncatingIfNeeded: index + 1), count: LogFormat.aligned(length))
            withUnsafeBytes(of: UInt32(length).littleEndian) { frame.replaceSubrange(0..<4, with: $0) }
            bytes += frame
            boundaries.insert(bytes.count)
        }
        return (bytes, boundaries)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func arbitraryCutsDeliverTheSameWholeFrames(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let lengths = (0..<60).map { _ in 33 + Int(random.next() % 700) }
        let (stream, boundaries) = Self.frameStream(lengths: lengths)
        let carry = SplitFrameCarry(maxFrameBytes: 1024)
        var log: [UInt8] = []
        var sent = 0
        let term = Term(3)
        while sent < stream.count {
            // Cuts as small as 1 byte (the length field itself straddles messages) and as large as several frames.
            let size = min(stream.count - sent, 1 + Int(random.next() % 1500))
            let append = AppendEntries(
                prevPosition: LogPosition(Int64(sent)), prevTerm: term, endPosition: LogPosition(Int64(sent + size)),
                entryTerm: term, leaderCommit: .zero)
            stream.withUnsafeBytes { all in
                let bytes = UnsafeRawBufferPointer(rebasing: all[sent..<(sent + size)])
                let logEnd = LogPosition(Int64(log.count))
                let incoming = carry.take(append, bytes: bytes, logEnd: logEnd) { _ in term }
                #expect(incoming.start == logEnd, "seed \(seed): the trimmed range starts at the log end")
                #expect(boundaries.contains(Int(incoming.wholeEnd.rawValue)), "seed \(seed): the core is shown whole frames only")
                try? carry.forEachPiece(of: incoming, from: incoming.start, to: incoming.wholeEnd) { log += $0 }
                #expect(log.count == Int(incoming.wholeEnd.rawValue), "seed \(seed)")
                #expect(carry.keepRemainder(of: incoming, term: term))
            }
            sent += size
        }
        #expect(log == stream, "seed \(seed): the log holds exactly the leader's bytes")
        #expect(carry.count == 0)
    }

    @Test func aHeadIsDroppedWhenTheNextMessageDoesNotContinueIt() {
        let (stream, _) = Self.frameStream(lengths: [100, 100])
        let carry = SplitFrameCarry(maxFrameBytes: 1024)
        stream.withUnsafeBytes { all in
            // First message ends inside the second frame: 128 + 40 bytes.
            let first = AppendEntries(prevPosition: .zero, prevTerm: Term(1), endPosition: LogPosition(168), entryTerm: Term(1), leaderCommit: .zero)
            let incoming = carry.take(first, bytes: UnsafeRawBufferPointer(rebasing: all[0..<168]), logEnd: .zero) { _ in Term(1) }
            #expect(incoming.wholeEnd == LogPosition(128))
            #expect(carry.keepRemainder(of: incoming, term: Term(1)))
            #expect(carry.count == 40)
            // A new leader's message of another term at the same position must not be joined to the head.
            let other = AppendEntries(prevPosition: LogPosition(168), prevTerm: Term(2), endPosition: LogPosition(256), entryTerm: Term(2), leaderCommit: .zero)
            let next = carry.take(other, bytes: UnsafeRawBufferPointer(rebasing: all[168..<256]), logEnd: LogPosition(128)) { _ in Term(1) }
            #expect(next.carriedBytes == 0)
            #expect(next.start == LogPosition(168), "shown to the core as sent: it rejects the gap")
        }
    }

    /// A message starting inside a frame the follower already holds (it brought nothing new, or was
    /// resent): with the head adopted from the follower's own log, the core is shown whole frames and
    /// the log receives exactly the bytes after its end.
    @Test(arguments: [UInt64(11), 12, 13, 14, 15, 16])
    func messagesStartingInsideAFrameAlreadyHeldAreTrimmedToWholeFrames(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let lengths = (0..<40).map { _ in 33 + Int(random.next() % 700) }
        let (stream, boundaries) = Self.frameStream(lengths: lengths)
        let sorted = boundaries.sorted()
        let carry = SplitFrameCarry(maxFrameBytes: 1024)
        let term = Term(2)
        // The follower holds whole frames up to `logEnd`; the leader starts a message inside one of them.
        let logEnd = sorted[sorted.count / 2]
        let frameIndex = 1 + Int(random.next() % UInt64(sorted.count / 2 - 1))
        let frameStart = sorted[frameIndex - 1]
        let prev = frameStart + 1 + Int(random.next() % UInt64(sorted[frameIndex] - frameStart - 1))
        let end = min(stream.count, prev + 1 + Int(random.next() % 4000))
        let append = AppendEntries(
            prevPosition: LogPosition(Int64(prev)), prevTerm: term, endPosition: LogPosition(Int64(end)), entryTerm: term, leaderCommit: .zero)
        stream.withUnsafeBytes { all in
            #expect(!carry.continues(append))
            carry.adoptHead(UnsafeRawBufferPointer(rebasing: all[frameStart..<prev]), for: append)
            let incoming = carry.take(append, bytes: UnsafeRawBufferPointer(rebasing: all[prev..<end]), logEnd: LogPosition(Int64(logEnd))) { _ in term }
            #expect(incoming.start == LogPosition(Int64(frameStart)), "seed \(seed): shown from the start of the frame held")
            #expect(boundaries.contains(Int(incoming.wholeEnd.rawValue)), "seed \(seed): the core is shown whole frames only")
            #expect(incoming.wholeEnd <= LogPosition(Int64(end)))
            // The core appends only what lies beyond the log's end.
            if incoming.wholeEnd.rawValue > Int64(logEnd) {
                var appended: [UInt8] = []
                try? carry.forEachPiece(of: incoming, from: LogPosition(Int64(logEnd)), to: incoming.wholeEnd) { appended += $0 }
                #expect(appended == Array(all[logEnd..<Int(incoming.wholeEnd.rawValue)]), "seed \(seed)")
            }
        }
    }
}
