import KeelCore
import KeelWire

/// The header at the start of every segment file (layout in LogFormat.swift).
struct SegmentHeader: Equatable {
    var formatVersion: UInt32
    var clusterID: UInt64
    var startPosition: LogPosition
    var segmentLengthBytes: Int64

    static let crcOffset = 60

    /// Writes the header into the first 64 bytes of `buffer` (which must be at least that long).
    func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= LogFormat.segmentHeaderBytes, "segment header needs 64 bytes")
        let base = buffer.baseAddress!
        base.initializeMemory(as: UInt8.self, repeating: 0, count: LogFormat.segmentHeaderBytes)
        base.storeBytes(of: LogFormat.segmentMagic.littleEndian, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: formatVersion.littleEndian, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: UInt32(LogFormat.segmentHeaderRegionBytes).littleEndian, toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: clusterID.littleEndian, toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: startPosition.rawValue.littleEndian, toByteOffset: 24, as: Int64.self)
        base.storeBytes(of: segmentLengthBytes.littleEndian, toByteOffset: 32, as: Int64.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: Self.crcOffset))
        base.storeBytes(of: crc.littleEndian, toByteOffset: Self.crcOffset, as: UInt32.self)
    }

    /// What decoding a segment header found.
    enum Decoded: Equatable {
        case valid(SegmentHeader)
        case invalid(reason: String)
        case unsupportedVersion(UInt32)
    }

    /// Inbound decoder: checks magic and CRC before trusting any field.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> Decoded {
        guard bytes.count >= LogFormat.segmentHeaderBytes else { return .invalid(reason: "file shorter than a segment header") }
        let base = bytes.baseAddress!
        let magic = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard magic == LogFormat.segmentMagic else { return .invalid(reason: "bad magic 0x\(String(magic, radix: 16))") }
        let stored = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: crcOffset, as: UInt32.self))
        guard stored == CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: crcOffset)) else {
            return .invalid(reason: "segment header CRC mismatch")
        }
        let version = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard version == UInt32(LogFormat.version) else { return .unsupportedVersion(version) }
        let regionBytes = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard regionBytes == UInt32(LogFormat.segmentHeaderRegionBytes) else {
            return .invalid(reason: "header region of \(regionBytes) bytes, expected \(LogFormat.segmentHeaderRegionBytes)")
        }
        return .valid(SegmentHeader(
            formatVersion: version,
            clusterID: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            startPosition: LogPosition(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: Int64.self))),
            segmentLengthBytes: Int64(littleEndian: base.loadUnaligned(fromByteOffset: 32, as: Int64.self))
        ))
    }
}
