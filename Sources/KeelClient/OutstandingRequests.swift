import KeelWire

/// The requests offered but not yet acknowledged, as encoded request frames in one byte ring
/// allocated at start, oldest first. Kept so they can be sent in batches straight from here and
/// re-sent, restamped with a new session, after a failover (at-least-once).
///
/// Request ids are consecutive: the entry at `index` from the front has id `firstRequestID + index`.
/// Each frame is contiguous; when one does not fit before the end of the ring it starts at 0 and
/// the tail end stays unused until the ring wraps past it.
struct OutstandingRequests: ~Copyable {
    private let storage: UnsafeMutableRawBufferPointer
    private let offsets: UnsafeMutablePointer<Int>
    private let lengths: UnsafeMutablePointer<Int>
    let capacity: Int
    private var head = 0
    private(set) var count = 0
    /// The id of the oldest outstanding request (the next one offered when none is outstanding).
    private(set) var firstRequestID: Int64 = 1
    /// Where the next frame goes.
    private var tailOffset = 0

    init(capacity: Int, bytes: Int) {
        self.capacity = capacity
        storage = .allocate(byteCount: bytes, alignment: 16)
        offsets = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
    }

    deinit {
        storage.deallocate()
        offsets.deallocate()
        lengths.deallocate()
    }

    var byteCapacity: Int { storage.count }
    var isEmpty: Bool { count == 0 }
    /// The id the next appended request gets.
    var nextRequestID: Int64 { firstRequestID + Int64(count) }

    /// Room for a frame of `length` bytes, or nil when the ring is full.
    private func placement(for length: Int) -> Int? {
        guard count < capacity, length <= storage.count else { return nil }
        if count == 0 { return 0 }
        let headOffset = offsets[head]
        if tailOffset > headOffset {
            if storage.count - tailOffset >= length { return tailOffset }
            return length <= headOffset ? 0 : nil
        }
        // Wrapped (or the tail sits right behind the head): the free space runs up to the head.
        return headOffset - tailOffset >= length ? tailOffset : nil
    }

    /// Encodes a request frame for `payload` stamped with `sessionID` and `sequence` (placeholders
    /// are fine before a session is open: `restamp` rewrites them). Returns its id, or nil when full.
    mutating func append(payload: UnsafeRawBufferPointer, sessionID: Int64, sequence: Int64) -> Int64? {
        let length = RequestFrame.encodedLength(payloadByteCount: payload.count)
        guard let offset = placement(for: length) else { return nil }
        let slot = UnsafeMutableRawBufferPointer(rebasing: storage[offset..<(offset + length)])
        RequestFrame.encode(into: slot, sessionID: sessionID, sequence: sequence, payload: payload)
        let index = (head + count) % capacity
        offsets[index] = offset
        lengths[index] = length
        count += 1
        tailOffset = offset + length
        return nextRequestID - 1
    }

    /// The encoded frame of the entry `index` places from the front.
    func frame(at index: Int) -> UnsafeRawBufferPointer {
        precondition(index >= 0 && index < count, "outstanding index out of range")
        let slot = (head + index) % capacity
        return UnsafeRawBufferPointer(rebasing: storage[offsets[slot]..<(offsets[slot] + lengths[slot])])
    }

    /// The longest run of frames from `index` on that lies contiguously in memory (one send), at
    /// most `maxFrames` of them: the bytes and the number of frames.
    func contiguousRun(from index: Int, maxFrames: Int) -> (bytes: UnsafeRawBufferPointer, frames: Int) {
        precondition(index >= 0 && index < count, "outstanding index out of range")
        let first = (head + index) % capacity
        let start = offsets[first]
        var end = start + lengths[first], frames = 1
        while index + frames < count && frames < maxFrames {
            let slot = (head + index + frames) % capacity
            guard offsets[slot] == end else { break }
            end += lengths[slot]
            frames += 1
        }
        return (UnsafeRawBufferPointer(rebasing: storage[start..<end]), frames)
    }

    /// Rewrites the session id and sequence of the entry `index` places from the front (for a new
    /// session after a failover). The payload stays where it is.
    func restamp(at index: Int, sessionID: Int64, sequence: Int64) {
        precondition(index >= 0 && index < count, "outstanding index out of range")
        let slot = (head + index) % capacity
        let frame = UnsafeMutableRawBufferPointer(rebasing: storage[offsets[slot]..<(offsets[slot] + lengths[slot])])
        // Safe because the payload is encoded onto itself: copyMemory is a memmove.
        let payload = UnsafeRawBufferPointer(rebasing: frame[RequestFrame.fixedBytes...])
        RequestFrame.encode(into: frame, sessionID: sessionID, sequence: sequence, payload: payload)
    }

    /// Drops the `dropCount` oldest entries (acknowledged).
    mutating func removeFirst(_ dropCount: Int) {
        precondition(dropCount >= 0 && dropCount <= count, "dropping more than is outstanding")
        head = (head + dropCount) % capacity
        count -= dropCount
        firstRequestID += Int64(dropCount)
        if count == 0 {
            head = 0
            tailOffset = 0
        }
    }
}
