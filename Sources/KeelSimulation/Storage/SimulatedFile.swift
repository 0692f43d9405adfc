import KeelCore

/// A zero-filled block used to clear memory with one `copyMemory` (a memmove) per chunk, which stays
/// fast in debug builds where a byte loop would not.
/// Safe because it is written once, here, and only ever read afterwards.
nonisolated(unsafe) private let zeroChunk: UnsafeRawPointer = {
    let chunk = UnsafeMutableRawPointer.allocate(byteCount: zeroChunkBytes, alignment: 4096)
    chunk.initializeMemory(as: UInt8.self, repeating: 0, count: zeroChunkBytes)
    return UnsafeRawPointer(chunk)
}()
private let zeroChunkBytes = 64 * 1024

/// Sets `count` bytes at `start` to zero.
func fillWithZeros(_ start: UnsafeMutableRawPointer, count: Int) {
    var done = 0
    while done < count {
        let step = min(zeroChunkBytes, count - done)
        (start + done).copyMemory(from: zeroChunk, byteCount: step)
        done += step
    }
}

/// One file on a simulated disk (an inode): its bytes as the page cache holds them (`cache`: what
/// reads and mappings see) and as stable storage holds them (`stable`: what a power loss leaves).
///
/// Both buffers are reserved once at the file's full capacity, so a mapping into `cache` never
/// moves. Each is materialised lazily: bytes at or beyond its `…InitializedBytes` mark are logically
/// zero and have never been touched, so reserved capacity costs no resident memory until used.
/// Bytes at or beyond a buffer's length are always logically zero.
///
/// Outside `changedRange` the cache equals stable storage; a datasync copies that range across.
final class SimulatedFile {
    /// Allocation order on the disk; sorts files deterministically.
    let inodeNumber: Int
    let capacityBytes: Int
    let sectorSizeBytes: Int
    private let cache: UnsafeMutableRawPointer
    private let stable: UnsafeMutableRawPointer
    private(set) var cacheLengthBytes = 0
    private(set) var stableLengthBytes = 0
    private var cacheInitializedBytes = 0
    private var stableInitializedBytes = 0
    // One interval covering every explicit change since the last sync (empty when low >= high).
    private var changedLowBytes = Int.max
    private var changedHighBytes = 0
    // Stores through a writable mapping cannot be observed, so the mapped extent counts as changed
    // from the mapping until a sync after the last writable mapping of that extent is released.
    private var liveWritableMappingBytes: [Int] = []
    private var writableMappedBytesSinceSync = 0

    init(inodeNumber: Int, capacityBytes: Int, sectorSizeBytes: Int) {
        self.inodeNumber = inodeNumber
        self.capacityBytes = capacityBytes
        self.sectorSizeBytes = sectorSizeBytes
        cache = .allocate(byteCount: capacityBytes, alignment: 4096)
        stable = .allocate(byteCount: capacityBytes, alignment: 4096)
    }

    deinit {
        cache.deallocate()
        stable.deallocate()
    }

    /// Bytes that may differ between the cache and stable storage.
    private var changedRange: Range<Int> {
        let low = min(changedLowBytes, writableMappedBytesSinceSync > 0 ? 0 : Int.max)
        let high = max(changedHighBytes, writableMappedBytesSinceSync)
        let limit = max(cacheLengthBytes, stableLengthBytes)
        let clampedHigh = min(high, limit)
        return low < clampedHigh ? low..<clampedHigh : 0..<0
    }

    /// True when a datasync would change what stable storage holds.
    var hasUnsyncedChanges: Bool { !changedRange.isEmpty || cacheLengthBytes != stableLengthBytes }

    private func materializeCache(upTo bytes: Int) {
        precondition(bytes <= capacityBytes, "beyond the file's reserved capacity")
        guard bytes > cacheInitializedBytes else { return }
        fillWithZeros(cache + cacheInitializedBytes, count: bytes - cacheInitializedBytes)
        cacheInitializedBytes = bytes
    }

    private func materializeStable(upTo bytes: Int) {
        precondition(bytes <= capacityBytes, "beyond the file's reserved capacity")
        guard bytes > stableInitializedBytes else { return }
        fillWithZeros(stable + stableInitializedBytes, count: bytes - stableInitializedBytes)
        stableInitializedBytes = bytes
    }

    private func noteChange(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        changedLowBytes = min(changedLowBytes, range.lowerBound)
        changedHighBytes = max(changedHighBytes, range.upperBound)
    }

    // MARK: Page-cache operations

    /// Copies up to `buffer.count` bytes at `offset` out of the cache; returns how many.
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard offset < cacheLengthBytes, let destination = buffer.baseAddress else { return 0 }
        let count = min(buffer.count, cacheLengthBytes - offset)
        let materialized = max(0, min(count, cacheInitializedBytes - offset))
        if materialized > 0 { destination.copyMemory(from: cache + offset, byteCount: materialized) }
        if count > materialized { fillWithZeros(destination + materialized, count: count - materialized) }
        return count
    }

    /// Copies `bytes` into the cache at `offset`, growing the file when it ends beyond the length.
    func write(at offset: Int, _ bytes: UnsafeRawBufferPointer) {
        let end = offset + bytes.count
        precondition(offset >= 0 && end <= capacityBytes, "write outside the file's capacity")
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        materializeCache(upTo: end)
        (cache + offset).copyMemory(from: source, byteCount: bytes.count)
        cacheLengthBytes = max(cacheLengthBytes, end)
        noteChange(offset..<end)
    }

    /// Grows the file to `length` with zero bytes (never shrinks it).
    func extend(toLength length: Int) {
        precondition(length <= capacityBytes, "length beyond the file's capacity")
        // Bytes beyond the length are already logically zero in both buffers: nothing to copy later.
        cacheLengthBytes = max(cacheLengthBytes, length)
    }

    /// Zeroes the part of `offset..<offset+count` that lies inside the file.
    func zero(at offset: Int, count: Int) {
        let end = min(offset + count, cacheLengthBytes)
        guard offset < end else { return }
        let materializedEnd = min(end, cacheInitializedBytes)
        if offset < materializedEnd { fillWithZeros(cache + offset, count: materializedEnd - offset) }
        noteChange(offset..<end)
    }

    /// The cache's first `bytes` bytes, materialised, for a mapping.
    func mapping(bytes: Int, writable: Bool) -> UnsafeMutableRawBufferPointer {
        precondition(bytes <= cacheLengthBytes, "mapping beyond the file's length")
        materializeCache(upTo: bytes)
        if writable {
            liveWritableMappingBytes.append(bytes)
            writableMappedBytesSinceSync = max(writableMappedBytesSinceSync, bytes)
        }
        return UnsafeMutableRawBufferPointer(start: cache, count: bytes)
    }

    /// Records that a mapping made by `mapping(bytes:writable:)` was released.
    func mappingReleased(bytes: Int, writable: Bool) {
        guard writable, let index = liveWritableMappingBytes.firstIndex(of: bytes) else { return }
        liveWritableMappingBytes.remove(at: index)
    }

    /// Whether `pointer` is this file's cache base (mappings always start there).
    func isCacheBase(_ pointer: UnsafeRawPointer) -> Bool { UnsafeRawPointer(cache) == pointer }

    // MARK: Stable storage

    /// A datasync: stable storage takes the cache's bytes and length.
    func sync() {
        let range = changedRange
        materializeStable(upTo: range.upperBound)
        if !range.isEmpty {
            materializeCache(upTo: range.upperBound)
            (stable + range.lowerBound).copyMemory(from: cache + range.lowerBound, byteCount: range.count)
        }
        if cacheLengthBytes < stableLengthBytes {
            let end = min(stableLengthBytes, stableInitializedBytes)
            if cacheLengthBytes < end { fillWithZeros(stable + cacheLengthBytes, count: end - cacheLengthBytes) }
        }
        stableLengthBytes = cacheLengthBytes
        changedLowBytes = Int.max
        changedHighBytes = 0
        writableMappedBytesSinceSync = liveWritableMappingBytes.max() ?? 0
    }

    /// A power loss: every changed sector independently keeps its new bytes, reverts to its stable
    /// bytes or is torn; an unsynced length change survives or not; then what is left is what stable
    /// storage holds (the page cache is gone).
    func losePageCache(random: inout SeededRandom, faults: SimulatedFaultModel) {
        let range = changedRange
        if !range.isEmpty {
            materializeCache(upTo: range.upperBound)
            materializeStable(upTo: range.upperBound)
            var sectorStart = range.lowerBound - range.lowerBound % sectorSizeBytes
            while sectorStart < range.upperBound {
                let sectorEnd = min(sectorStart + sectorSizeBytes, range.upperBound)
                let revertFrom: Int
                if sectorEnd - sectorStart > 1 && random.chance(faults.tornSectorChance) {
                    revertFrom = sectorStart + Int(random.integer(in: 1...Int64(sectorEnd - sectorStart - 1)))
                } else if random.chance(faults.unsyncedSectorSurvivalChance) {
                    revertFrom = sectorEnd
                } else {
                    revertFrom = sectorStart
                }
                if revertFrom < sectorEnd {
                    (cache + revertFrom).copyMemory(from: stable + revertFrom, byteCount: sectorEnd - revertFrom)
                }
                sectorStart = sectorEnd
            }
        }
        settleLength(random: &random, faults: faults)
        liveWritableMappingBytes.removeAll()
        writableMappedBytesSinceSync = 0
        // What the disk now holds is all there is: stable := cache.
        noteChange(range)
        sync()
        flipRandomBits(random: &random, chance: faults.bitFlipChancePerSector)
    }

    private func settleLength(random: inout SeededRandom, faults: SimulatedFaultModel) {
        guard cacheLengthBytes != stableLengthBytes else { return }
        let length = random.chance(faults.unsyncedLengthSurvivalChance) ? cacheLengthBytes : stableLengthBytes
        if length < cacheLengthBytes {
            let end = min(cacheLengthBytes, cacheInitializedBytes)
            if length < end { fillWithZeros(cache + length, count: end - length) }
        } else if length > cacheLengthBytes {
            // Stable storage was longer: its bytes come back (logically zero beyond what it holds).
            materializeCache(upTo: length)
            materializeStable(upTo: length)
            (cache + cacheLengthBytes).copyMemory(from: stable + cacheLengthBytes, byteCount: length - cacheLengthBytes)
            noteChange(cacheLengthBytes..<length)
        }
        cacheLengthBytes = length
    }

    private func flipRandomBits(random: inout SeededRandom, chance: Double) {
        guard chance > 0 else { return }
        var sectorStart = 0
        while sectorStart < stableLengthBytes {
            if random.chance(chance) {
                let sectorEnd = min(sectorStart + sectorSizeBytes, stableLengthBytes)
                let offset = Int(random.integer(in: Int64(sectorStart)...Int64(sectorEnd - 1)))
                flipBit(at: offset, bit: Int(random.integer(in: 0...7)))
            }
            sectorStart += sectorSizeBytes
        }
    }

    /// Flips one bit in the cache and, when the byte is inside the stable length, in stable storage.
    func flipBit(at offset: Int, bit: Int) {
        precondition(offset >= 0 && offset < cacheLengthBytes, "bit flip outside the file")
        precondition(bit >= 0 && bit < 8, "bit index must be 0...7")
        let mask = UInt8(1) << UInt8(bit)
        materializeCache(upTo: offset + 1)
        cache.storeBytes(of: cache.load(fromByteOffset: offset, as: UInt8.self) ^ mask, toByteOffset: offset, as: UInt8.self)
        if offset < stableLengthBytes {
            materializeStable(upTo: offset + 1)
            stable.storeBytes(of: stable.load(fromByteOffset: offset, as: UInt8.self) ^ mask, toByteOffset: offset, as: UInt8.self)
        }
    }

    /// The file's bytes as reads see them (for tests and checkers).
    func cachedBytes() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: cacheLengthBytes)
        _ = bytes.withUnsafeMutableBytes { read(at: 0, into: $0) }
        return bytes
    }

    /// The file's bytes as stable storage holds them (what a power loss with no survivors would leave).
    func stableBytes() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: stableLengthBytes)
        let count = min(stableLengthBytes, stableInitializedBytes)
        if count > 0 { bytes.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: stable, byteCount: count) } }
        return bytes
    }
}
