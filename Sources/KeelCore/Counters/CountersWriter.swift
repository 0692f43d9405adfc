import Synchronization

/// One counter in a counters region: a handle its owning agent updates with plain release stores.
///
/// Each counter has exactly one writer (the agent that owns it), so an increment is a load and a
/// store, not a read-modify-write; readers in other processes load with acquire.
/// Safe to move between threads (`@unchecked Sendable`) because it is only a pointer into a region
/// that outlives it, and the single-writer rule is the owner's contract.
public struct Counter: @unchecked Sendable {
    private let value: UnsafeMutablePointer<Atomic<Int64>>
    /// The slot's index in its region.
    public let index: Int

    init(value: UnsafeMutablePointer<Atomic<Int64>>, index: Int) {
        self.value = value
        self.index = index
    }

    /// The current value.
    @inline(__always) public func get() -> Int64 { value.pointee.load(ordering: .relaxed) }

    /// Sets the value (release store; only the owning agent calls this).
    @inline(__always) public func set(_ newValue: Int64) { value.pointee.store(newValue, ordering: .releasing) }

    /// Adds `delta` (a load and a release store: valid only because the owner is the one writer).
    @inline(__always) public func increment(by delta: Int64 = 1) {
        value.pointee.store(value.pointee.load(ordering: .relaxed) &+ delta, ordering: .releasing)
    }

    /// Adds `delta` with an atomic read-modify-write, for the few counters several threads update
    /// (errors by kind). Costlier than `increment(by:)`; not for per-frame paths.
    @inline(__always) public func incrementShared(by delta: Int64 = 1) {
        value.pointee.wrappingAdd(delta, ordering: .releasing)
    }
}

/// Lays out a counters region in raw memory (a mapped file in production, plain memory in the
/// simulator) and allocates counters in it. Pure memory: no OS calls.
///
/// Allocation is for start-up, from one thread; the returned `Counter` handles are then handed to
/// the agents that own them. The memory must stay valid (and mapped) while any handle is in use.
public final class CountersWriter {
    private let base: UnsafeMutableRawPointer
    /// Counters the region can hold.
    public let capacity: Int
    /// Counters allocated so far.
    public private(set) var allocatedCount = 0

    /// Formats `memory` as an empty counters region for process `pid` started at `startEpochNanos`,
    /// with as many slots as fit. The memory must be zeroed (a fresh file or a zeroed allocation)
    /// and 8-byte aligned.
    public init(memory: UnsafeMutableRawBufferPointer, pid: Int32, startEpochNanos: Int64) {
        precondition(memory.count >= CountersLayout.headerBytes, "a counters region needs at least its header")
        let base = memory.baseAddress!
        precondition(Int(bitPattern: base) & 7 == 0, "a counters region must be 8-byte aligned")
        self.base = base
        capacity = (memory.count - CountersLayout.headerBytes) / CountersLayout.slotBytes
        precondition(capacity <= Int(Int32.max), "too many counter slots")
        base.storeBytes(of: CountersLayout.version, toByteOffset: CountersLayout.versionOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(CountersLayout.headerBytes), toByteOffset: CountersLayout.headerBytesOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(CountersLayout.slotBytes), toByteOffset: CountersLayout.slotBytesOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(capacity), toByteOffset: CountersLayout.capacityOffset, as: UInt32.self)
        base.storeBytes(of: Int64(pid), toByteOffset: CountersLayout.pidOffset, as: Int64.self)
        base.storeBytes(of: startEpochNanos, toByteOffset: CountersLayout.startEpochNanosOffset, as: Int64.self)
        atomicInt64(base, CountersLayout.allocatedCountOffset).pointee.store(0, ordering: .releasing)
        // The magic goes last: a reader that sees it sees the whole header.
        atomicUInt64(base, CountersLayout.magicOffset).pointee.store(CountersLayout.magic, ordering: .releasing)
    }

    /// Allocates the next slot with `type` and `label` (cut to `CountersLayout.labelBytesMax` bytes)
    /// and initial value `initialValue`. Returns nil when the region is full.
    public func allocate(type: CounterType, label: String, initialValue: Int64 = 0) -> Counter? {
        guard allocatedCount < capacity else { return nil }
        let index = allocatedCount
        let slot = base + CountersLayout.headerBytes + index * CountersLayout.slotBytes
        let labelBytes = utf8Prefix(label, limit: CountersLayout.labelBytesMax)
        slot.storeBytes(of: type.rawValue, toByteOffset: CountersLayout.typeIDOffset, as: Int32.self)
        slot.storeBytes(of: Int32(labelBytes.count), toByteOffset: CountersLayout.labelLengthOffset, as: Int32.self)
        labelBytes.withUnsafeBytes { bytes in
            (slot + CountersLayout.labelOffset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        let value = atomicInt64(slot, CountersLayout.valueOffset)
        value.pointee.store(initialValue, ordering: .relaxed)
        allocatedCount += 1
        // Publishes the slot: readers load the count with acquire before reading type and label.
        atomicInt64(base, CountersLayout.allocatedCountOffset).pointee.store(Int64(allocatedCount), ordering: .releasing)
        return Counter(value: value, index: index)
    }
}
