/// A fixed-capacity FIFO of completions for one ring owner, allocated once at registration.
/// The ring appends while it reaps; the owner removes afterwards (never during the reap), so the
/// two never interleave.
final class RingCompletionQueue {
    private let storage: UnsafeMutablePointer<RingCompletion>
    let capacity: Int
    private var head = 0
    private(set) var count = 0
    /// False once the owner is gone: its late completions are dropped.
    var isRegistered = true

    init(capacity: Int) {
        precondition(capacity > 0, "a ring owner's completion capacity must be positive")
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
    }

    deinit { storage.deallocate() }

    var isFull: Bool { count == capacity }

    /// Appends a completion; the caller checks `isFull` first.
    @inline(__always)
    func append(_ completion: RingCompletion) {
        precondition(count < capacity, "ring owner completion queue overflow")
        var slot = head + count
        if slot >= capacity { slot -= capacity }
        (storage + slot).initialize(to: completion)
        count += 1
    }

    /// Removes and returns the oldest completion, or nil when empty.
    @inline(__always)
    func removeFirst() -> RingCompletion? {
        guard count > 0 else { return nil }
        let completion = storage[head]
        head += 1
        if head == capacity { head = 0 }
        count -= 1
        return completion
    }
}
