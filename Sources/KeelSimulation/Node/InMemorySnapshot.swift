import KeelService

/// A `SnapshotWriter` that keeps the bytes in memory (tests and simulations: round trips of service
/// and timer state).
public final class InMemorySnapshotWriter: SnapshotWriter {
    /// The bytes written, in order.
    public private(set) var bytes: [UInt8] = []
    /// Calls to `write`.
    public private(set) var writes = 0

    public init() {}

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        self.bytes.append(contentsOf: bytes)
        writes += 1
    }
}

/// A `SnapshotReader` over bytes in memory, handing them out at most `readBytesMax` at a time (so
/// readers are tested against short reads).
public final class InMemorySnapshotReader: SnapshotReader {
    public let serviceVersion: UInt32
    private let bytes: [UInt8]
    private var offset = 0
    private let readBytesMax: Int

    public init(bytes: [UInt8], serviceVersion: UInt32 = 1, readBytesMax: Int = 7) {
        self.bytes = bytes
        self.serviceVersion = serviceVersion
        self.readBytesMax = readBytesMax
    }

    /// Bytes not yet read.
    public var remaining: Int { bytes.count - offset }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, readBytesMax, bytes.count - offset)
        if count > 0 {
            bytes.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: count)
            }
        }
        offset += count
        return count
    }
}
