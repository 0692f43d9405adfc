import Synchronization

/// One counter as read at one moment.
public struct CounterSnapshot: Sendable, Equatable {
    /// The slot's index in its region.
    public var index: Int
    /// What the counter measures (see `CounterType`).
    public var type: CounterType
    /// The human label given at allocation.
    public var label: String
    /// The value when it was read.
    public var value: Int64

    public init(index: Int, type: CounterType, label: String, value: Int64) {
        self.index = index
        self.type = type
        self.label = label
        self.value = value
    }
}

/// Reads a counters region written by another thread or process (DESIGN.md decision 13).
/// Validates the header once; every value read is an acquire load, so values are live.
/// Pure memory: the caller maps the file (KeelIO's `CountersFile`) and keeps it mapped.
public struct CountersReader: @unchecked Sendable {
    private let base: UnsafeRawPointer
    /// Slots in the region.
    public let capacity: Int
    /// The writer's layout version.
    public let version: UInt32
    /// The writing process's id.
    public let pid: Int32
    /// When the writing process created the region (ns since the epoch).
    public let startEpochNanos: Int64

    /// Validates the header of `memory` (magic, version, sizes) and prepares to read it.
    public init(memory: UnsafeRawBufferPointer) throws(ObservabilityFormatError) {
        guard memory.count >= CountersLayout.headerBytes, let base = memory.baseAddress else {
            throw .tooSmall(bytes: memory.count, minimum: CountersLayout.headerBytes)
        }
        let magic = atomicUInt64(base, CountersLayout.magicOffset).pointee.load(ordering: .acquiring)
        if magic == 0 { throw .notInitialized }
        guard magic == CountersLayout.magic else { throw .wrongMagic(found: magic, expected: CountersLayout.magic) }
        let version = base.load(fromByteOffset: CountersLayout.versionOffset, as: UInt32.self)
        guard version == CountersLayout.version else { throw .unsupportedVersion(found: version, supported: CountersLayout.version) }
        let headerBytes = Int(base.load(fromByteOffset: CountersLayout.headerBytesOffset, as: UInt32.self))
        let slotBytes = Int(base.load(fromByteOffset: CountersLayout.slotBytesOffset, as: UInt32.self))
        let capacity = Int(base.load(fromByteOffset: CountersLayout.capacityOffset, as: UInt32.self))
        guard headerBytes == CountersLayout.headerBytes, slotBytes == CountersLayout.slotBytes else {
            throw .inconsistentLayout("header \(headerBytes) bytes and slots \(slotBytes) bytes, version \(version) has \(CountersLayout.headerBytes) and \(CountersLayout.slotBytes)")
        }
        guard CountersLayout.requiredBytes(capacity: capacity) <= memory.count else {
            throw .inconsistentLayout("\(capacity) slots need \(CountersLayout.requiredBytes(capacity: capacity)) bytes, the file has \(memory.count)")
        }
        self.base = base
        self.capacity = capacity
        self.version = version
        pid = Int32(truncatingIfNeeded: base.load(fromByteOffset: CountersLayout.pidOffset, as: Int64.self))
        startEpochNanos = base.load(fromByteOffset: CountersLayout.startEpochNanosOffset, as: Int64.self)
    }

    /// Counters allocated so far (only these slots are read).
    public var count: Int {
        let published = atomicInt64(base, CountersLayout.allocatedCountOffset).pointee.load(ordering: .acquiring)
        return Int(max(0, min(published, Int64(capacity))))
    }

    private func slot(_ index: Int) -> UnsafeRawPointer {
        precondition(index >= 0 && index < capacity, "counter index out of range")
        return base + CountersLayout.headerBytes + index * CountersLayout.slotBytes
    }

    /// The live value of counter `index`.
    public func value(at index: Int) -> Int64 {
        atomicInt64(slot(index), CountersLayout.valueOffset).pointee.load(ordering: .acquiring)
    }

    /// The type of counter `index`.
    public func type(at index: Int) -> CounterType {
        CounterType(rawValue: slot(index).load(fromByteOffset: CountersLayout.typeIDOffset, as: Int32.self))
    }

    /// The label of counter `index` (a damaged length is clamped, invalid UTF-8 repaired).
    public func label(at index: Int) -> String {
        let slot = slot(index)
        let length = Int(slot.load(fromByteOffset: CountersLayout.labelLengthOffset, as: Int32.self))
        let clamped = max(0, min(length, CountersLayout.labelBytesMax))
        return String(decoding: UnsafeRawBufferPointer(start: slot + CountersLayout.labelOffset, count: clamped), as: UTF8.self)
    }

    /// Every allocated counter, read now.
    public func snapshot() -> [CounterSnapshot] {
        (0..<count).map { CounterSnapshot(index: $0, type: type(at: $0), label: label(at: $0), value: value(at: $0)) }
    }
}
