import KeelCore

/// What a `MemberAuthenticationFrame` carries.
public enum MemberAuthenticationStep: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// The sender's fresh 32-byte nonce (from the OS's random source).
    case nonce = 1
    /// The sender's 32-byte HMAC-SHA256 proof over both nonces (see `MemberProof` in KeelRuntime).
    case proof = 2

    public var description: String {
        switch self {
        case .nonce: "nonce"
        case .proof: "proof"
        }
    }
}

/// Member ⇄ member, after the handshakes, only when the members are configured with a cluster
/// secret (`keel node --cluster-secret-file`): each side sends a fresh nonce, then an HMAC-SHA256
/// of both nonces, both member ids and the cluster id keyed with the secret. The secret itself never
/// crosses the wire; a proof is bound to the two nonces of one connection, so a recorded proof is
/// useless on another.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 48           |version| 0x22  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |  step (u16)   |                 reserved = 0 (6 bytes)        |
///     +---------------+-----------------------------------------------+
///  16 |                                                               |
///     |        value (32 bytes): the nonce (step 1) or the proof      |
///     |        (step 2)                                               |
///     |                                                               |
///     +---------------------------------------------------------------+  48
/// step: 1 nonce, 2 proof.
/// ```
public struct MemberAuthenticationFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 48
    /// Bytes of a nonce or a proof.
    public static let valueBytes = 32

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .memberAuthentication, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        let step = frame.wireLoad(UInt16.self, at: 8)
        try FrameCheck.require(MemberAuthenticationStep(rawValue: step) != nil, "step", Int64(step))
        try FrameCheck.reservedZero(frame, at: 10, count: 6)
        bytes = frame
    }

    public var step: MemberAuthenticationStep { MemberAuthenticationStep(rawValue: bytes.wireLoad(UInt16.self, at: 8))! }
    /// The nonce or proof, in place.
    public var value: UnsafeRawBufferPointer { bytes.wireSlice(at: 16, count: Self.valueBytes) }

    /// Outbound encoder; returns the frame length. `value` must be exactly 32 bytes.
    @discardableResult
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, step: MemberAuthenticationStep, value: UnsafeRawBufferPointer) -> Int {
        precondition(value.count == valueBytes, "a member nonce or proof is 32 bytes")
        FrameHeader.write(into: buffer, length: length, type: .memberAuthentication)
        buffer.wireStore(step.rawValue, at: 8)
        buffer.wireStore(UInt16(0), at: 10)
        buffer.wireStore(UInt32(0), at: 12)
        buffer.wireCopy(value, at: 16)
        return length
    }
}
