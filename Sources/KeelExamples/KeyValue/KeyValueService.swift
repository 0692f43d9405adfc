import KeelCore
import KeelService

/// A replicated key-value store (issue 8 §5): put, get, delete and compare-and-set, each answered
/// with a `KeyValueResponse`. Malformed request bytes get a `.malformed` response naming the
/// problem and change nothing. `keel node --service kv` hosts it; `keel demo` drives it.
public struct KeyValueService: ClusteredService, StateDigestible {
    /// The data (iterated only for snapshots and digests, where order does not matter).
    public private(set) var entries: [[UInt8]: [UInt8]] = [:]
    /// Requests applied, malformed ones included.
    public private(set) var requestsApplied: Int64 = 0

    public init() {}

    public mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws {
        guard let snapshot else { return }
        guard snapshot.serviceVersion == snapshotVersion else {
            throw SnapshotFormatError.unsupportedVersion(found: snapshot.serviceVersion, supported: snapshotVersion)
        }
        requestsApplied = try snapshot.readInt64()
        let count = try snapshot.readInt64()
        guard count >= 0 else { throw SnapshotFormatError("key-value snapshot with \(count) entries") }
        // Sized once: growing a dictionary of a million entries step by step rehashes it ~20 times
        // (a tenth of a restart's load in a profile). Capped, so a wrong count cannot reserve gigabytes.
        entries.reserveCapacity(Int(min(count, 1 << 24)))
        for _ in 0..<count {
            let key = try snapshot.readLengthPrefixed(maxBytes: KeyValueRequest.keyBytesMax)
            entries[key] = try snapshot.readLengthPrefixed(maxBytes: Int(UInt32.max))
        }
    }

    public mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime) {}
    public mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason) {}

    public mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer) {
        requestsApplied += 1
        let response: KeyValueResponse
        do {
            response = apply(try KeyValueRequest.decode(message))
        } catch {
            response = KeyValueResponse(status: .malformed, value: Array(error.description.utf8))
        }
        session.offer(response.encoded())
    }

    /// Applies one decoded request.
    public mutating func apply(_ request: KeyValueRequest) -> KeyValueResponse {
        switch request {
        case .put(let key, let value):
            entries[key] = value
            return KeyValueResponse(status: .ok)
        case .get(let key):
            guard let value = entries[key] else { return KeyValueResponse(status: .notFound) }
            return KeyValueResponse(status: .ok, value: value)
        case .delete(let key):
            return KeyValueResponse(status: entries.removeValue(forKey: key) == nil ? .notFound : .ok)
        case .compareAndSet(let key, let expected, let new):
            let current = entries[key]
            guard current == expected else { return KeyValueResponse(status: .mismatch, value: current ?? []) }
            entries[key] = new
            return KeyValueResponse(status: .ok)
        }
    }

    public mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws {
        try writer.write(requestsApplied)
        try writer.write(Int64(entries.count))
        // In key order, not the dictionary's (a per-process hash order): equal states, equal snapshots.
        // The service applies nothing while it writes (the leader's clients wait), so: one sort of
        // the entries (no lookup per key afterwards), and the length-prefixed fields gathered into
        // a staging buffer handed over 64 KiB at a time instead of four writer calls per entry.
        let sorted = entries.sorted { Self.precedes($0.key, $1.key) }
        var staging = SnapshotStaging(writer: writer)
        for (key, value) in sorted {
            try staging.appendLengthPrefixed(key)
            try staging.appendLengthPrefixed(value)
        }
        try staging.flush()
    }

    /// Byte-wise lexicographic order of two keys (what `lexicographicallyPrecedes` gives, without
    /// its generic per-element cost).
    static func precedes(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        left.withUnsafeBytes { a in
            right.withUnsafeBytes { b in
                let common = min(a.count, b.count)
                var index = 0
                while index < common {
                    if a[index] != b[index] { return a[index] < b[index] }
                    index += 1
                }
                return a.count < b.count
            }
        }
    }

    public func stateDigest() -> StateDigest {
        var digest = StateDigest()
        digest.add(-1, requestsApplied)
        for (key, value) in entries {
            var entry = StateDigest.Entry()
            entry.combine(bytes: key)
            entry.combine(bytes: value)
            digest.add(entry)
        }
        return digest
    }
}

/// Length-prefixed fields gathered for a `SnapshotWriter` (the bytes `writeLengthPrefixed` would
/// write, in the same order), handed over when 64 KiB are ready; a field larger than that goes
/// straight through.
struct SnapshotStaging {
    let writer: any SnapshotWriter
    var bytes: [UInt8] = []
    static let capacityBytes = 64 << 10

    init(writer: any SnapshotWriter) {
        self.writer = writer
        bytes.reserveCapacity(Self.capacityBytes + 8)
    }

    mutating func appendLengthPrefixed(_ field: [UInt8]) throws {
        if field.count > Self.capacityBytes {
            try flush()
            try field.withUnsafeBytes { try writer.writeLengthPrefixed($0) }
            return
        }
        if bytes.count + 4 + field.count > Self.capacityBytes { try flush() }
        withUnsafeBytes(of: UInt32(field.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: field)
    }

    mutating func flush() throws {
        guard !bytes.isEmpty else { return }
        try bytes.withUnsafeBytes { try writer.write($0) }
        bytes.removeAll(keepingCapacity: true)
    }
}
