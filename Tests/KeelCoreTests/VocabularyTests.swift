import KeelCore
import Testing

@Suite struct VocabularyTests {
    @Test func positionsAdvanceAndMeasureBytes() {
        let start = LogPosition(4096)
        let end = start.advanced(by: 96)
        #expect(end == LogPosition(4192))
        #expect(end.bytes(since: start) == 96)
        #expect(start < end)
    }

    @Test func termsOrderAndStep() {
        #expect(Term.zero.next == Term(1))
        #expect(Term(3) > Term(2))
    }

    @Test func seededRandomReplaysExactly() {
        var a = SeededRandom(seed: 42)
        var b = SeededRandom(seed: 42)
        var c = SeededRandom(seed: 43)
        let fromA = (0..<16).map { _ in a.next() }
        let fromB = (0..<16).map { _ in b.next() }
        let fromC = (0..<16).map { _ in c.next() }
        #expect(fromA == fromB)
        #expect(fromA != fromC)
        #expect(Set(fromA).count == 16, "a generator must not repeat itself this soon")
    }

    @Test func seededRandomChanceIsRoughlyRight() {
        var random = SeededRandom(seed: 7)
        let hits = (0..<100_000).filter { _ in random.chance(0.25) }.count
        #expect((23_000...27_000).contains(hits))
        #expect(!(0..<1000).contains { _ in random.chance(0) })
    }

    @Test func completionBufferHoldsUpToCapacity() {
        var buffer = IOCompletionBuffer(capacity: 2)
        let first = buffer.append(IOCompletion(token: IOToken(1), operation: .write, result: 4096))
        let second = buffer.append(IOCompletion(token: IOToken(2), operation: .datasync, result: -28))
        let third = buffer.append(IOCompletion(token: IOToken(3), operation: .write, result: 0))
        #expect(first && second && !third)
        let count = buffer.count
        let secondError = buffer[1].error
        #expect(count == 2)
        #expect(secondError == IOError(.datasync, errno: 28))
        #expect(secondError?.isNoSpace == true)
        buffer.removeAll()
        let emptied = buffer.isEmpty
        #expect(emptied)
    }
}
