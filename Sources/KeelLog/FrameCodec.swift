import KeelCore
import KeelWire

/// The fields of a log entry the caller chooses (the log adds length, CRC, term and durable position).
public struct LogEntryHeader: Sendable, Equatable {
    /// What the entry is.
    public var type: LogEntryType
    /// The client session the entry belongs to (0 when none).
    public var sessionID: Int64
    /// The session's sequence number or a correlation id (timer id, …).
    public var correlationID: Int64
    /// Cluster time stamped by the leader.
    public var timestamp: ClusterTime
    /// Reserved flag bits; 0 for now.
    public var flags: UInt8

    public init(type: LogEntryType, sessionID: Int64 = 0, correlationID: Int64 = 0, timestamp: ClusterTime = .zero, flags: UInt8 = 0) {
        self.type = type
        self.sessionID = sessionID
        self.correlationID = correlationID
        self.timestamp = timestamp
        self.flags = flags
    }
}

/// Byte offsets inside a frame header (see the diagram in LogFormat.swift).
enum FrameField {
    static let length = 0
    static let crc = 4
    static let version = 8
    static let flags = 9
    static let type = 10
    static let reserved32 = 12
    static let term = 16
    static let sessionID = 24
    static let correlationID = 32
    static let timestamp = 40
    static let durablePosition = 48
    static let reserved64 = 56
}

/// What a frame check found at a position.
enum FrameCheck: Equatable {
    /// A whole, valid frame occupying `occupiedBytes` (its aligned length).
    case valid(occupiedBytes: Int)
    /// Zeros where a frame header would be: nothing was written here (or it was lost).
    case empty
    /// Bytes that are not a valid frame (torn, flipped, or garbage).
    case invalid(reason: String)
    /// A frame whose CRC is right but whose version this code does not read.
    case unsupportedVersion(UInt8)
}

/// Encoders and the inbound validator of frames. Raw-pointer based: callers guarantee the space.
enum FrameCodec {
    /// The CRC of a frame of `length` bytes at `frame`: bytes 0..<4 then 8..<length.
    @inline(__always)
    static func checksum(_ frame: UnsafeRawPointer, length: Int) -> UInt32 {
        let head = CRC32C.checksum(UnsafeRawBufferPointer(start: frame, count: 4))
        return CRC32C.checksum(UnsafeRawBufferPointer(start: frame + 8, count: length - 8), continuing: head)
    }

    /// Writes a whole frame at `destination` (which must have `LogFormat.aligned(64 + payload.count)`
    /// writable bytes) and returns the bytes it occupies. Alignment bytes are zeroed.
    @inline(__always)
    static func encodeFrame(
        into destination: UnsafeMutableRawPointer, term: Term, entry: LogEntryHeader,
        durablePosition: LogPosition, payload: UnsafeRawBufferPointer
    ) -> Int {
        let length = LogFormat.frameHeaderBytes + payload.count
        let occupied = LogFormat.aligned(length)
        if payload.count > 0 {
            (destination + LogFormat.frameHeaderBytes).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        }
        return sealFrame(destination, length: length, occupied: occupied, term: term, entry: entry, durablePosition: durablePosition)
    }

    /// Writes the header of a frame whose payload is already in place after it, zeroes the alignment
    /// bytes, computes the CRC, and returns the bytes the frame occupies.
    @inline(__always)
    static func sealFrame(
        _ destination: UnsafeMutableRawPointer, length: Int, occupied: Int, term: Term,
        entry: LogEntryHeader, durablePosition: LogPosition
    ) -> Int {
        if occupied > length { (destination + length).initializeMemory(as: UInt8.self, repeating: 0, count: occupied - length) }
        storeHeaderFields(destination, length: length, term: term, entry: entry, durablePosition: durablePosition)
        let crc = checksum(UnsafeRawPointer(destination), length: length)
        destination.storeBytes(of: crc.littleEndian, toByteOffset: FrameField.crc, as: UInt32.self)
        return occupied
    }

    /// Writes the 64-byte header of a frame whose payload stays elsewhere (a gather write sends
    /// header and payload from their own buffers); the CRC covers the header and `payload`.
    @inline(__always)
    static func encodeHeader(
        into destination: UnsafeMutableRawPointer, term: Term, entry: LogEntryHeader,
        durablePosition: LogPosition, payload: UnsafeRawBufferPointer
    ) {
        storeHeaderFields(destination, length: LogFormat.frameHeaderBytes + payload.count, term: term, entry: entry, durablePosition: durablePosition)
        let header = checksum(UnsafeRawPointer(destination), length: LogFormat.frameHeaderBytes)
        let crc = CRC32C.checksum(payload, continuing: header)
        destination.storeBytes(of: crc.littleEndian, toByteOffset: FrameField.crc, as: UInt32.self)
    }

    @inline(__always)
    private static func storeHeaderFields(
        _ destination: UnsafeMutableRawPointer, length: Int, term: Term, entry: LogEntryHeader, durablePosition: LogPosition
    ) {
        destination.storeBytes(of: UInt32(length).littleEndian, toByteOffset: FrameField.length, as: UInt32.self)
        destination.storeBytes(of: LogFormat.version, toByteOffset: FrameField.version, as: UInt8.self)
        destination.storeBytes(of: entry.flags, toByteOffset: FrameField.flags, as: UInt8.self)
        destination.storeBytes(of: entry.type.rawValue.littleEndian, toByteOffset: FrameField.type, as: UInt16.self)
        destination.storeBytes(of: UInt32(0), toByteOffset: FrameField.reserved32, as: UInt32.self)
        destination.storeBytes(of: term.rawValue.littleEndian, toByteOffset: FrameField.term, as: Int64.self)
        destination.storeBytes(of: entry.sessionID.littleEndian, toByteOffset: FrameField.sessionID, as: Int64.self)
        destination.storeBytes(of: entry.correlationID.littleEndian, toByteOffset: FrameField.correlationID, as: Int64.self)
        destination.storeBytes(of: entry.timestamp.rawValue.littleEndian, toByteOffset: FrameField.timestamp, as: Int64.self)
        destination.storeBytes(of: durablePosition.rawValue.littleEndian, toByteOffset: FrameField.durablePosition, as: Int64.self)
        destination.storeBytes(of: UInt64(0), toByteOffset: FrameField.reserved64, as: UInt64.self)
    }

    /// Writes a padding frame of `bytes` (≥ 32, aligned) at `destination`; only its first 32 bytes
    /// are written (the rest must already be zero, as preallocated or truncated space is).
    static func encodePadding(into destination: UnsafeMutableRawPointer, bytes: Int, term: Term) {
        precondition(bytes >= LogFormat.paddingFrameMinimumBytes && bytes % LogFormat.frameAlignmentBytes == 0, "padding must be aligned")
        destination.initializeMemory(as: UInt8.self, repeating: 0, count: LogFormat.paddingFrameMinimumBytes)
        destination.storeBytes(of: UInt32(bytes).littleEndian, toByteOffset: FrameField.length, as: UInt32.self)
        destination.storeBytes(of: LogFormat.version, toByteOffset: FrameField.version, as: UInt8.self)
        destination.storeBytes(of: LogEntryType.padding.rawValue.littleEndian, toByteOffset: FrameField.type, as: UInt16.self)
        destination.storeBytes(of: term.rawValue.littleEndian, toByteOffset: FrameField.term, as: Int64.self)
        let crc = checksum(UnsafeRawPointer(destination), length: LogFormat.paddingFrameMinimumBytes)
        destination.storeBytes(of: crc.littleEndian, toByteOffset: FrameField.crc, as: UInt32.self)
    }

    /// Rewrites a valid frame's durable-position field and recomputes its CRC (the follower path:
    /// the leader's durable position says nothing about what this node has synced).
    static func restampDurablePosition(_ frame: UnsafeMutableRawPointer, _ durablePosition: LogPosition) {
        let length = Int(UInt32(littleEndian: frame.loadUnaligned(fromByteOffset: FrameField.length, as: UInt32.self)))
        frame.storeBytes(of: durablePosition.rawValue.littleEndian, toByteOffset: FrameField.durablePosition, as: Int64.self)
        frame.storeBytes(of: checksum(UnsafeRawPointer(frame), length: length).littleEndian, toByteOffset: FrameField.crc, as: UInt32.self)
    }

    /// Checks the frame at `frame`, which starts `bytesToSegmentEnd` bytes before its segment's end
    /// and has `availableBytes` readable bytes (at least 32). Inbound validator: trusts nothing.
    static func check(_ frame: UnsafeRawPointer, bytesToSegmentEnd: Int, maxFrameBytes: Int, availableBytes: Int) -> FrameCheck {
        precondition(bytesToSegmentEnd >= LogFormat.paddingFrameMinimumBytes, "a frame position leaves room for a padding frame")
        guard availableBytes >= LogFormat.paddingFrameMinimumBytes else { return .invalid(reason: "fewer than 32 bytes") }
        let length = Int(UInt32(littleEndian: frame.loadUnaligned(fromByteOffset: FrameField.length, as: UInt32.self)))
        if length == 0 {
            let crc = frame.loadUnaligned(fromByteOffset: FrameField.crc, as: UInt32.self)
            let word = frame.loadUnaligned(fromByteOffset: FrameField.version, as: UInt64.self)
            return crc == 0 && word == 0 ? .empty : .invalid(reason: "zero length with a non-zero header")
        }
        let rawType = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: FrameField.type, as: UInt16.self))
        if rawType == LogEntryType.padding.rawValue {
            guard length == bytesToSegmentEnd else { return .invalid(reason: "padding of \(length) bytes does not end the segment") }
            guard length <= availableBytes else { return .invalid(reason: "padding of \(length) bytes is incomplete") }
            guard storedCRC(frame) == checksum(frame, length: LogFormat.paddingFrameMinimumBytes) else {
                return .invalid(reason: "padding frame CRC mismatch")
            }
            let version = frame.load(fromByteOffset: FrameField.version, as: UInt8.self)
            return version == LogFormat.version ? .valid(occupiedBytes: length) : .unsupportedVersion(version)
        }
        guard length >= LogFormat.frameHeaderBytes else { return .invalid(reason: "length \(length) is shorter than a frame header") }
        guard length <= maxFrameBytes, LogFormat.aligned(length) <= bytesToSegmentEnd else {
            return .invalid(reason: "length \(length) runs past the segment or the maximum frame size")
        }
        guard LogFormat.aligned(length) <= availableBytes else { return .invalid(reason: "frame of \(length) bytes is incomplete") }
        guard storedCRC(frame) == checksum(frame, length: length) else { return .invalid(reason: "CRC mismatch") }
        let version = frame.load(fromByteOffset: FrameField.version, as: UInt8.self)
        guard version == LogFormat.version else { return .unsupportedVersion(version) }
        guard LogEntryType(rawValue: rawType) != nil else { return .invalid(reason: "unknown entry type \(rawType)") }
        return .valid(occupiedBytes: LogFormat.aligned(length))
    }

    @inline(__always)
    static func storedCRC(_ frame: UnsafeRawPointer) -> UInt32 {
        UInt32(littleEndian: frame.loadUnaligned(fromByteOffset: FrameField.crc, as: UInt32.self))
    }
}

/// A zero-copy view of one frame in a mapping: header fields and payload, valid while the mapping is.
public struct LogFrameView {
    /// The frame's first byte.
    public let base: UnsafeRawPointer
    /// Where the frame starts in the log.
    public let position: LogPosition

    @inlinable
    public init(base: UnsafeRawPointer, position: LogPosition) {
        self.base = base
        self.position = position
    }

    /// Header plus payload bytes, unpadded.
    public var lengthBytes: Int { Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 0, as: UInt32.self))) }
    /// Bytes the frame occupies in the log (its aligned length).
    public var occupiedBytes: Int { LogFormat.aligned(lengthBytes) }
    /// The position just after this frame.
    public var endPosition: LogPosition { position.advanced(by: Int64(occupiedBytes)) }
    /// The stored CRC32C.
    public var crc: UInt32 { FrameCodec.storedCRC(base) }
    /// The frame format version.
    public var version: UInt8 { base.load(fromByteOffset: FrameField.version, as: UInt8.self) }
    /// The flag bits.
    public var flags: UInt8 { base.load(fromByteOffset: FrameField.flags, as: UInt8.self) }
    /// The entry type (padding for unknown values, which validation never lets through).
    public var type: LogEntryType {
        LogEntryType(rawValue: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: FrameField.type, as: UInt16.self))) ?? .padding
    }
    /// The term of the leader that wrote the entry.
    public var term: Term { Term(field(FrameField.term)) }
    /// The client session (0 when none).
    public var sessionID: Int64 { field(FrameField.sessionID) }
    /// Sequence number or correlation id.
    public var correlationID: Int64 { field(FrameField.correlationID) }
    /// Cluster time stamped by the leader.
    public var timestamp: ClusterTime { ClusterTime(rawValue: field(FrameField.timestamp)) }
    /// The writer's durable position when the frame's batch was written.
    public var durablePosition: LogPosition { LogPosition(field(FrameField.durablePosition)) }
    /// The payload bytes (empty for padding).
    public var payload: UnsafeRawBufferPointer {
        type == .padding
            ? UnsafeRawBufferPointer(start: base, count: 0)
            : UnsafeRawBufferPointer(start: base + LogFormat.frameHeaderBytes, count: lengthBytes - LogFormat.frameHeaderBytes)
    }
    /// Whether the stored CRC matches the bytes (for readers that re-check).
    public var hasValidCRC: Bool {
        FrameCodec.storedCRC(base) == FrameCodec.checksum(base, length: type == .padding ? LogFormat.paddingFrameMinimumBytes : lengthBytes)
    }

    @inline(__always)
    private func field(_ offset: Int) -> Int64 { Int64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: Int64.self)) }
}
