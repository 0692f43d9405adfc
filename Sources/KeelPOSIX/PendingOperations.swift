import KeelCore

/// One queued accept, send or receive: the caller's token and buffer, and how far it has got.
struct PendingOperation {
    var token: IOToken
    /// The caller's buffer (read from for a send, written to for a receive; nil for an accept).
    var base: UnsafeMutableRawPointer?
    var count: Int
    /// Bytes already sent (sends only).
    var doneBytes: Int

    static var empty: PendingOperation { PendingOperation(token: IOToken(0), base: nil, count: 0, doneBytes: 0) }
}

/// A fixed-capacity FIFO of pending operations, allocated once when its connection is set up.
struct PendingOperationQueue {
    private var slots: [PendingOperation]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        precondition(capacity > 0, "queue capacity must be positive")
        slots = Array(repeating: .empty, count: capacity)
    }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == slots.count }

    /// Adds an operation at the back; false when full.
    mutating func push(_ operation: PendingOperation) -> Bool {
        guard count < slots.count else { return false }
        slots[(head + count) % slots.count] = operation
        count += 1
        return true
    }

    /// The operation at the front.
    var first: PendingOperation {
        get {
            precondition(count > 0, "empty operation queue")
            return slots[head]
        }
        set {
            precondition(count > 0, "empty operation queue")
            slots[head] = newValue
        }
    }

    /// Removes and returns the operation at the front.
    mutating func pop() -> PendingOperation {
        precondition(count > 0, "empty operation queue")
        let operation = slots[head]
        head = (head + 1) % slots.count
        count -= 1
        return operation
    }
}
