import KeelCore

/// The key-value store's requests, as a client encodes them (`encoded()`) and the service decodes
/// them (`decode(_:)`). Little-endian, every length explicit:
///
/// ```
/// put    | 1 | keyLength u16 | valueLength u32 | key | value |
/// get    | 2 | keyLength u16 | key |
/// delete | 3 | keyLength u16 | key |
/// cas    | 4 | keyLength u16 | expectedLength u32 | newLength u32 | key | expected | new |
///          expectedLength 0xFFFF_FFFF: "only if the key is absent"
/// ```
public enum KeyValueRequest: Equatable, Sendable {
    case put(key: [UInt8], value: [UInt8])
    case get(key: [UInt8])
    case delete(key: [UInt8])
    /// Sets `key` to `new` only if it holds `expected` (nil: only if absent).
    case compareAndSet(key: [UInt8], expected: [UInt8]?, new: [UInt8])

    /// The longest key accepted.
    public static let keyBytesMax = 1024
    static let absent: UInt32 = 0xFFFF_FFFF

    /// The request's bytes.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        switch self {
        case .put(let key, let value):
            bytes.append(1)
            bytes.appendLittleEndian(UInt16(key.count))
            bytes.appendLittleEndian(UInt32(value.count))
            bytes += key
            bytes += value
        case .get(let key):
            bytes.append(2)
            bytes.appendLittleEndian(UInt16(key.count))
            bytes += key
        case .delete(let key):
            bytes.append(3)
            bytes.appendLittleEndian(UInt16(key.count))
            bytes += key
        case .compareAndSet(let key, let expected, let new):
            bytes.append(4)
            bytes.appendLittleEndian(UInt16(key.count))
            bytes.appendLittleEndian(expected.map { UInt32($0.count) } ?? Self.absent)
            bytes.appendLittleEndian(UInt32(new.count))
            bytes += key
            bytes += expected ?? []
            bytes += new
        }
        return bytes
    }

    /// A request decoded from `bytes`, or a `MalformedMessageError` saying what is wrong with them.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(MalformedMessageError) -> KeyValueRequest {
        var reader = ByteCursor(bytes)
        let op = try reader.uint8()
        let keyLength = Int(try reader.uint16())
        guard keyLength <= keyBytesMax else { throw MalformedMessageError("key of \(keyLength) bytes, more than the \(keyBytesMax) allowed") }
        switch op {
        case 1:
            let valueLength = Int(try reader.uint32())
            let key = try reader.bytes(keyLength), value = try reader.bytes(valueLength)
            try reader.expectEnd()
            return .put(key: key, value: value)
        case 2, 3:
            let key = try reader.bytes(keyLength)
            try reader.expectEnd()
            return op == 2 ? .get(key: key) : .delete(key: key)
        case 4:
            let expectedLength = try reader.uint32()
            let newLength = Int(try reader.uint32())
            let key = try reader.bytes(keyLength)
            let expected = expectedLength == absent ? nil : try reader.bytes(Int(expectedLength))
            let new = try reader.bytes(newLength)
            try reader.expectEnd()
            return .compareAndSet(key: key, expected: expected, new: new)
        default:
            throw MalformedMessageError("unknown operation \(op)")
        }
    }
}

/// The store's answer to one request:
///
/// ```
/// | status u8 | valueLength u32 | value |     value: the value (get; a failed cas: the current one,
///                                                    empty if absent) or the error text (malformed)
/// ```
public struct KeyValueResponse: Equatable, Sendable {
    public enum Status: UInt8, Sendable {
        /// Done (put, delete of a present key, cas that matched, get of a present key).
        case ok = 0
        /// get or delete of an absent key.
        case notFound = 1
        /// cas whose expectation did not hold; `value` holds the current value.
        case mismatch = 2
        /// The request bytes were malformed; `value` holds the reason. Nothing changed.
        case malformed = 3
    }

    public var status: Status
    public var value: [UInt8]

    public init(status: Status, value: [UInt8] = []) {
        self.status = status
        self.value = value
    }

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = [status.rawValue]
        bytes.appendLittleEndian(UInt32(value.count))
        return bytes + value
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(MalformedMessageError) -> KeyValueResponse {
        var reader = ByteCursor(bytes)
        guard let status = Status(rawValue: try reader.uint8()) else { throw MalformedMessageError("unknown status \(bytes[0])") }
        let value = try reader.bytes(Int(try reader.uint32()))
        try reader.expectEnd()
        return KeyValueResponse(status: status, value: value)
    }

    public static func decode(_ bytes: [UInt8]) throws(MalformedMessageError) -> KeyValueResponse {
        try bytes.withUnsafeBytes { raw in Result { () throws(MalformedMessageError) in try decode(raw) } }.get()
    }
}

/// Bytes that are not a valid request or response of an example service.
public struct MalformedMessageError: Error, Equatable, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
