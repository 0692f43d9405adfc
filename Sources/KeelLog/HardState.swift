import KeelCore

/// Raft's persistent state (term and vote) and the node's identity, stored atomically
/// (two alternate slots, fdatasync'ed before `save` returns, in both durability modes).
public struct HardState: Sendable, Equatable {
    /// The latest term this node has seen.
    public var currentTerm: Term
    /// The member voted for in `currentTerm`, if any.
    public var votedFor: MemberID?
    /// The cluster this node belongs to, fixed at its first start.
    public var clusterID: UInt64
    /// `/proc/sys/kernel/random/boot_id` of the machine that last wrote this state (128 bits), so a
    /// node can tell that its page cache may have been lost since (DESIGN.md decision 7).
    public var bootID: UInt128

    public init(currentTerm: Term, votedFor: MemberID?, clusterID: UInt64, bootID: UInt128) {
        self.currentTerm = currentTerm
        self.votedFor = votedFor
        self.clusterID = clusterID
        self.bootID = bootID
    }
}

/// The hard-state file ("hard-state"): load once at start, save before acting on a new term or vote.
public final class HardStateStore<S: Storage> {
    /// The file name inside the log's storage.
    public static var fileName: String { "hard-state" }
    static var magic: UInt32 { 0x5453_484B }  // "KHST"

    private var record: SlottedRecordFile<S>
    /// The state last saved or loaded; nil on a fresh node.
    public private(set) var current: HardState?

    /// Opens the file (creating it when missing) and loads the newest valid slot.
    public init(storage: S) throws(LogError) {
        var payload: [UInt8]?
        record = try SlottedRecordFile(storage: storage, name: Self.fileName, magic: Self.magic, current: &payload)
        if let payload {
            current = payload.withUnsafeBytes { raw in
                let vote = Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: Int32.self))
                let low = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 20, as: UInt64.self))
                let high = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 28, as: UInt64.self))
                return HardState(
                    currentTerm: Term(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: Int64.self))),
                    votedFor: vote < 0 ? nil : MemberID(vote),
                    clusterID: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt64.self)),
                    bootID: UInt128(high) << 64 | UInt128(low)
                )
            }
        }
    }

    /// Writes `state` durably (write + fdatasync of one slot) and makes it current.
    public func save(_ state: HardState) throws(LogError) {
        precondition(state.votedFor.map { $0.rawValue >= 0 } ?? true, "member ids are non-negative")
        var bytes = [UInt8](repeating: 0, count: 36)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: state.currentTerm.rawValue.littleEndian, toByteOffset: 0, as: Int64.self)
            raw.storeBytes(of: (state.votedFor?.rawValue ?? -1).littleEndian, toByteOffset: 8, as: Int32.self)
            raw.storeBytes(of: state.clusterID.littleEndian, toByteOffset: 12, as: UInt64.self)
            raw.storeBytes(of: UInt64(truncatingIfNeeded: state.bootID).littleEndian, toByteOffset: 20, as: UInt64.self)
            raw.storeBytes(of: UInt64(truncatingIfNeeded: state.bootID >> 64).littleEndian, toByteOffset: 28, as: UInt64.self)
        }
        try record.write(bytes)
        current = state
    }

    deinit { record.close() }
}
