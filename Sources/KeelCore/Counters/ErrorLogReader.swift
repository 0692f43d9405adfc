import Synchronization

/// Reads an error log region written by another thread or process (see `ErrorLogLayout`).
/// Pure memory: the caller maps the file (KeelIO's `ErrorLogFile`) and keeps it mapped.
public struct ErrorLogReader: @unchecked Sendable {
    private let base: UnsafeRawPointer
    /// Bytes available for records.
    public let capacityBytes: Int
    /// The writing process's id.
    public let pid: Int32
    /// When the writing process created the log (ns since the epoch).
    public let startEpochNanos: Int64

    /// Validates the header of `memory` (magic, version, sizes).
    public init(memory: UnsafeRawBufferPointer) throws(ObservabilityFormatError) {
        guard memory.count >= ErrorLogLayout.headerBytes, let base = memory.baseAddress else {
            throw .tooSmall(bytes: memory.count, minimum: ErrorLogLayout.headerBytes)
        }
        let magic = atomicUInt64(base, ErrorLogLayout.magicOffset).pointee.load(ordering: .acquiring)
        if magic == 0 { throw .notInitialized }
        guard magic == ErrorLogLayout.magic else { throw .wrongMagic(found: magic, expected: ErrorLogLayout.magic) }
        let version = base.load(fromByteOffset: ErrorLogLayout.versionOffset, as: UInt32.self)
        guard version == ErrorLogLayout.version else { throw .unsupportedVersion(found: version, supported: ErrorLogLayout.version) }
        let headerBytes = Int(base.load(fromByteOffset: ErrorLogLayout.headerBytesOffset, as: UInt32.self))
        guard headerBytes == ErrorLogLayout.headerBytes else {
            throw .inconsistentLayout("header of \(headerBytes) bytes, version \(version) has \(ErrorLogLayout.headerBytes)")
        }
        let capacityBytes = base.load(fromByteOffset: ErrorLogLayout.capacityBytesOffset, as: Int64.self)
        guard capacityBytes >= 0, capacityBytes <= Int64(memory.count - headerBytes) else {
            throw .inconsistentLayout("\(capacityBytes) record bytes do not fit in a file of \(memory.count) bytes")
        }
        self.base = base
        self.capacityBytes = Int(capacityBytes)
        pid = Int32(truncatingIfNeeded: base.load(fromByteOffset: ErrorLogLayout.pidOffset, as: Int64.self))
        startEpochNanos = base.load(fromByteOffset: ErrorLogLayout.startEpochNanosOffset, as: Int64.self)
    }

    /// Distinct errors that did not fit.
    public var droppedCount: Int64 {
        atomicInt64(base, ErrorLogLayout.droppedCountOffset).pointee.load(ordering: .acquiring)
    }

    /// Bytes of records published so far.
    public var usedBytes: Int {
        let used = atomicInt64(base, ErrorLogLayout.usedBytesOffset).pointee.load(ordering: .acquiring)
        return Int(max(0, min(used, Int64(capacityBytes))))
    }

    /// Every distinct error recorded so far, oldest first. Stops at a damaged record.
    public func entries() -> [ErrorLogEntry] {
        let used = usedBytes
        let records = base + ErrorLogLayout.headerBytes
        var entries: [ErrorLogEntry] = []
        var offset = 0
        while offset + ErrorLogLayout.recordHeaderBytes <= used {
            let record = records + offset
            let recordBytes = Int(record.load(fromByteOffset: ErrorLogLayout.recordBytesOffset, as: Int32.self))
            let messageBytes = Int(record.load(fromByteOffset: ErrorLogLayout.messageBytesOffset, as: Int32.self))
            guard messageBytes >= 0, messageBytes <= ErrorLogLayout.messageBytesMax,
                  recordBytes == ErrorLogLayout.recordBytes(messageBytes: messageBytes),
                  offset + recordBytes <= used else { break }
            let message = String(decoding: UnsafeRawBufferPointer(start: record + ErrorLogLayout.messageOffset, count: messageBytes), as: UTF8.self)
            let count = atomicInt64(record, ErrorLogLayout.countOffset).pointee.load(ordering: .acquiring)
            let last = atomicInt64(record, ErrorLogLayout.lastEpochNanosOffset).pointee.load(ordering: .acquiring)
            entries.append(ErrorLogEntry(
                kind: ErrorKind(rawValue: record.load(fromByteOffset: ErrorLogLayout.kindOffset, as: Int32.self)),
                message: message, count: count,
                firstEpochNanos: record.load(fromByteOffset: ErrorLogLayout.firstEpochNanosOffset, as: Int64.self),
                lastEpochNanos: last))
            offset += recordBytes
        }
        return entries
    }
}
