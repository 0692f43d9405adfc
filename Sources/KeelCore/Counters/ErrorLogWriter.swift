import Synchronization

/// Records distinct errors into an error log region (see `ErrorLogLayout`). Pure memory: no OS calls.
///
/// Thread-safe: any agent may record (errors are rare; a mutex serialises writers). Recording is a
/// cold path and may allocate (the index of distinct errors is a dictionary).
public final class ErrorLogWriter: Sendable {
    private struct Key: Hashable {
        var kind: Int32
        var message: [UInt8]
    }

    private struct State: ~Copyable {
        var usedBytes = 0
        var offsets: [Key: Int] = [:]
    }

    // Safe because: the pointer is only dereferenced while `state`'s lock is held (writes), and the
    // region outlives the writer (its owner keeps the mapping).
    private nonisolated(unsafe) let base: UnsafeMutableRawPointer
    /// Bytes available for records (the region minus its header).
    public let capacityBytes: Int
    private let state = Mutex(State())

    /// Formats `memory` (zeroed, 8-byte aligned) as an empty error log of process `pid`.
    public init(memory: UnsafeMutableRawBufferPointer, pid: Int32, startEpochNanos: Int64) {
        precondition(memory.count >= ErrorLogLayout.headerBytes, "an error log needs at least its header")
        let base = memory.baseAddress!
        precondition(Int(bitPattern: base) & 7 == 0, "an error log must be 8-byte aligned")
        self.base = base
        capacityBytes = (memory.count - ErrorLogLayout.headerBytes) & ~7
        base.storeBytes(of: ErrorLogLayout.version, toByteOffset: ErrorLogLayout.versionOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(ErrorLogLayout.headerBytes), toByteOffset: ErrorLogLayout.headerBytesOffset, as: UInt32.self)
        base.storeBytes(of: Int64(capacityBytes), toByteOffset: ErrorLogLayout.capacityBytesOffset, as: Int64.self)
        base.storeBytes(of: Int64(pid), toByteOffset: ErrorLogLayout.pidOffset, as: Int64.self)
        base.storeBytes(of: startEpochNanos, toByteOffset: ErrorLogLayout.startEpochNanosOffset, as: Int64.self)
        atomicInt64(base, ErrorLogLayout.usedBytesOffset).pointee.store(0, ordering: .releasing)
        atomicInt64(base, ErrorLogLayout.droppedCountOffset).pointee.store(0, ordering: .releasing)
        // The magic goes last: a reader that sees it sees the whole header.
        atomicUInt64(base, ErrorLogLayout.magicOffset).pointee.store(ErrorLogLayout.magic, ordering: .releasing)
    }

    /// The outcome of recording an error.
    public enum Outcome: Equatable, Sendable {
        /// A new distinct error was stored.
        case added
        /// A known error's count and last time were updated.
        case repeated
        /// The log is full: the error was counted as dropped.
        case dropped
    }

    /// Records one occurrence of (`kind`, `message`) at `epochNanos`.
    @discardableResult
    public func record(kind: ErrorKind, message: String, epochNanos: Int64) -> Outcome {
        let messageBytes = utf8Prefix(message, limit: ErrorLogLayout.messageBytesMax)
        let key = Key(kind: kind.rawValue, message: messageBytes)
        return state.withLock { state in
            let records = base + ErrorLogLayout.headerBytes
            if let offset = state.offsets[key] {
                let record = records + offset
                atomicInt64(record, ErrorLogLayout.lastEpochNanosOffset).pointee.store(epochNanos, ordering: .releasing)
                let count = atomicInt64(record, ErrorLogLayout.countOffset)
                count.pointee.store(count.pointee.load(ordering: .relaxed) &+ 1, ordering: .releasing)
                return .repeated
            }
            let recordBytes = ErrorLogLayout.recordBytes(messageBytes: messageBytes.count)
            guard state.usedBytes + recordBytes <= capacityBytes else {
                let dropped = atomicInt64(base, ErrorLogLayout.droppedCountOffset)
                dropped.pointee.store(dropped.pointee.load(ordering: .relaxed) &+ 1, ordering: .releasing)
                return .dropped
            }
            let record = records + state.usedBytes
            record.storeBytes(of: Int32(recordBytes), toByteOffset: ErrorLogLayout.recordBytesOffset, as: Int32.self)
            record.storeBytes(of: kind.rawValue, toByteOffset: ErrorLogLayout.kindOffset, as: Int32.self)
            record.storeBytes(of: epochNanos, toByteOffset: ErrorLogLayout.firstEpochNanosOffset, as: Int64.self)
            atomicInt64(record, ErrorLogLayout.lastEpochNanosOffset).pointee.store(epochNanos, ordering: .relaxed)
            atomicInt64(record, ErrorLogLayout.countOffset).pointee.store(1, ordering: .relaxed)
            record.storeBytes(of: Int32(messageBytes.count), toByteOffset: ErrorLogLayout.messageBytesOffset, as: Int32.self)
            messageBytes.withUnsafeBytes { bytes in
                if let source = bytes.baseAddress {
                    (record + ErrorLogLayout.messageOffset).copyMemory(from: source, byteCount: bytes.count)
                }
            }
            state.offsets[key] = state.usedBytes
            state.usedBytes += recordBytes
            // Publishes the record.
            atomicInt64(base, ErrorLogLayout.usedBytesOffset).pointee.store(Int64(state.usedBytes), ordering: .releasing)
            return .added
        }
    }
}
