import KeelWire
import Testing
@testable import KeelClient

@Suite struct OutstandingRequestsTests {
    /// Frames wrap around the byte ring; every frame read back holds the payload it was given, and
    /// restamping rewrites only session and sequence.
    @Test func wrapsAroundAndKeepsEveryFrameIntact() throws {
        var ring = OutstandingRequests(capacity: 8, bytes: 200)
        var expected: [(Int64, [UInt8])] = []
        var nextPayload = 0
        for round in 0..<200 {
            // Append until full, then drop a varying number from the front.
            while true {
                let bytes = [UInt8](repeating: UInt8(nextPayload % 251), count: 10 + nextPayload % 37)
                guard let id = bytes.withUnsafeBytes({ ring.append(payload: $0, sessionID: 1, sequence: 1) }) else { break }
                expected.append((id, bytes))
                nextPayload += 1
            }
            #expect(ring.count == expected.count)
            for index in 0..<ring.count {
                let frame = try RequestFrame(validating: ring.frame(at: index))
                #expect(Array(frame.payload) == expected[index].1)
                #expect(expected[index].0 == ring.firstRequestID + Int64(index))
            }
            let drop = 1 + round % max(1, ring.count)
            ring.removeFirst(drop)
            expected.removeFirst(drop)
        }
        #expect(nextPayload > 300)
        ring.restamp(at: 0, sessionID: 9, sequence: 4)
        let restamped = try RequestFrame(validating: ring.frame(at: 0))
        #expect(restamped.sessionID == 9 && restamped.sequence == 4 && Array(restamped.payload) == expected[0].1)
    }

    @Test func contiguousRunsStopAtTheWrap() {
        var ring = OutstandingRequests(capacity: 16, bytes: 100)
        let payload = [UInt8](repeating: 7, count: 16)  // 40-byte frames
        for _ in 0..<2 { _ = payload.withUnsafeBytes { ring.append(payload: $0, sessionID: 1, sequence: 1) } }
        #expect(ring.contiguousRun(from: 0, maxFrames: 10).frames == 2)
        ring.removeFirst(1)
        _ = payload.withUnsafeBytes { ring.append(payload: $0, sessionID: 1, sequence: 1) }  // wraps to offset 0
        #expect(ring.count == 2)
        #expect(ring.contiguousRun(from: 0, maxFrames: 10).frames == 1)
        #expect(ring.contiguousRun(from: 1, maxFrames: 10).frames == 1)
        #expect(payload.withUnsafeBytes { ring.append(payload: $0, sessionID: 1, sequence: 1) } == nil)
    }
}
