import KeelCore

/// A session table's bytes could not be read; `message` says where and why.
public struct SessionTableDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { "session table: \(message)" }
}

// The serialised form, for snapshots (issue 9). Little-endian, sessions in ascending id order, so
// equal tables serialise to equal bytes:
//
//   header   | magic u32 "KSES" | version u16 = 1 | reserved u16 | sessionCount u32 | reserved u32 |
//   session  | id i64 | secret u64 | openedAt i64 | lastActivity i64 | lastAppliedSequence i64 |
//            | windowStart i64 | principalLength u32 | responseCount u32 | principal bytes |
//   response | sequence i64 | timestamp i64 | length u32 | payload bytes |        (responseCount of them)
extension SessionTable {
    static let magic: UInt32 = 0x5345_534B  // "KSES"
    static let formatVersion: UInt16 = 1

    /// The table as bytes (see the layout above).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + count * 64)
        append(Self.magic, to: &out)
        append(Self.formatVersion, to: &out)
        append(UInt16(0), to: &out)
        append(UInt32(count), to: &out)
        append(UInt32(0), to: &out)
        for id in sortedIDs {
            let session = self[id]!
            append(session.id, to: &out)
            append(session.secret, to: &out)
            append(session.openedAt.rawValue, to: &out)
            append(session.lastActivity.rawValue, to: &out)
            append(session.lastAppliedSequence, to: &out)
            append(session.window.startSequence, to: &out)
            append(UInt32(session.principal.count), to: &out)
            append(UInt32(session.window.retainedResponses), to: &out)
            out.append(contentsOf: session.principal)
            session.window.forEachRecord { sequence, timestamp, payload in
                append(sequence, to: &out)
                append(timestamp.rawValue, to: &out)
                append(UInt32(payload.count), to: &out)
                out.append(contentsOf: payload)
            }
        }
        return out
    }

    /// Reads a table `serialized()` wrote; throws naming the offset of the first problem.
    public init(serialized bytes: [UInt8], limits: ResponseWindowLimits) throws(SessionTableDecodingError) {
        self.init(limits: limits)
        var reader = ByteReader(bytes: bytes)
        guard try reader.read(UInt32.self) == Self.magic else { throw reader.error("not a session table (bad magic)") }
        let version = try reader.read(UInt16.self)
        guard version == Self.formatVersion else { throw reader.error("format version \(version), this build reads \(Self.formatVersion)") }
        _ = try reader.read(UInt16.self)
        let count = try reader.read(UInt32.self)
        _ = try reader.read(UInt32.self)
        var previousID = Int64.min
        for _ in 0..<count {
            let id = try reader.read(Int64.self)
            guard id >= 1, id > previousID else { throw reader.error("session id \(id) out of order or not positive") }
            previousID = id
            let secret = try reader.read(UInt64.self)
            let openedAt = ClusterTime(rawValue: try reader.read(Int64.self))
            let lastActivity = ClusterTime(rawValue: try reader.read(Int64.self))
            let lastApplied = try reader.read(Int64.self)
            let windowStart = try reader.read(Int64.self)
            guard lastApplied >= 0, windowStart >= 1, windowStart <= lastApplied + 1 else {
                throw reader.error("session \(id): window start \(windowStart) does not fit last applied \(lastApplied)")
            }
            let principalLength = Int(try reader.read(UInt32.self))
            let responses = Int(try reader.read(UInt32.self))
            let principal = try reader.bytes(principalLength)
            var window = ResponseWindow(startSequence: windowStart)
            for _ in 0..<responses {
                let sequence = try reader.read(Int64.self)
                let timestamp = ClusterTime(rawValue: try reader.read(Int64.self))
                let length = Int(try reader.read(UInt32.self))
                guard sequence >= windowStart, sequence <= lastApplied else {
                    throw reader.error("session \(id): a response to request \(sequence) outside its window")
                }
                try reader.bytes(length).withUnsafeBytes { window.restore(sequence: sequence, timestamp: timestamp, payload: $0) }
            }
            insert(SessionState(
                id: id, secret: secret, principal: principal, openedAt: openedAt, lastActivity: lastActivity,
                lastAppliedSequence: lastApplied, window: window))
        }
        guard reader.offset == bytes.count else { throw reader.error("\(bytes.count - reader.offset) bytes after the last session") }
    }

    private func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}

/// Reads little-endian fields from bytes, throwing at the end of them.
private struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    func error(_ text: String) -> SessionTableDecodingError { SessionTableDecodingError(message: "at byte \(offset): \(text)") }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws(SessionTableDecodingError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { throw error("truncated (\(size) bytes needed, \(bytes.count - offset) left)") }
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += size
        return T(littleEndian: value)
    }

    mutating func bytes(_ count: Int) throws(SessionTableDecodingError) -> [UInt8] {
        guard count >= 0, bytes.count - offset >= count else { throw error("truncated (\(count) bytes needed, \(bytes.count - offset) left)") }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }
}
