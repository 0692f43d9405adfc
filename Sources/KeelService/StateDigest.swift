import KeelCore

/// An order-independent digest of a service's state, for tests that compare replicas
/// (`StateDigestible`). A Swift `Dictionary` iterates in an order that differs between processes,
/// so replicas holding the same state may list it differently; the digest therefore hashes each
/// entry on its own and adds the entry hashes (addition commutes), along with their count.
public struct StateDigest: Hashable, Sendable, CustomStringConvertible {
    /// The sum of the entries' hashes.
    public private(set) var value: UInt64 = 0
    /// Entries added.
    public private(set) var count: Int = 0

    public init() {}

    /// Adds one entry (hash each field of it into `entry` first).
    public mutating func add(_ entry: Entry) {
        value &+= entry.finalized
        count += 1
    }

    /// Adds one entry made of `fields`.
    public mutating func add(_ first: Int64, _ second: Int64 = 0, _ third: Int64 = 0) {
        var entry = Entry()
        entry.combine(first)
        entry.combine(second)
        entry.combine(third)
        add(entry)
    }

    public var description: String { "\(count) entries, digest \(String(value, radix: 16))" }

    /// The hash of one entry: FNV-1a over its fields, then a final mix (splitmix64) so that sums of
    /// similar entries do not cancel.
    public struct Entry: Sendable {
        var state: UInt64 = 0xcbf2_9ce4_8422_2325

        public init() {}

        /// Hashes `value` (8 bytes, little-endian) into the entry.
        public mutating func combine(_ value: Int64) {
            var bits = UInt64(bitPattern: value)
            for _ in 0..<8 {
                state = (state ^ (bits & 0xff)) &* 0x100_0000_01b3
                bits >>= 8
            }
        }

        /// Hashes `bytes` (and their count) into the entry.
        public mutating func combine(bytes: UnsafeRawBufferPointer) {
            combine(Int64(bytes.count))
            for byte in bytes { state = (state ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }

        /// Hashes `bytes` (and their count) into the entry.
        public mutating func combine(bytes: [UInt8]) {
            bytes.withUnsafeBytes { combine(bytes: $0) }
        }

        var finalized: UInt64 {
            var z = state &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}

/// A service that can state its replicated state as an order-independent digest — for tests and
/// simulations that check every replica holds the same state at the same log position. Include
/// everything the service's future behaviour depends on; never the member id, role or anything
/// else that legitimately differs between replicas.
public protocol StateDigestible {
    /// The digest of the state as of the last entry applied.
    func stateDigest() -> StateDigest
}
