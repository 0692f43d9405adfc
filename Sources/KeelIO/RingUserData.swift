import KeelCore

/// Identifies one user of a shared `Ring` (the storage, later the transport). The ring sorts every
/// completion into the completion queue of the owner that submitted the operation.
public struct RingOwner: Hashable, Sendable, CustomStringConvertible {
    /// 1...254; 0 is the ring's own operations, 255 is reserved (liburing's timeout marker).
    public let tag: UInt8
    init(tag: UInt8) { self.tag = tag }
    public var description: String { "ring-owner#\(tag)" }
}

/// The 64-bit `user_data` of a submission, which the kernel hands back unchanged with its completion.
/// Everything needed to route and report a completion is packed into it, so that submitting an
/// operation needs no allocation, no closure and no lookup table:
///
/// ```
///  63        56 55        48 47                                                0
/// +------------+------------+---------------------------------------------------+
/// | owner tag  | operation  |                 IOToken (48 bits)                 |
/// +------------+------------+---------------------------------------------------+
/// ```
/// `0xFFFF_FFFF_FFFF_FFFF` is never produced: liburing uses it for its own timeout entries.
struct RingUserData: Equatable {
    var rawValue: UInt64

    /// The largest token an operation may carry.
    static let tokenMask: UInt64 = (1 << 48) - 1
    /// liburing's marker for internal timeouts (`LIBURING_UDATA_TIMEOUT`).
    static let liburingTimeout = RingUserData(rawValue: .max)
    /// The ring's own owner tag (the eventfd read that carries wake-ups).
    static let ringTag: UInt8 = 0
    /// Never handed out: an owner tag of 255 with operation 255 would collide with `liburingTimeout`.
    static let reservedTag: UInt8 = 255

    init(rawValue: UInt64) { self.rawValue = rawValue }

    @inline(__always)
    init(ownerTag: UInt8, operation: IOOperation, token: IOToken) {
        precondition(token.rawValue <= Self.tokenMask, "an IOToken submitted through a Ring must fit in 48 bits")
        rawValue = UInt64(ownerTag) << 56 | UInt64(operation.rawValue) << 48 | token.rawValue
    }

    @inline(__always) var ownerTag: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 56) }
    @inline(__always) var operationCode: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 48) }
    /// The operation, or nil for a code no `IOOperation` has (only liburing's timeout marker).
    @inline(__always) var operation: IOOperation? { IOOperation(rawValue: operationCode) }
    @inline(__always) var token: IOToken { IOToken(rawValue & Self.tokenMask) }
}

/// One completion as the ring delivers it to an owner: the operation's identity, its result, and the
/// kernel's completion flags (which a multishot receive needs for its buffer id and "more" bit).
public struct RingCompletion: Sendable, Equatable {
    /// The token given when the operation was queued.
    public var token: IOToken
    /// The operation the completion belongs to.
    public var operation: IOOperation
    /// Bytes transferred (or 0), or the negated errno when negative.
    public var result: Int32
    /// `io_uring_cqe.flags` (IORING_CQE_F_MORE, IORING_CQE_F_BUFFER and the buffer id).
    public var flags: UInt32

    /// The same completion in the protocol-level form the Storage and Transport hand out.
    public var ioCompletion: IOCompletion { IOCompletion(token: token, operation: operation, result: result) }
}
