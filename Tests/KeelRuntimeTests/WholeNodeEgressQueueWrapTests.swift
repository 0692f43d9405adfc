import KeelCore
import KeelRuntime
import Testing

/// Found by the whole-node simulation (under AddressSanitizer): a record that did not fit before
/// the end of the ring wrote a 32-byte padding header into the 8, 16 or 24 bytes left there.
@Suite("EgressQueue wraps with less than a header left before the end")
struct WholeNodeEgressQueueWrapTests {
    @Test("records survive a wrap with 8, 16 and 24 bytes left", arguments: [8, 16, 24])
    func wrapWithFewBytesLeft(leftBytes: Int) {
        let queue = EgressQueue(capacityBytes: 4096)
        // Two records (each at most half the ring) filling it up to `leftBytes` before its end, consumed.
        for payloadBytes in [2048 - 32, 2048 - leftBytes - 32] {
            let payload = [UInt8](repeating: 0xAB, count: payloadBytes)
            let offered = payload.withUnsafeBytes { queue.offer(kind: .response, sessionID: 1, correlation: 1, timestamp: .zero, payload: $0) }
            #expect(offered)
            #expect(queue.peek()?.payload.count == payloadBytes)
            queue.release()
        }
        // The next record must wrap to the start; the consumer skips the padding and sees it whole.
        let secondPayload = [UInt8](repeating: 0xCD, count: 100)
        let wrapped = secondPayload.withUnsafeBytes { queue.offer(kind: .response, sessionID: 2, correlation: 7, timestamp: ClusterTime(rawValue: 9), payload: $0) }
        #expect(wrapped)
        let record = queue.peek()
        #expect(record?.sessionID == 2 && record?.correlation == 7 && record?.timestamp.rawValue == 9)
        #expect(record.map { Array($0.payload) } == secondPayload)
        queue.release()
        #expect(queue.isEmpty)
    }
}
