/// A bounded per-connection send queue: a fixed-capacity byte ring allocated once, with
/// back-pressure and stuck-peer detection (issue 5: "memory stays bounded").
///
/// The producer `offer`s whole messages (all of it is taken, or none of it); the sender takes the
/// oldest contiguous run with `nextSend()`, hands it to a `Transport` as one send (many frames per
/// send), and reports what the kernel took with `completeSend(bytes:nowNanos:)` — a short send
/// leaves the rest at the head. One send is in flight at a time, so bytes leave in offer order.
///
/// ```
///           head (oldest unsent)               head + count
///            v                                  v
/// +----------+==================================+-----------+
/// |  free    |  queued (one send in flight      |   free    |   capacityBytes
/// |          |  covers a prefix of it)          |           |
/// +----------+==================================+-----------+
/// ```
/// A peer that reads nothing makes the queue fill: `offer` returns false (and counts a
/// back-pressure event). If bytes stay queued with no send progress for longer than a timeout,
/// `isStalled(nowNanos:timeoutNanos:)` says so and the owner disconnects the peer.
///
/// Used from one thread. Generic over the transport through `flush(via:connection:token:nowNanos:)`.
public final class SendQueue {
    private let storage: UnsafeMutableRawBufferPointer
    /// Bytes the queue can hold.
    public let capacityBytes: Int
    private var head = 0
    /// Bytes queued (including those of the send in flight).
    public private(set) var count = 0
    /// Bytes of the send in flight (0 when none).
    public private(set) var bytesInFlight = 0
    /// When the queue last made progress (a send completed, or it went from empty to non-empty).
    public private(set) var lastProgressNanos: Int64 = 0
    /// How many offers were refused because the queue was full.
    public private(set) var backPressureEvents = 0
    /// Total bytes the transport has taken from this queue.
    public private(set) var bytesSent: Int64 = 0

    /// A queue of `capacityBytes` (allocated now, never grown).
    public init(capacityBytes: Int) {
        precondition(capacityBytes > 0, "a send queue needs a positive capacity")
        self.capacityBytes = capacityBytes
        storage = .allocate(byteCount: capacityBytes, alignment: 64)
    }

    deinit { storage.deallocate() }

    /// True when nothing is queued.
    public var isEmpty: Bool { count == 0 }
    /// Bytes that can still be offered.
    public var freeBytes: Int { capacityBytes - count }
    /// True while a send taken with `nextSend()` has not completed.
    public var isSending: Bool { bytesInFlight > 0 }

    /// Copies all of `bytes` into the queue, or nothing and returns false when they do not fit.
    @discardableResult
    public func offer(_ bytes: UnsafeRawBufferPointer, nowNanos: Int64) -> Bool {
        guard bytes.count <= freeBytes else {
            backPressureEvents += 1
            return false
        }
        guard bytes.count > 0 else { return true }
        if count == 0 { lastProgressNanos = nowNanos }
        var tail = head + count
        if tail >= capacityBytes { tail -= capacityBytes }
        let firstPart = min(bytes.count, capacityBytes - tail)
        storage.baseAddress!.advanced(by: tail).copyMemory(from: bytes.baseAddress!, byteCount: firstPart)
        if firstPart < bytes.count {
            storage.baseAddress!.copyMemory(from: bytes.baseAddress! + firstPart, byteCount: bytes.count - firstPart)
        }
        count += bytes.count
        return true
    }

    /// Reserves `byteCount` contiguous bytes at the tail for the caller to encode into in place, or
    /// nil (counting a back-pressure event) when they are not free contiguously. Call
    /// `commitReserved(_:nowNanos:)` with the bytes actually written before the next offer.
    public func reserve(_ byteCount: Int) -> UnsafeMutableRawBufferPointer? {
        var tail = head + count
        if tail >= capacityBytes { tail -= capacityBytes }
        let contiguous = tail >= head && count < capacityBytes ? capacityBytes - tail : head - tail
        guard byteCount <= freeBytes, byteCount <= contiguous else {
            backPressureEvents += 1
            return nil
        }
        return UnsafeMutableRawBufferPointer(start: storage.baseAddress! + tail, count: byteCount)
    }

    /// Adds `byteCount` bytes written into the region `reserve` returned.
    public func commitReserved(_ byteCount: Int, nowNanos: Int64) {
        precondition(byteCount >= 0 && byteCount <= freeBytes, "committed more than was reserved")
        if count == 0 && byteCount > 0 { lastProgressNanos = nowNanos }
        count += byteCount
    }

    /// The oldest contiguous run of queued bytes, marked in flight; nil when empty or a send is
    /// already in flight. The bytes stay valid (untouched) until `completeSend` or `reset`.
    public func nextSend() -> UnsafeRawBufferPointer? {
        guard count > 0, bytesInFlight == 0 else { return nil }
        bytesInFlight = min(count, capacityBytes - head)
        return UnsafeRawBufferPointer(start: storage.baseAddress! + head, count: bytesInFlight)
    }

    /// The send in flight completed having taken `bytes` (≤ what was in flight; a short send
    /// leaves the rest queued at the head).
    public func completeSend(bytes: Int, nowNanos: Int64) {
        precondition(bytesInFlight > 0, "no send in flight")
        precondition(bytes >= 0 && bytes <= bytesInFlight, "a send cannot take more than was handed to it")
        head += bytes
        if head == capacityBytes { head = 0 }
        count -= bytes
        if count == 0 { head = 0 }
        bytesInFlight = 0
        bytesSent += Int64(bytes)
        if bytes > 0 { lastProgressNanos = nowNanos }
    }

    /// The send in flight failed (the connection is going away): nothing was taken.
    public func abandonSend() { bytesInFlight = 0 }

    /// True when bytes have been queued without any send progress for longer than `timeoutNanos`:
    /// the peer has stopped reading and should be disconnected.
    public func isStalled(nowNanos: Int64, timeoutNanos: Int64) -> Bool {
        count > 0 && nowNanos - lastProgressNanos > timeoutNanos
    }

    /// Empties the queue (for reuse on a new connection); counters are kept.
    public func reset() {
        head = 0
        count = 0
        bytesInFlight = 0
    }

    /// Submits the next contiguous run on `connection` when no send is in flight. Returns true when
    /// a send was submitted. Its completion goes to `completeSend(bytes:nowNanos:)`.
    @discardableResult
    public func flush<T: Transport>(via transport: T, connection: ConnectionID, token: IOToken) throws(IOError) -> Bool {
        guard let bytes = nextSend() else { return false }
        do {
            try transport.submitSend(connection, bytes, token: token)
        } catch {
            abandonSend()
            throw error
        }
        return true
    }
}
