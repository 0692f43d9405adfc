import Glibc

/// Bytes on their way in one direction through the proxy: a bounded FIFO, each run of bytes
/// tagged with the time it may leave (now, or now + delay).
struct FaultProxyChannel {
    /// The most bytes held per direction; beyond it the proxy stops reading the source, so a slow
    /// or stopped destination back-pressures the sender instead of growing memory.
    static let capacityBytes = 4 << 20

    private var bytes: [UInt8] = []
    private var start = 0
    /// (end offset in `bytes`, release time) per run, oldest first.
    private var releases: [(end: Int, releaseNanos: Int64)] = []
    private var lastReleaseNanos: Int64 = 0

    var heldBytes: Int { bytes.count - start }
    var isFull: Bool { heldBytes >= Self.capacityBytes }

    /// Queues `chunk`, to leave at `releaseNanos` (never before bytes queued earlier).
    mutating func append(_ chunk: UnsafeRawBufferPointer, releaseNanos: Int64) {
        guard chunk.count > 0 else { return }
        bytes.append(contentsOf: chunk)
        lastReleaseNanos = max(lastReleaseNanos, releaseNanos)
        releases.append((bytes.count, lastReleaseNanos))
    }

    /// How many bytes at the head may leave at `nowNanos`.
    func readyBytes(nowNanos: Int64) -> Int {
        var end = start
        for release in releases where release.releaseNanos <= nowNanos { end = release.end }
        return end - start
    }

    /// When the next held run may leave, if any is waiting.
    func nextReleaseNanos(after nowNanos: Int64) -> Int64? {
        releases.first { $0.releaseNanos > nowNanos }?.releaseNanos
    }

    /// Sends what is ready to `descriptor` without blocking. Returns bytes sent, or -errno on failure
    /// (EAGAIN is not a failure: it returns what was sent so far).
    mutating func flush(to descriptor: Int32, nowNanos: Int64) -> Int {
        var sent = 0
        while true {
            let ready = readyBytes(nowNanos: nowNanos)
            if ready == 0 { break }
            let result = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress! + start, ready, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
            if result < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                return -Int(errno)
            }
            consume(result)
            sent += result
        }
        return sent
    }

    private mutating func consume(_ count: Int) {
        start += count
        while let first = releases.first, first.end <= start { releases.removeFirst() }
        if start == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            releases.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 20 && start * 2 > bytes.count {
            // Compact now and then so the array does not grow with everything ever sent.
            bytes.removeFirst(start)
            releases = releases.map { ($0.end - start, $0.releaseNanos) }
            start = 0
        }
    }
}

/// One proxied connection: the accepted client socket (a) and the socket to the target (b).
final class FaultProxyConnection {
    let clientDescriptor: Int32
    let targetDescriptor: Int32
    /// True until the non-blocking connect to the target has finished.
    var connecting: Bool
    var toTarget = FaultProxyChannel()
    var toClient = FaultProxyChannel()
    /// Set when either side closed or failed: the pair is closed at the end of the iteration.
    var finished = false

    init(clientDescriptor: Int32, targetDescriptor: Int32, connecting: Bool) {
        self.clientDescriptor = clientDescriptor
        self.targetDescriptor = targetDescriptor
        self.connecting = connecting
    }

    func closeBoth() {
        close(clientDescriptor)
        close(targetDescriptor)
    }
}
