/// Why an inbound decoder refused a frame. Every malformed input ends in one of these — never a
/// crash — so the connection can be closed with a logged reason and a counter per `reason`.
public enum WireRejection: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the layout needs (`minimum`), or a header length below the header itself.
    case tooShort(length: Int, minimum: Int)
    /// A declared frame length above the decoder's limit.
    case tooLong(length: Int, maximum: Int)
    /// The header's length, or the length its own fields imply, differs from the bytes present.
    case lengthMismatch(declared: Int, actual: Int)
    /// A protocol version this build does not speak.
    case unsupportedVersion(UInt8)
    /// A type byte that names no message.
    case unknownType(UInt8)
    /// A frame handed to the decoder of another message type.
    case unexpectedType(MessageType, expected: MessageType)
    /// Flag bits that this message type does not define.
    case unknownFlags(UInt16, type: MessageType)
    /// A field holding a value its layout forbids (negative position, unknown reason code, …).
    case fieldOutOfRange(field: String, value: Int64)
    /// A checksummed body whose checksum does not match.
    case checksumMismatch(expected: UInt32, actual: UInt32)

    /// The kind of rejection without its details: one counter each.
    public var reason: WireRejectionReason {
        switch self {
        case .tooShort: .tooShort
        case .tooLong: .tooLong
        case .lengthMismatch: .lengthMismatch
        case .unsupportedVersion: .unsupportedVersion
        case .unknownType: .unknownType
        case .unexpectedType: .unexpectedType
        case .unknownFlags: .unknownFlags
        case .fieldOutOfRange: .fieldOutOfRange
        case .checksumMismatch: .checksumMismatch
        }
    }

    public var description: String {
        switch self {
        case .tooShort(let length, let minimum): "frame too short: \(length) bytes, layout needs \(minimum)"
        case .tooLong(let length, let maximum): "frame too long: \(length) bytes, limit \(maximum)"
        case .lengthMismatch(let declared, let actual): "frame length mismatch: declared \(declared), found \(actual)"
        case .unsupportedVersion(let version): "unsupported protocol version \(version) (this build speaks \(WireProtocol.version))"
        case .unknownType(let type): "unknown message type 0x\(String(type, radix: 16))"
        case .unexpectedType(let type, let expected): "unexpected \(type) where \(expected) was expected"
        case .unknownFlags(let flags, let type): "undefined flags 0x\(String(flags, radix: 16)) on \(type)"
        case .fieldOutOfRange(let field, let value): "field \(field) out of range: \(value)"
        case .checksumMismatch(let expected, let actual):
            "checksum mismatch: frame says 0x\(String(expected, radix: 16)), bytes give 0x\(String(actual, radix: 16))"
        }
    }
}

/// The kinds of `WireRejection`, dense from 0 so they can index a counter array.
public enum WireRejectionReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case tooShort, tooLong, lengthMismatch, unsupportedVersion, unknownType, unexpectedType, unknownFlags
    case fieldOutOfRange, checksumMismatch

    public var description: String {
        switch self {
        case .tooShort: "too-short"
        case .tooLong: "too-long"
        case .lengthMismatch: "length-mismatch"
        case .unsupportedVersion: "unsupported-version"
        case .unknownType: "unknown-type"
        case .unexpectedType: "unexpected-type"
        case .unknownFlags: "unknown-flags"
        case .fieldOutOfRange: "field-out-of-range"
        case .checksumMismatch: "checksum-mismatch"
        }
    }
}
