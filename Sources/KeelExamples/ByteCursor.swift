/// Reads little-endian fields from untrusted bytes, refusing to read past their end (the examples'
/// request decoders).
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private mutating func take<E: Error>(_ count: Int, _ error: (String) -> E) throws(E) -> Int {
        guard count >= 0, bytes.count - offset >= count else {
            throw error("needs \(count) more bytes at offset \(offset), only \(bytes.count - offset) left")
        }
        defer { offset += count }
        return offset
    }

    mutating func uint8() throws(MalformedMessageError) -> UInt8 { bytes[try take(1, MalformedMessageError.init)] }
    mutating func uint16() throws(MalformedMessageError) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(2, MalformedMessageError.init), as: UInt16.self)) }
    mutating func uint32() throws(MalformedMessageError) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(4, MalformedMessageError.init), as: UInt32.self)) }
    mutating func bytes(_ count: Int) throws(MalformedMessageError) -> [UInt8] {
        let start = try take(count, MalformedMessageError.init)
        return Array(bytes[start..<(start + count)])
    }
    mutating func int64() throws(MalformedMessageError) -> Int64 { Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(8, MalformedMessageError.init), as: Int64.self)) }

    func expectEnd() throws(MalformedMessageError) {
        guard offset == bytes.count else { throw MalformedMessageError("\(bytes.count - offset) bytes after the end of the message") }
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
