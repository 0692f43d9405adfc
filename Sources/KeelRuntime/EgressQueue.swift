import KeelCore
import KeelService
import Synchronization

/// What an egress record asks the consensus agent to send.
public enum EgressKind: UInt8, Sendable {
    /// Wraps the ring; carries nothing.
    case padding = 0
    /// A response frame to a session.
    case response = 1
    /// The session's open entry was applied: tell the client (correlation = the connect's).
    case sessionOpened = 2
    /// The session's close entry was applied.
    case sessionClosed = 3
    /// A response sent again from the session's window (a retried request); correlation = its sequence.
    case resentResponse = 4
    /// A request was not applied (correlation = its sequence); the payload is
    /// `| expectedSequence i64 | RequestRejection u16 |`.
    case requestRejected = 5
    /// The service asks to close the session (the leader appends the close entry).
    case closeSession = 6
}

/// One record taken from the egress queue; `payload` is valid until `EgressQueue.release`.
public struct EgressRecord {
    public var kind: EgressKind
    public var sessionID: Int64
    /// The answered request's sequence, the connect's correlation id, or the close reason.
    public var correlation: Int64
    public var timestamp: ClusterTime
    public var payload: UnsafeRawBufferPointer
}

/// The bounded single-producer single-consumer queue that carries egress from the service agent
/// (producer) to the consensus agent (consumer) — DESIGN.md decision 8. A byte ring allocated once:
/// records are written whole and contiguous (a padding record fills the end when one does not fit),
/// published by a release store of the tail and consumed after an acquire load of it.
///
/// ```
/// record: | length u32 | kind u8 | 3 × 0 | sessionID i64 | correlation i64 | timestamp i64 | payload … | (8-aligned)
/// ```
public final class EgressQueue: @unchecked Sendable {
    // Safe because: bytes between head and tail belong to the consumer, the rest to the producer;
    // each side writes only its own index, publishing it with release after touching the bytes.
    private let buffer: UnsafeMutableRawPointer
    /// Bytes in the ring (a power of two).
    public let capacityBytes: Int
    private let head = Atomic<Int>(0)  // consumer: bytes consumed, ever
    private let tail = Atomic<Int>(0)  // producer: bytes produced, ever
    static let headerBytes = 32

    /// A queue of `capacityBytes` (rounded up to a power of two).
    public init(capacityBytes: Int) {
        var capacity = 4096
        while capacity < capacityBytes { capacity <<= 1 }
        self.capacityBytes = capacity
        buffer = .allocate(byteCount: capacity, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// The largest payload one record can carry.
    public var maxPayloadBytes: Int { capacityBytes / 2 - Self.headerBytes }

    /// Producer: appends a record; false when it does not fit now.
    public func offer(kind: EgressKind, sessionID: Int64, correlation: Int64, timestamp: ClusterTime, payload: UnsafeRawBufferPointer) -> Bool {
        precondition(payload.count <= maxPayloadBytes, "egress record larger than half the queue")
        let recordBytes = (Self.headerBytes + payload.count + 7) & ~7
        var position = tail.load(ordering: .relaxed)
        let consumed = head.load(ordering: .acquiring)
        let offset = position & (capacityBytes - 1)
        let toEnd = capacityBytes - offset
        let needed = recordBytes <= toEnd ? recordBytes : toEnd + recordBytes
        guard position + needed - consumed <= capacityBytes else { return false }
        if recordBytes > toEnd {
            // Length and kind only: as little as 8 bytes may be left before the end, less than a header.
            buffer.storeBytes(of: UInt32(toEnd), toByteOffset: offset, as: UInt32.self)
            buffer.storeBytes(of: EgressKind.padding.rawValue, toByteOffset: offset + 4, as: UInt8.self)
            position += toEnd
        }
        let start = position & (capacityBytes - 1)
        writeHeader(at: start, length: recordBytes, kind: kind, sessionID: sessionID, correlation: correlation, timestamp: timestamp)
        buffer.storeBytes(of: UInt32(Self.headerBytes + payload.count), toByteOffset: start, as: UInt32.self)
        if payload.count > 0 {
            (buffer + start + Self.headerBytes).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        }
        tail.store(position + recordBytes, ordering: .releasing)
        return true
    }

    private func writeHeader(at offset: Int, length: Int, kind: EgressKind, sessionID: Int64, correlation: Int64, timestamp: ClusterTime) {
        buffer.storeBytes(of: UInt32(length), toByteOffset: offset, as: UInt32.self)
        buffer.storeBytes(of: kind.rawValue, toByteOffset: offset + 4, as: UInt8.self)
        buffer.storeBytes(of: sessionID, toByteOffset: offset + 8, as: Int64.self)
        buffer.storeBytes(of: correlation, toByteOffset: offset + 16, as: Int64.self)
        buffer.storeBytes(of: timestamp.rawValue, toByteOffset: offset + 24, as: Int64.self)
    }

    /// Consumer: the oldest record, or nil when empty. Call `release()` when done with it (before
    /// the next `peek`), or leave it to retry later.
    public func peek() -> EgressRecord? {
        while true {
            let position = head.load(ordering: .relaxed)
            guard position < tail.load(ordering: .acquiring) else { return nil }
            let offset = position & (capacityBytes - 1)
            let length = Int(buffer.load(fromByteOffset: offset, as: UInt32.self))
            let kind = EgressKind(rawValue: buffer.load(fromByteOffset: offset + 4, as: UInt8.self)) ?? .padding
            if kind == .padding {
                head.store(position + length, ordering: .releasing)
                continue
            }
            return EgressRecord(
                kind: kind,
                sessionID: buffer.load(fromByteOffset: offset + 8, as: Int64.self),
                correlation: buffer.load(fromByteOffset: offset + 16, as: Int64.self),
                timestamp: ClusterTime(rawValue: buffer.load(fromByteOffset: offset + 24, as: Int64.self)),
                payload: UnsafeRawBufferPointer(start: buffer + offset + Self.headerBytes, count: length - Self.headerBytes))
        }
    }

    /// Consumer: drops the record `peek` returned.
    public func release() {
        let position = head.load(ordering: .relaxed)
        let offset = position & (capacityBytes - 1)
        let length = Int(buffer.load(fromByteOffset: offset, as: UInt32.self))
        head.store(position + ((length + 7) & ~7), ordering: .releasing)
    }

    /// Producer: bytes free now (the consumer may free more at any time).
    public var freeBytes: Int { capacityBytes - (tail.load(ordering: .relaxed) - head.load(ordering: .acquiring)) }

    /// True when nothing is queued (either side may ask).
    public var isEmpty: Bool { head.load(ordering: .acquiring) == tail.load(ordering: .acquiring) }
}
