import KeelCore
import KeelRaft

/// Something that happens at a virtual instant in the Raft simulation.
enum SimulationEvent: Sendable {
    case deliver(to: Int, from: Int, message: RaftMessage, payload: ArraySlice<SimulatedEntry>)
    case deliverSnapshot(to: Int, from: Int, position: LogPosition, term: Term, digest: UInt64)
    case tick(member: Int, incarnation: Int)
    case writeCompleted(member: Int, incarnation: Int, position: LogPosition, term: Term)
    case syncCompleted(member: Int, incarnation: Int)
    case restart(member: Int)
    case fault
    case healPartition(epoch: Int)
    case isolate(member: Int)
    case propose
}

/// A binary min-heap of events ordered by (virtual time, insertion order), so equal times replay in
/// the order they were scheduled and a seed always gives the same run.
struct SimulationEventQueue: Sendable {
    private struct Item: Sendable {
        var atNanos: Int64
        var sequence: UInt64
        var event: SimulationEvent
        func precedes(_ other: Item) -> Bool {
            atNanos != other.atNanos ? atNanos < other.atNanos : sequence < other.sequence
        }
    }

    private var heap: [Item] = []
    private var nextSequence: UInt64 = 0

    init() { heap.reserveCapacity(1024) }

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    mutating func schedule(_ event: SimulationEvent, atNanos: Int64) {
        heap.append(Item(atNanos: atNanos, sequence: nextSequence, event: event))
        nextSequence += 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popFirst() -> (atNanos: Int64, event: SimulationEvent)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let first = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].precedes(heap[smallest]) { smallest = left }
            if right < heap.count && heap[right].precedes(heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (first.atNanos, first.event)
    }
}
