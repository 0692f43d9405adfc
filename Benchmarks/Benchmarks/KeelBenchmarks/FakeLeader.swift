import Glibc
import KeelCore
import KeelWire

/// A clock over CLOCK_MONOTONIC for the client benchmark (KeelIO's SystemClock cannot be imported
/// here: liburing's io_uring.h clashes with swift-system's).
struct MonotonicClock: Clock {
    func monotonicNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    func epochNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

/// The client benchmark's leader: a thread on a blocking loopback socket that accepts one client,
/// opens its session and answers each request with an empty response — no consensus, no log, and no
/// allocation after start (its buffers are allocated once), so the counts are the client's.
final class FakeLeader: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private var thread = pthread_t()

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard descriptor >= 0, bound, listen(descriptor, 4) == 0 else { throw IOError(.accept, errno: errno, subject: "fake leader listener") }
        listener = descriptor
        port = UInt16(bigEndian: address.sin_port)
        let unmanaged = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { argument in
            let leader = Unmanaged<FakeLeader>.fromOpaque(argument!).takeRetainedValue()
            leader.serve()
            return nil
        }, unmanaged.toOpaque())
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        pthread_join(thread, nil)
    }

    private func serve() {
        let connection = accept(listener, nil, nil)
        guard connection >= 0 else { return }
        defer { close(connection) }
        var one: Int32 = 1
        setsockopt(connection, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let decoder = FrameStreamDecoder(maxFrameLengthBytes: 1 << 16, capacityBytes: 1 << 20)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { output.deallocate() }
        while true {
            let space = decoder.receiveSpace()
            let count = read(connection, space.baseAddress!, space.count)
            guard count > 0 else { return }
            decoder.didReceive(byteCount: count)
            var outputBytes = 0
            while let frame = try? decoder.nextFrame() {
                guard let message = try? WireMessage(validating: frame) else { return }
                switch message {
                case .connect(let connect):
                    outputBytes += ConnectAcceptedFrame.encode(
                        into: UnsafeMutableRawBufferPointer(rebasing: output[outputBytes...]), correlationID: connect.correlationID,
                        leaderTerm: Term(1), leaderMemberID: MemberID(0))
                    outputBytes += SessionOpenedFrame.encode(
                        into: UnsafeMutableRawBufferPointer(rebasing: output[outputBytes...]), correlationID: connect.correlationID,
                        sessionID: 1, timestamp: ClusterTime(rawValue: 1), secret: 0x5EC2E7)
                case .request(let request):
                    outputBytes += ResponseFrame.encode(
                        into: UnsafeMutableRawBufferPointer(rebasing: output[outputBytes...]), sessionID: request.sessionID,
                        sequence: request.sequence, timestamp: ClusterTime(rawValue: 1), payload: UnsafeRawBufferPointer(start: nil, count: 0))
                default:
                    break  // keep-alives
                }
            }
            var written = 0
            while written < outputBytes {
                let sent = write(connection, output.baseAddress! + written, outputBytes - written)
                guard sent > 0 else { return }
                written += sent
            }
        }
    }
}
