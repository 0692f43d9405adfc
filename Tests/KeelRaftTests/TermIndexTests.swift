import KeelCore
import KeelRaft
import Testing

@Suite struct TermIndexTests {
    @Test func termAtPositionIsTheTermOfTheEntryEndingThere() {
        var index = TermIndex()
        index.append(term: Term(1), to: LogPosition(64))
        index.append(term: Term(1), to: LogPosition(96))
        index.append(term: Term(3), to: LogPosition(160))
        #expect(index.runs.count == 2)
        #expect(index.term(at: .zero) == .zero)
        #expect(index.term(at: LogPosition(32)) == Term(1))
        #expect(index.term(at: LogPosition(96)) == Term(1))
        #expect(index.term(at: LogPosition(128)) == Term(3))
        #expect(index.term(at: LogPosition(160)) == Term(3))
        #expect(index.term(at: LogPosition(192)) == nil)
        #expect(index.termStart(at: LogPosition(160)) == LogPosition(96))
        #expect(index.termStart(at: LogPosition(96)) == .zero)
        #expect(index.end(ofTerm: Term(1)) == LogPosition(96))
        #expect(index.end(ofTerm: Term(2)) == nil)
        #expect(index.runEnd(after: LogPosition(32)) == LogPosition(96))
        #expect(index.boundary(atOrBefore: LogPosition(128)) == LogPosition(96))
    }

    @Test func truncateCompactAndReset() {
        var index = TermIndex()
        index.append(term: Term(1), to: LogPosition(64))
        index.append(term: Term(2), to: LogPosition(128))
        index.append(term: Term(4), to: LogPosition(192))
        index.truncate(from: LogPosition(96))
        #expect(index.endPosition == LogPosition(96))
        #expect(index.lastTerm == Term(2))
        index.compact(upTo: LogPosition(64))
        #expect(index.startPosition == LogPosition(64))
        #expect(index.startTerm == Term(1))
        #expect(index.runs == [TermIndex.Run(term: Term(2), start: LogPosition(64))])
        #expect(index.term(at: LogPosition(64)) == Term(1))
        #expect(index.term(at: LogPosition(32)) == nil)
        index.compact(upTo: LogPosition(96))
        #expect(index.runs.isEmpty && index.startTerm == Term(2) && index.lastTerm == Term(2))
        index.reset(startPosition: LogPosition(512), startTerm: Term(7))
        #expect(index.endPosition == LogPosition(512) && index.term(at: LogPosition(512)) == Term(7))
    }
}
