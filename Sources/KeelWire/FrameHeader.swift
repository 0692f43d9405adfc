/// The 8-byte header every frame begins with, read in place.
///
/// ```
///  0               1               2               3
///  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
/// +---------------------------------------------------------------+
/// |        frame length in bytes, header included (u32 LE)        |  0
/// +---------------+---------------+-------------------------------+
/// | version (u8)  |   type (u8)   |         flags (u16 LE)        |  4
/// +---------------+---------------+-------------------------------+
/// |                    body (length - 8 bytes)                  ...  8
/// ```
/// All integers are little-endian. Fields are placed so that 8-byte fields sit at multiples of 8
/// from the frame start; decoders nevertheless read unaligned, because frames sit anywhere in a
/// receive buffer.
public struct FrameHeader: Equatable, Sendable {
    /// The whole frame's length in bytes, header included.
    public var length: Int
    /// The protocol version the sender speaks.
    public var version: UInt8
    /// The raw type byte (see `MessageType`).
    public var typeByte: UInt8
    /// Type-specific flag bits.
    public var flags: UInt16

    /// The message type, if the type byte names one.
    public var type: MessageType? { MessageType(rawValue: typeByte) }

    /// Reads the header at the start of `bytes`; nil when fewer than 8 bytes are present.
    @inlinable
    public static func peek(_ bytes: UnsafeRawBufferPointer) -> FrameHeader? {
        guard bytes.count >= WireProtocol.headerBytes else { return nil }
        return FrameHeader(
            length: Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
            version: bytes[4],
            typeByte: bytes[5],
            flags: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
    }

    @inlinable
    public init(length: Int, version: UInt8, typeByte: UInt8, flags: UInt16) {
        self.length = length
        self.version = version
        self.typeByte = typeByte
        self.flags = flags
    }

    /// Outbound encoder: writes a header for a frame of `length` bytes at the start of `buffer`.
    static func write(into buffer: UnsafeMutableRawBufferPointer, length: Int, type: MessageType, flags: UInt16 = 0) {
        precondition(length >= WireProtocol.headerBytes && length <= WireProtocol.maxFrameLengthBytes, "frame length out of range")
        precondition(buffer.count >= length, "encode buffer smaller than the frame")
        buffer.wireStore(UInt32(length), at: 0)
        buffer.wireStore(WireProtocol.version, at: 4)
        buffer.wireStore(type.rawValue, at: 5)
        buffer.wireStore(flags, at: 6)
    }
}

/// The checks shared by every inbound decoder.
enum FrameCheck {
    /// Validates the header of a frame that must be exactly `frame`, of type `expected`, with no flag
    /// outside `allowedFlags`, at least `minimumLength` long; returns the header's flags.
    @inline(__always)
    static func header(
        _ frame: UnsafeRawBufferPointer, expected: MessageType, minimumLength: Int, allowedFlags: UInt16 = 0
    ) throws(WireRejection) -> UInt16 {
        guard let header = FrameHeader.peek(frame) else {
            throw .tooShort(length: frame.count, minimum: WireProtocol.headerBytes)
        }
        guard header.length <= WireProtocol.maxFrameLengthBytes else {
            throw .tooLong(length: header.length, maximum: WireProtocol.maxFrameLengthBytes)
        }
        guard header.length == frame.count else { throw .lengthMismatch(declared: header.length, actual: frame.count) }
        guard let type = header.type else { throw .unknownType(header.typeByte) }
        try version(header.version, of: type)
        guard type == expected else { throw .unexpectedType(type, expected: expected) }
        guard header.flags & ~allowedFlags == 0 else { throw .unknownFlags(header.flags & ~allowedFlags, type: type) }
        guard frame.count >= minimumLength else { throw .tooShort(length: frame.count, minimum: minimumLength) }
        return header.flags
    }

    /// Frames must carry this build's version, except the frozen handshake layouts, which accept any
    /// version so the runtime can refuse a peer of another version by name.
    @inline(__always)
    static func version(_ version: UInt8, of type: MessageType) throws(WireRejection) {
        if type.isVersionIndependent {
            guard version != 0 else { throw .unsupportedVersion(version) }
        } else {
            guard version == WireProtocol.version else { throw .unsupportedVersion(version) }
        }
    }

    /// Throws `fieldOutOfRange` unless `value >= 0`.
    @inline(__always)
    static func nonNegative(_ value: Int64, _ field: String) throws(WireRejection) {
        guard value >= 0 else { throw .fieldOutOfRange(field: field, value: value) }
    }

    /// Throws `fieldOutOfRange` unless `condition` holds.
    @inline(__always)
    static func require(_ condition: Bool, _ field: String, _ value: Int64) throws(WireRejection) {
        guard condition else { throw .fieldOutOfRange(field: field, value: value) }
    }

    /// The length a variable part declares must account for every byte after the fixed part.
    @inline(__always)
    static func variableLength(_ frame: UnsafeRawBufferPointer, fixed: Int, declared: Int) throws(WireRejection) {
        guard fixed + declared == frame.count else { throw .lengthMismatch(declared: fixed + declared, actual: frame.count) }
    }

    /// Reserved bytes must be zero, so a later version can give them meaning.
    @inline(__always)
    static func reservedZero(_ frame: UnsafeRawBufferPointer, at offset: Int, count: Int) throws(WireRejection) {
        for index in offset..<(offset + count) where frame[index] != 0 {
            throw .fieldOutOfRange(field: "reserved", value: Int64(frame[index]))
        }
    }

    /// Human-readable text on the wire is printable ASCII or UTF-8 continuation bytes: no control bytes.
    @inline(__always)
    static func text(_ bytes: UnsafeRawBufferPointer, _ field: String) throws(WireRejection) {
        for byte in bytes where byte < 0x20 || byte == 0x7F {
            throw .fieldOutOfRange(field: field, value: Int64(byte))
        }
    }
}
