import Testing
@testable import keel

@Suite struct KeyValueLoadTests {
    /// put | 1 | keyLength u16 | valueLength u32 | key | value |, get | 2 | keyLength u16 | key |.
    private func decode(_ bytes: UnsafeRawBufferPointer) -> (op: UInt8, key: UInt64, valueBytes: Int) {
        let op = bytes[0]
        let keyOffset = op == 1 ? 7 : 3
        let valueBytes = op == 1 ? Int(bytes.loadUnaligned(fromByteOffset: 3, as: UInt32.self)) : 0
        return (op, bytes.loadUnaligned(fromByteOffset: keyOffset, as: UInt64.self), valueBytes)
    }

    @Test func evenMessagesPutOddOnesGetAndBothReachEveryKey() {
        let load = KeyValueLoad(keyCount: 100, valueBytes: 24, sessions: 1, inFlightPerSession: 8)
        var putKeys = Set<UInt64>(), getKeys = Set<UInt64>()
        for index in Int64(0)..<20_000 {
            let request = load.withRequest(index) { decode($0) }
            #expect(request.op == (index % 2 == 0 ? 1 : 2))
            #expect(request.key < 100)
            if request.op == 1 {
                #expect(request.valueBytes == 24)
                putKeys.insert(request.key)
            } else {
                getKeys.insert(request.key)
            }
        }
        // A parity-preserving key mix would give puts and gets disjoint halves (every get not found).
        #expect(putKeys.count == 100)
        #expect(getKeys.count == 100)
    }

    @Test func responsesMatchTheirMessageByRequestIDAndOlderSchedulesAreNotCounted() {
        let load = KeyValueLoad(keyCount: 10, valueBytes: 8, sessions: 2, inFlightPerSession: 4)
        let ok: [UInt8] = [0, 0, 0, 0, 0], notFound: [UInt8] = [1, 0, 0, 0, 0], malformed: [UInt8] = [3, 0, 0, 0, 0]
        load.beginSchedule()
        load.track(session: 0, requestID: 7, index: 40)
        load.track(session: 1, requestID: 7, index: 41)
        load.track(session: 0, requestID: 8, index: 42)
        #expect(ok.withUnsafeBytes { load.take(session: 1, requestID: 7, response: $0) } == 41)
        #expect(notFound.withUnsafeBytes { load.take(session: 0, requestID: 7, response: $0) } == 40)
        #expect(ok.withUnsafeBytes { load.take(session: 0, requestID: 7, response: $0) } == nil)  // taken already
        #expect(malformed.withUnsafeBytes { load.take(session: 0, requestID: 8, response: $0) } == nil)
        #expect(load.errors == 1 && load.okCount == 1 && load.notFoundCount == 1)
        load.track(session: 0, requestID: 9, index: 43)
        load.beginSchedule()
        #expect(ok.withUnsafeBytes { load.take(session: 0, requestID: 9, response: $0) } == nil)
        #expect(load.okCount == 1)
    }
}
