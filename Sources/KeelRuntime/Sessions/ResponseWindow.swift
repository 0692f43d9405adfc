import KeelCore

/// How much of its responses each session keeps for retried requests (DESIGN.md decision 10).
public struct ResponseWindowLimits: Sendable, Equatable {
    /// Responses of at most this many most recently applied requests are kept (0 keeps none).
    public var requestsMax: Int
    /// At most this many response payload bytes are kept; the oldest requests' responses go first.
    public var bytesMax: Int

    public init(requestsMax: Int = 1024, bytesMax: Int = 1 << 20) {
        precondition(requestsMax >= 0 && bytesMax >= 0, "window limits must not be negative")
        self.requestsMax = requestsMax
        self.bytesMax = bytesMax
    }

    /// Keeps nothing: the consensus agent's copy of the table, which never sees responses.
    public static let none = ResponseWindowLimits(requestsMax: 0, bytesMax: 0)
}

/// The responses one session's recent requests produced, kept so that a retried request (after a
/// failover or a lost response) gets them again instead of being applied twice.
///
/// Every response of every request in `startSequence...lastApplied` is held, in order; older
/// requests' responses are gone. The bytes live in one buffer that grows to the largest window the
/// session has needed and is then reused (evicted bytes are compacted away), so a steady flow of
/// responses allocates nothing.
public struct ResponseWindow: Sendable {
    struct Record: Sendable, Equatable {
        var sequence: Int64
        var timestamp: ClusterTime
        var offset: Int
        var length: Int
    }

    /// The oldest request whose responses are all still held.
    public private(set) var startSequence: Int64 = 1
    /// Payload bytes held.
    public private(set) var retainedBytes = 0
    private var records: [Record] = []
    private var recordsHead = 0
    private var bytes: [UInt8] = []
    private var bytesHead = 0
    private var bytesTail = 0

    public init() {}

    /// Responses held.
    public var retainedResponses: Int { records.count - recordsHead }

    /// Drops every response of requests before `sequence`.
    mutating func release(before sequence: Int64) {
        guard sequence > startSequence else { return }
        startSequence = sequence
        while recordsHead < records.count && records[recordsHead].sequence < sequence {
            retainedBytes -= records[recordsHead].length
            bytesHead = records[recordsHead].offset + records[recordsHead].length
            recordsHead += 1
        }
        if recordsHead == records.count {
            records.removeAll(keepingCapacity: true)
            recordsHead = 0
            bytesHead = 0
            bytesTail = 0
        } else if recordsHead >= 64 && recordsHead * 2 >= records.count {
            // In place (the capacity stays): dead records must not pile up, even empty ones.
            records.removeFirst(recordsHead)
            recordsHead = 0
        }
    }

    /// Keeps `payload` as a response of request `sequence` (the latest applied), evicting the oldest
    /// requests' responses to stay within `bytesMax`. A request whose responses cannot all be kept
    /// is dropped whole, so a retry never gets half of them.
    mutating func record(sequence: Int64, timestamp: ClusterTime, payload: UnsafeRawBufferPointer, limits: ResponseWindowLimits) {
        guard sequence >= startSequence else { return }
        guard payload.count <= limits.bytesMax else {
            release(before: sequence + 1)
            return
        }
        while retainedBytes + payload.count > limits.bytesMax, let oldest = oldestSequence {
            release(before: oldest + 1)
        }
        guard sequence >= startSequence else { return }
        reserve(payload.count)
        if payload.count > 0 {
            bytes.withUnsafeMutableBytes { ($0.baseAddress! + bytesTail).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        }
        records.append(Record(sequence: sequence, timestamp: timestamp, offset: bytesTail, length: payload.count))
        bytesTail += payload.count
        retainedBytes += payload.count
    }

    private var oldestSequence: Int64? { recordsHead < records.count ? records[recordsHead].sequence : nil }

    /// Makes room for `count` bytes at the tail: compacts the live bytes to the front once the dead
    /// bytes before them are at least as many as the live ones and the new, growing the buffer
    /// otherwise. Compacting any earlier moved the whole window for every response once the window
    /// was full (a 32 KiB memmove per 32-byte echo: half the service agent's time in
    /// `keel bench cluster`); this way each byte is moved a bounded number of times, and the buffer
    /// settles at about twice the window.
    private mutating func reserve(_ count: Int) {
        guard bytes.count - bytesTail < count else { return }
        if bytesHead > 0 && bytesHead >= bytesTail - bytesHead + count {
            let live = bytesTail - bytesHead
            bytes.withUnsafeMutableBytes { buffer in
                // Safe because copyMemory is a memmove: the ranges may overlap.
                buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + bytesHead, byteCount: live)
            }
            for index in recordsHead..<records.count { records[index].offset -= bytesHead }
            records.removeFirst(recordsHead)
            recordsHead = 0
            bytesHead = 0
            bytesTail = live
        }
        if bytes.count - bytesTail < count {
            bytes.append(contentsOf: repeatElement(0, count: max(count - (bytes.count - bytesTail), bytes.count)))
        }
    }

    /// Calls `body` with each response held for request `sequence`, in the order they were produced.
    public func forEachResponse(of sequence: Int64, _ body: (ClusterTime, UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeBytes { buffer in
            for index in recordsHead..<records.count where records[index].sequence == sequence {
                let record = records[index]
                body(record.timestamp, UnsafeRawBufferPointer(rebasing: buffer[record.offset..<(record.offset + record.length)]))
            }
        }
    }

    /// Every response held, oldest first (for serialisation and comparison).
    func forEachRecord(_ body: (Int64, ClusterTime, UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeBytes { buffer in
            for record in records[recordsHead...] {
                body(record.sequence, record.timestamp, UnsafeRawBufferPointer(rebasing: buffer[record.offset..<(record.offset + record.length)]))
            }
        }
    }

    /// Restores a window from its serialised parts.
    init(startSequence: Int64) {
        self.startSequence = startSequence
    }

    mutating func restore(sequence: Int64, timestamp: ClusterTime, payload: UnsafeRawBufferPointer) {
        reserve(payload.count)
        if payload.count > 0 {
            bytes.withUnsafeMutableBytes { ($0.baseAddress! + bytesTail).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        }
        records.append(Record(sequence: sequence, timestamp: timestamp, offset: bytesTail, length: payload.count))
        bytesTail += payload.count
        retainedBytes += payload.count
    }
}

extension ResponseWindow: Equatable {
    /// Equal when they hold the same responses from the same start, however their buffers are laid out.
    public static func == (lhs: ResponseWindow, rhs: ResponseWindow) -> Bool {
        guard lhs.startSequence == rhs.startSequence, lhs.retainedBytes == rhs.retainedBytes,
            lhs.retainedResponses == rhs.retainedResponses
        else { return false }
        var left: [(Int64, ClusterTime, [UInt8])] = []
        lhs.forEachRecord { left.append(($0, $1, Array($2))) }
        var index = 0, same = true
        rhs.forEachRecord { sequence, timestamp, payload in
            if same && (left[index].0 != sequence || left[index].1 != timestamp || left[index].2 != Array(payload)) { same = false }
            index += 1
        }
        return same
    }
}
