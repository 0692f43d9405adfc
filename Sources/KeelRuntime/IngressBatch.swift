import KeelCore
import KeelLog

/// The entries gathered during one duty cycle of the leader, waiting to become one log append and
/// one proposal (DESIGN.md decision 6). Payloads are copied once from the receive buffers into one
/// bounded buffer allocated at start (the receive buffers are reused by the next receive).
struct IngressBatch: ~Copyable {
    struct Entry {
        var type: LogEntryType
        var sessionID: Int64
        var correlationID: Int64
        var offset: Int
        var length: Int
    }

    private let bytes: UnsafeMutableRawPointer
    let capacityBytes: Int
    private(set) var usedBytes = 0
    private(set) var entries: [Entry] = []

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
        bytes = .allocate(byteCount: capacityBytes, alignment: 64)
        entries.reserveCapacity(8192)
    }

    deinit { bytes.deallocate() }

    var isEmpty: Bool { entries.isEmpty }
    var freeBytes: Int { capacityBytes - usedBytes }

    /// Adds an entry; false when its payload does not fit this cycle.
    mutating func add(type: LogEntryType, sessionID: Int64, correlationID: Int64, payload: UnsafeRawBufferPointer) -> Bool {
        guard payload.count <= freeBytes, entries.count < 65_536 else { return false }
        if payload.count > 0 { (bytes + usedBytes).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        entries.append(Entry(type: type, sessionID: sessionID, correlationID: correlationID, offset: usedBytes, length: payload.count))
        usedBytes += payload.count
        return true
    }

    func payload(of entry: Entry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes + entry.offset, count: entry.length)
    }

    /// Where the batch ends if appended at `start` to a log of `segmentLengthBytes` segments: frames are
    /// aligned and one that does not fit in the rest of a segment moves to the next (after padding),
    /// exactly as `ReplicatedLog` places them.
    func endPosition(appendedAt start: LogPosition, segmentLengthBytes: Int64) -> LogPosition {
        var position = start.rawValue
        for entry in entries {
            let occupied = Int64(LogFormat.aligned(LogFormat.frameHeaderBytes + entry.length))
            if position % segmentLengthBytes + occupied > segmentLengthBytes {
                position += segmentLengthBytes - position % segmentLengthBytes
            }
            position += occupied
        }
        return LogPosition(position)
    }

    mutating func removeAll() {
        entries.removeAll(keepingCapacity: true)
        usedBytes = 0
    }
}
