import KeelWire

/// Joins CRC32C values without reading the bytes again: from crc(A) and crc(B) and B's length, the
/// CRC of A followed by B. The snapshot writer and verifier checksum each chunk's payload once and
/// derive both the chunk's record CRC and the running whole-file CRC from it, instead of passing over
/// every byte twice. (The method of zlib's crc32_combine: multiplying by x^(8·length) modulo the
/// polynomial, in the reflected bit order CRC32C uses.)
enum CRC32CCombine {
    /// The Castagnoli polynomial, reflected.
    private static let polynomial: UInt32 = 0x82F6_3B78
    /// `powers[k]` = x^(2^k) mod P (k < 64: enough for any length below 2^60 bytes).
    private static let powers: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 64)
        table[0] = 1 << 30  // x^1
        for k in 1..<64 { table[k] = multiply(table[k - 1], table[k - 1]) }
        return table
    }()

    /// a·b mod P, both in reflected order (bit 31 is x^0).
    static func multiply(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var product: UInt32 = 0
        var factor = b
        var mask: UInt32 = 1 << 31
        while mask != 0 {
            if a & mask != 0 { product ^= factor }
            factor = factor & 1 != 0 ? (factor >> 1) ^ polynomial : factor >> 1
            mask >>= 1
        }
        return product
    }

    /// x^(8·bytes) mod P: the factor that shifts a CRC past `bytes` bytes.
    static func shift(bytes: Int) -> UInt32 {
        precondition(bytes >= 0, "a length is not negative")
        var result: UInt32 = 1 << 31  // x^0
        var remaining = UInt64(bytes)
        var k = 3  // 8·bytes = bytes·2^3
        while remaining != 0 {
            if remaining & 1 != 0 { result = multiply(powers[k], result) }
            remaining >>= 1
            k += 1
        }
        return result
    }

    /// The CRC32C of A followed by B, given crc(A), crc(B) and the shift factor for B's length.
    @inline(__always)
    static func combine(_ first: UInt32, _ second: UInt32, shift factor: UInt32) -> UInt32 {
        multiply(factor, first) ^ second
    }

    /// The CRC32C of A followed by B, given crc(A), crc(B) and B's length.
    static func combine(_ first: UInt32, _ second: UInt32, secondBytes: Int) -> UInt32 {
        combine(first, second, shift: shift(bytes: secondBytes))
    }
}

/// One pass over each record's payload gives both the record's CRC and the running whole-file CRC.
struct SnapshotChecksums {
    /// CRC32C of every byte handed to `add` or `seal` so far, in order.
    private(set) var whole: UInt32 = 0
    private let chunkBytes: Int
    private let chunkShift: UInt32
    private let recordHeaderShift = CRC32CCombine.shift(bytes: SnapshotFormat.recordHeaderBytes)

    init(chunkBytes: Int) {
        self.chunkBytes = chunkBytes
        chunkShift = CRC32CCombine.shift(bytes: chunkBytes)
    }

    private func shift(_ count: Int) -> UInt32 {
        count == chunkBytes ? chunkShift : CRC32CCombine.shift(bytes: count)
    }

    /// Bytes outside any record (the file header).
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        whole = CRC32C.checksum(bytes, continuing: whole)
    }

    /// The CRC a record with these header fields (bytes 0..<4, 8..<16 of `header`) and this payload must carry.
    func recordCRC(header: UnsafeRawPointer, payloadCRC: UInt32, payloadBytes: Int) -> UInt32 {
        var headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: header, count: 4))
        headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: header + 8, count: 8), continuing: headerCRC)
        return payloadBytes == 0 ? headerCRC : CRC32CCombine.combine(headerCRC, payloadCRC, shift: shift(payloadBytes))
    }

    /// Adds a whole record (its 16 header bytes as stored, then a payload whose CRC is known).
    mutating func addRecord(header: UnsafeRawPointer, payloadCRC: UInt32, payloadBytes: Int) {
        let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: header, count: SnapshotFormat.recordHeaderBytes))
        whole = CRC32CCombine.combine(whole, headerCRC, shift: recordHeaderShift)
        if payloadBytes > 0 { whole = CRC32CCombine.combine(whole, payloadCRC, shift: shift(payloadBytes)) }
    }
}
