import KeelCore
import KeelWire

// A small record kept durably in two slots written alternately (hard state, log start), so that a
// write torn by a power loss can only damage the slot being written, never the last good one.
//
//   file: slot 0 at offset 0, slot 1 at offset 4096 (different sectors and pages)
//    0       4     5     8          16                                   60    64
//   +-------+-----+-----+----------+------------------------------------+-----+
//   | magic | ver | 0   | sequence | payload (44 bytes, record-specific) | crc |
//   | u32   | u8  |     | u64      |                                     | u32 |
//   +-------+-----+-----+----------+------------------------------------+-----+
//   crc: CRC32C over bytes 0..<60. The valid slot with the higher sequence is current.

/// Two alternately written, CRC-protected slots in one file; every write is fdatasync'ed before
/// `write` returns.
struct SlottedRecordFile<S: Storage> {
    static var slotStrideBytes: Int { 4096 }
    static var slotBytes: Int { 64 }
    static var payloadBytes: Int { 44 }
    static var payloadOffset: Int { 16 }
    static var crcOffset: Int { 60 }

    let storage: S
    let name: String
    let magic: UInt32
    private let file: FileID
    /// The sequence of the current slot (0 when nothing valid was ever written).
    private(set) var sequence: UInt64 = 0

    /// Opens (creating when missing) the record file and reads the current payload, if any.
    init(storage: S, name: String, magic: UInt32, current: inout [UInt8]?) throws(LogError) {
        self.storage = storage
        self.name = name
        self.magic = magic
        do {
            let existed = try storage.listFiles().contains(name)
            file = try storage.openFile(name, create: true)
            if !existed {
                try storage.preallocate(file, bytes: Int64(2 * Self.slotStrideBytes))
                try storage.datasync(file)
                try storage.syncDirectory()
            }
        } catch { throw .storage(error) }
        current = try readCurrent()
    }

    private mutating func readCurrent() throws(LogError) -> [UInt8]? {
        var best: (sequence: UInt64, payload: [UInt8])?
        var damaged = 0
        for slot in 0..<2 {
            let bytes: [UInt8]
            do { bytes = try storage.read(file, at: Int64(slot * Self.slotStrideBytes), count: Self.slotBytes) } catch { throw .storage(error) }
            if bytes.count < Self.slotBytes || bytes.allSatisfy({ $0 == 0 }) { continue }
            switch try decode(bytes) {
            case .some(let decoded):
                if best == nil || decoded.sequence > best!.sequence { best = decoded }
            case .none:
                damaged += 1
            }
        }
        // Two damaged slots cannot come from one torn write: something else broke the file.
        if best == nil && damaged == 2 { throw .badRecordFile(file: name, reason: "both slots fail their CRC") }
        sequence = best?.sequence ?? 0
        return best?.payload
    }

    private func decode(_ bytes: [UInt8]) throws(LogError) -> (sequence: UInt64, payload: [UInt8])? {
        let result: (UInt64, [UInt8])?? = bytes.withUnsafeBytes { raw in
            let storedCRC = raw.loadUnaligned(fromByteOffset: Self.crcOffset, as: UInt32.self)
            guard UInt32(littleEndian: storedCRC) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<Self.crcOffset])),
                  UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == magic
            else { return .some(nil) }
            guard raw[4] == LogFormat.version else { return nil }
            let sequence = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            return .some((sequence, Array(raw[Self.payloadOffset..<Self.crcOffset])))
        }
        guard let result else {
            throw .unsupportedVersion(file: name, version: Int(bytes[4]), supported: Int(LogFormat.version))
        }
        return result
    }

    /// Writes `payload` (at most 44 bytes) into the older slot and fdatasyncs it before returning.
    mutating func write(_ payloadBytes: [UInt8]) throws(LogError) {
        precondition(payloadBytes.count <= Self.payloadBytes, "slot payload is at most 44 bytes")
        let next = sequence + 1
        let outcome: Result<Void, IOError> = withUnsafeTemporaryAllocation(byteCount: Self.slotBytes, alignment: 8) { slot in
            let base = slot.baseAddress!
            base.initializeMemory(as: UInt8.self, repeating: 0, count: Self.slotBytes)
            base.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
            base.storeBytes(of: LogFormat.version, toByteOffset: 4, as: UInt8.self)
            base.storeBytes(of: next.littleEndian, toByteOffset: 8, as: UInt64.self)
            for (index, byte) in payloadBytes.enumerated() { base.storeBytes(of: byte, toByteOffset: Self.payloadOffset + index, as: UInt8.self) }
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: Self.crcOffset))
            base.storeBytes(of: crc.littleEndian, toByteOffset: Self.crcOffset, as: UInt32.self)
            do throws(IOError) {
                try storage.write(file, at: Int64(Int(next % 2) * Self.slotStrideBytes), UnsafeRawBufferPointer(slot))
                try storage.datasync(file)
                return .success(())
            } catch { return .failure(error) }
        }
        do { try outcome.get() } catch { throw .storage(error) }
        sequence = next
    }

    func close() { storage.closeFile(file) }
}
