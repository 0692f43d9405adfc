/// Session id → slot, for the per-message lookup of the session table: open addressing with linear
/// probing and a multiplicative (Fibonacci) hash of the id, kept at most half full. A `Dictionary`
/// hashes every lookup with a seeded SipHash (the session table's `Dictionary` was 4% of the leader
/// at 300,000 msg/s); ids are few and well spread (`term << 32 | counter`), so one multiply finds
/// them. Never iterated: its order would differ with its history, so nothing reads it but `slot(of:)`.
struct SessionIndex: Sendable {
    /// 0 marks an empty cell (session ids start at 1).
    private var ids: [Int64]
    private var slots: [Int32]
    private var shift: UInt64
    private(set) var count = 0

    init() {
        ids = Array(repeating: 0, count: 16)
        slots = Array(repeating: 0, count: 16)
        shift = 64 - 4
    }

    @inline(__always)
    private func home(_ id: Int64) -> Int {
        Int(truncatingIfNeeded: (UInt64(bitPattern: id) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The slot of `id`, if indexed.
    @inline(__always)
    func slot(of id: Int64) -> Int? {
        let mask = ids.count - 1
        var cell = home(id)
        while true {
            let found = ids[cell]
            if found == id { return Int(slots[cell]) }
            if found == 0 { return nil }
            cell = (cell + 1) & mask
        }
    }

    /// Indexes `id` at `slot` (`id` must not be indexed yet).
    mutating func insert(_ id: Int64, slot: Int) {
        precondition(id >= 1, "session ids start at 1")
        if (count + 1) * 2 > ids.count { grow() }
        let mask = ids.count - 1
        var cell = home(id)
        while ids[cell] != 0 { cell = (cell + 1) & mask }
        ids[cell] = id
        slots[cell] = Int32(slot)
        count += 1
    }

    /// Removes `id`, shifting later cells of its probe run back so that lookups need no tombstones.
    mutating func remove(_ id: Int64) {
        let mask = ids.count - 1
        var cell = home(id)
        while ids[cell] != id {
            if ids[cell] == 0 { return }
            cell = (cell + 1) & mask
        }
        var hole = cell
        var next = (hole + 1) & mask
        while ids[next] != 0 {
            // An entry may move into the hole only if its home is not in (hole, next] (cyclically).
            let wanted = home(ids[next])
            if (next - wanted) & mask >= (next - hole) & mask {
                ids[hole] = ids[next]
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        ids[hole] = 0
        count -= 1
    }

    private mutating func grow() {
        let oldIDs = ids, oldSlots = slots
        ids = Array(repeating: 0, count: oldIDs.count * 2)
        slots = Array(repeating: 0, count: oldIDs.count * 2)
        shift -= 1
        count = 0
        for cell in oldIDs.indices where oldIDs[cell] != 0 { insert(oldIDs[cell], slot: Int(oldSlots[cell])) }
    }
}
