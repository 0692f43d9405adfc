import KeelCore

/// One pending timer: the service's correlation id, its deadline in cluster time, and the
/// schedule sequence that tells this scheduling of the id from earlier and later ones.
public struct PendingTimer: Equatable, Sendable {
    public var correlationId: Int64
    public var deadline: ClusterTime
    public var sequence: Int64

    public init(correlationId: Int64, deadline: ClusterTime, sequence: Int64) {
        self.correlationId = correlationId
        self.deadline = deadline
        self.sequence = sequence
    }

    /// Firing order: deadline, then schedule order (sequences are unique, so the order is total and
    /// the same on every member).
    @inlinable
    func fires(before other: PendingTimer) -> Bool {
        deadline != other.deadline ? deadline < other.deadline : sequence < other.sequence
    }
}

/// Pending timers by deadline (DESIGN.md decision 9, issue 8 §3): a binary min-heap of slot numbers
/// over a slab of timers, plus a map from correlation id to slot. Schedule, reschedule and cancel
/// cost O(log n) with one hash lookup; the earliest deadline is read in O(1). The slab and the heap
/// keep their capacity, so a steady state of schedule/fire/cancel allocates nothing once they have grown.
///
/// A hashed timing wheel would make schedule and cancel O(1) but fires in tick order, not deadline
/// order, and rescans far-future timers on every turn; `keel bench timers` measures this heap at a
/// million pending timers (docs/benchmarks.md: about 0.5 µs to schedule, 2 µs to pop there).
public struct TimerHeap {
    private var slab: [PendingTimer] = []
    private var heapIndexOfSlot: [Int32] = []
    private var heap: [Int32] = []
    private var freeSlots: [Int32] = []
    private var slotOfId: [Int64: Int32] = [:]

    /// An empty heap with room for `capacity` timers before it grows.
    public init(capacity: Int = 1024) {
        slab.reserveCapacity(capacity)
        heapIndexOfSlot.reserveCapacity(capacity)
        heap.reserveCapacity(capacity)
        slotOfId.reserveCapacity(capacity)
    }

    /// Timers pending.
    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }

    /// The timer that fires first, if any.
    public var earliest: PendingTimer? { heap.isEmpty ? nil : slab[Int(heap[0])] }

    /// The pending timer with `correlationId`, if any.
    public func timer(correlationId: Int64) -> PendingTimer? {
        slotOfId[correlationId].map { slab[Int($0)] }
    }

    /// Adds `timer`, replacing a pending one with the same correlation id.
    public mutating func schedule(_ timer: PendingTimer) {
        if let slot = slotOfId[timer.correlationId] {
            let index = Int(heapIndexOfSlot[Int(slot)])
            let earlier = timer.fires(before: slab[Int(slot)])
            slab[Int(slot)] = timer
            if earlier { siftUp(index) } else { siftDown(index) }
            return
        }
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            slab[Int(slot)] = timer
            heapIndexOfSlot[Int(slot)] = Int32(heap.count)
        } else {
            slot = Int32(slab.count)
            slab.append(timer)
            heapIndexOfSlot.append(Int32(heap.count))
        }
        slotOfId[timer.correlationId] = slot
        heap.append(slot)
        siftUp(heap.count - 1)
    }

    /// Removes the pending timer with `correlationId`; returns it, or nil if there was none.
    @discardableResult
    public mutating func cancel(correlationId: Int64) -> PendingTimer? {
        guard let slot = slotOfId.removeValue(forKey: correlationId) else { return nil }
        let timer = slab[Int(slot)]
        remove(at: Int(heapIndexOfSlot[Int(slot)]))
        freeSlots.append(slot)
        return timer
    }

    /// Removes and returns the earliest timer if its deadline is at or before `now`.
    public mutating func popDue(now: ClusterTime) -> PendingTimer? {
        guard let first = heap.first, slab[Int(first)].deadline <= now else { return nil }
        let timer = slab[Int(first)]
        slotOfId.removeValue(forKey: timer.correlationId)
        remove(at: 0)
        freeSlots.append(first)
        return timer
    }

    /// Calls `body` for every pending timer, in no particular order.
    public func forEach(_ body: (PendingTimer) -> Void) {
        for slot in heap { body(slab[Int(slot)]) }
    }

    private mutating func remove(at index: Int) {
        let last = heap.count - 1
        if index != last {
            move(heap[last], to: index)
            heap.removeLast()
            if index > 0 && slab[Int(heap[index])].fires(before: slab[Int(heap[(index - 1) / 2])]) {
                siftUp(index)
            } else {
                siftDown(index)
            }
        } else {
            heap.removeLast()
        }
    }

    private mutating func move(_ slot: Int32, to index: Int) {
        heap[index] = slot
        heapIndexOfSlot[Int(slot)] = Int32(index)
    }

    private mutating func siftUp(_ start: Int) {
        var index = start
        let slot = heap[index]
        let timer = slab[Int(slot)]
        while index > 0 {
            let parent = (index - 1) / 2
            guard timer.fires(before: slab[Int(heap[parent])]) else { break }
            move(heap[parent], to: index)
            index = parent
        }
        move(slot, to: index)
    }

    private mutating func siftDown(_ start: Int) {
        var index = start
        let slot = heap[index]
        let timer = slab[Int(slot)]
        let count = heap.count
        while true {
            let left = 2 * index + 1
            guard left < count else { break }
            var child = left
            if left + 1 < count && slab[Int(heap[left + 1])].fires(before: slab[Int(heap[left])]) { child = left + 1 }
            guard slab[Int(heap[child])].fires(before: timer) else { break }
            move(heap[child], to: index)
            index = child
        }
        move(slot, to: index)
    }
}
