import Foundation
import KeelCore
import KeelIO
import KeelLog
import Synchronization
import Testing

/// What the reader thread found, shared with the test thread.
private final class ReaderResult: Sendable {
    let framesRead = Atomic<Int>(0)
    let badFrames = Atomic<Int>(0)
    let outOfOrder = Atomic<Int>(0)
    let finished = Atomic<Bool>(false)
}

@Suite struct LogConcurrentReaderTests {
    /// A reader on another thread follows the published position while the owner appends across
    /// many segment roll-overs: every frame it sees is whole (CRC), in order, and none is skipped.
    @Test(arguments: LogAppendMethod.allCases)
    func readerThreadSeesOnlyWholeFramesInOrder(method: LogAppendMethod) throws {
        let directory = TemporaryDirectory()
        let storage = try IOUringStorage(directory: directory.path, ring: try Ring())
        let log = try ReplicatedLog(storage: storage, configuration: testConfiguration(durability: .replicated, method: method))
        let totalFrames = 20_000
        let result = ReaderResult()
        let reader = log.reader
        let thread = Thread {
            var position = LogPosition.zero
            var expected: Int64 = 0
            var spins = 0
            while expected < Int64(totalFrames) && spins < 200_000_000 {
                let next = reader.forEachFrame(from: position, limit: LogPosition(Int64.max)) { frame in
                    if !frame.hasValidCRC { result.badFrames.add(1, ordering: .relaxed) }
                    if frame.correlationID != expected { result.outOfOrder.add(1, ordering: .relaxed) }
                    expected = frame.correlationID + 1
                    result.framesRead.add(1, ordering: .relaxed)
                    return true
                }
                if next == position { spins += 1 } else { position = next }
            }
            result.finished.store(true, ordering: .releasing)
        }
        thread.start()
        var index: Int64 = 0
        while index < Int64(totalFrames) {
            let count = min(Int64(1 + index % 37), Int64(totalFrames) - index)
            let arena = PayloadArena()
            let payload = arena.keep([UInt8](repeating: UInt8(truncatingIfNeeded: index), count: Int(index % 300)))
            for entry in index..<index + count {
                try log.append(term: Term(1), LogEntryHeader(type: .sessionMessage, correlationID: entry), payload: payload)
            }
            try withExtendedLifetime(arena) { try log.commitBatch() }
            try log.poll()
            index += count
        }
        let deadline = Date().addingTimeInterval(30)
        while !result.finished.load(ordering: .acquiring) && Date() < deadline { Thread.sleep(forTimeInterval: 0.001) }
        let finished = result.finished.load(ordering: .acquiring)
        let framesRead = result.framesRead.load(ordering: .relaxed)
        let badFrames = result.badFrames.load(ordering: .relaxed)
        let outOfOrder = result.outOfOrder.load(ordering: .relaxed)
        #expect(finished)
        #expect(framesRead == totalFrames)
        #expect(badFrames == 0)
        #expect(outOfOrder == 0)
        #expect(log.appendedPosition.rawValue > 10 * 65_536, "the reader must follow several roll-overs")
        #expect(try log.waitUntilDurable(log.appendedPosition))
    }
}
