import KeelCore

/// Where a service writes its state when a snapshot is taken (`ClusteredService.onTakeSnapshot`).
///
/// The state is streamed: each `write` hands over the next bytes, which the runtime gathers into
/// checksummed chunks and writes out as they fill, so a state of gigabytes never needs a buffer of
/// that size. Write the state in any order you like (it need not be byte-identical across replicas),
/// but read it back in the same order in `onStart`.
public protocol SnapshotWriter: AnyObject {
    /// Appends `bytes` to the snapshot. Throws if the snapshot cannot be written (a full disk, …);
    /// let the error propagate: the runtime abandons that snapshot and keeps the previous one.
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// The state a service restarts from (handed to `ClusteredService.onStart`): the bytes its
/// `onTakeSnapshot` wrote, streamed back in the same order, already verified against their checksums.
public protocol SnapshotReader: AnyObject {
    /// The `ClusteredService.snapshotVersion` of the service that wrote the snapshot.
    var serviceVersion: UInt32 { get }
    /// Fills up to `buffer.count` bytes; returns how many (0 only at the end of the snapshot).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A snapshot ended before the bytes a reader expected, or holds something it cannot use.
public struct SnapshotFormatError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// The error for a snapshot written by a version of the service this build cannot read.
    public static func unsupportedVersion(found: UInt32, supported: UInt32) -> SnapshotFormatError {
        SnapshotFormatError("snapshot written by service version \(found); this build reads version \(supported)")
    }
}

extension SnapshotWriter {
    /// Writes `value` as 8 little-endian bytes.
    public func write(_ value: Int64) throws {
        try withUnsafeBytes(of: value.littleEndian) { try write($0) }
    }

    /// Writes `value` as 8 little-endian bytes.
    public func write(_ value: UInt64) throws {
        try withUnsafeBytes(of: value.littleEndian) { try write($0) }
    }

    /// Writes a length (4 bytes, little-endian) and then the bytes.
    public func writeLengthPrefixed(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(bytes.count <= Int(UInt32.max), "a length-prefixed field holds at most 4 GiB")
        try withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { try write($0) }
        try write(bytes)
    }
}

extension SnapshotReader {
    /// Fills `buffer` completely, or throws a `SnapshotFormatError` naming what was short.
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws {
        var filled = 0
        while filled < buffer.count {
            let count = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            guard count > 0 else {
                throw SnapshotFormatError("snapshot ended after \(filled) of the \(buffer.count) bytes expected")
            }
            filled += count
        }
    }

    /// Reads 8 little-endian bytes.
    public func readInt64() throws -> Int64 {
        var value: Int64 = 0
        try withUnsafeMutableBytes(of: &value) { try readExactly(into: $0) }
        return Int64(littleEndian: value)
    }

    /// Reads 8 little-endian bytes.
    public func readUInt64() throws -> UInt64 {
        UInt64(bitPattern: try readInt64())
    }

    /// Reads a field written by `writeLengthPrefixed`, refusing one longer than `maxBytes`.
    public func readLengthPrefixed(maxBytes: Int) throws -> [UInt8] {
        var length: UInt32 = 0
        try withUnsafeMutableBytes(of: &length) { try readExactly(into: $0) }
        let count = Int(UInt32(littleEndian: length))
        guard count <= maxBytes else { throw SnapshotFormatError("a field of \(count) bytes, more than the \(maxBytes) allowed") }
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try readExactly(into: $0) }
        return bytes
    }
}
