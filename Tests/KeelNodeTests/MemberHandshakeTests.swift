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
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw HarnessError.spawn("connect to \(port): errno \(errno)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
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
