import Glibc
import KeelCore
import KeelIO
import KeelWire
import Testing

/// A connection to a member port that presents itself as another cluster is refused with a frame
/// naming what differs, counted, and recorded; the node carries on.
@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct MemberHandshakeTests {
    @Test(.timeLimit(.minutes(2)))
    func aHandshakeFromAnotherClusterIsRefusedNamingTheDifference() throws {
        let cluster = try NodeCluster()
        defer { cluster.shutdown() }
        try cluster.startAll()
        let warmUp = makeClient(cluster)  // returns once a leader serves: every member is listening
        try warmUp.connect()
        warmUp.close()
        let target = cluster.members[0]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        let length = HandshakeFrame.encode(into: buffer, clusterID: 0xDEAD_BEEF, configurationDigest: 1, memberID: MemberID(1))
        // A leader serving says a majority listens, not member 0 (slow to start on a loaded machine).
        #expect(RawConnection.waitUntilListening(port: target.memberPort, seconds: 10), "member 0 never accepted a connection")
        let reply = try RawConnection.sendAndCollect(port: target.memberPort, bytes: Array(buffer[0..<length]))

        let refusal = try reply.withUnsafeBytes { bytes in try HandshakeRefusedFrame(validating: bytes) }
        #expect(refusal.mismatch == .clusterID)
        #expect(refusal.actual == 0xDEAD_BEEF)
        #expect(!refusal.detail.isEmpty)
        #expect((cluster.counter(0, .handshakesRefused) ?? 0) >= 1)
        #expect(cluster.isRunning(0), "node 0 died:\n\(cluster.output(0))")
    }
}

extension RawConnection {
    /// Sends `bytes` and returns everything the peer sends until it closes (within 5 s).
    static func sendAndCollect(port: UInt16, bytes: [UInt8]) throws -> [UInt8] {
        let descriptor = try connectLoopback(port: port)
        defer { close(descriptor) }
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var collected: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let received = recv(descriptor, &chunk, chunk.count, 0)
            if received <= 0 { return collected }
            collected += chunk[0..<received]
        }
    }
}
