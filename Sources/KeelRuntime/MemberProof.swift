import CKeelCrypto
import KeelCore

/// Member-to-member authentication with the cluster secret (issue 8 §2): after the handshakes each
/// side sends a fresh 32-byte nonce, then an HMAC-SHA256, keyed with the secret, of
///
/// ```
/// "keel member proof v1" | role (u8: 1 connecting, 2 accepting) | clusterID (u64 LE)
///   | connecting member id (i32 LE) | accepting member id (i32 LE)
///   | connecting member's nonce (32) | accepting member's nonce (32)
/// ```
///
/// The secret never crosses the wire. Both nonces bind a proof to one connection (a recorded proof
/// fails against a fresh nonce); the role byte keeps one side's proof from being reflected back as
/// the other's.
public enum MemberProof {
    /// Bytes of a nonce and of a proof.
    public static let bytes = 32

    /// Which end of the connection a proof speaks for.
    public enum Role: UInt8, Sendable {
        case connecting = 1
        case accepting = 2
    }

    /// The two ends of one member connection and their nonces.
    public struct Exchange: Sendable, Equatable {
        public var clusterID: UInt64
        public var connectingMember: MemberID
        public var acceptingMember: MemberID
        public var connectingNonce: [UInt8]
        public var acceptingNonce: [UInt8]

        public init(clusterID: UInt64, connectingMember: MemberID, acceptingMember: MemberID, connectingNonce: [UInt8], acceptingNonce: [UInt8]) {
            precondition(connectingNonce.count == MemberProof.bytes && acceptingNonce.count == MemberProof.bytes, "member nonces are 32 bytes")
            self.clusterID = clusterID
            self.connectingMember = connectingMember
            self.acceptingMember = acceptingMember
            self.connectingNonce = connectingNonce
            self.acceptingNonce = acceptingNonce
        }

        /// The bytes the HMAC covers for `role`.
        func message(for role: Role) -> [UInt8] {
            var message = Array("keel member proof v1".utf8)
            message.append(role.rawValue)
            withUnsafeBytes(of: clusterID.littleEndian) { message += $0 }
            withUnsafeBytes(of: connectingMember.rawValue.littleEndian) { message += $0 }
            withUnsafeBytes(of: acceptingMember.rawValue.littleEndian) { message += $0 }
            message += connectingNonce
            message += acceptingNonce
            return message
        }
    }

    /// The proof `role` sends for `exchange`, keyed with `secret` (1…4096 bytes).
    public static func compute(secret: [UInt8], role: Role, exchange: Exchange) -> [UInt8] {
        precondition(!secret.isEmpty && secret.count <= 4096, "a cluster secret is 1…4096 bytes")
        return hmacSHA256(key: secret, message: exchange.message(for: role))
    }

    /// HMAC-SHA256 (RFC 2104) of `message` keyed with `key`, by libcrypto.
    public static func hmacSHA256(key secret: [UInt8], message: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 64)
        var digestLength: UInt32 = 0
        let result = secret.withUnsafeBytes { key in
            message.withUnsafeBytes { data in
                digest.withUnsafeMutableBytes { output in
                    HMAC(EVP_sha256(), key.baseAddress, Int32(key.count),
                         data.baseAddress!.assumingMemoryBound(to: UInt8.self), data.count,
                         output.baseAddress!.assumingMemoryBound(to: UInt8.self), &digestLength)
                }
            }
        }
        // libcrypto fails HMAC-SHA256 only when it cannot allocate: nothing to carry on with.
        precondition(result != nil && digestLength == UInt32(bytes), "HMAC-SHA256 failed in libcrypto")
        return Array(digest[0..<bytes])
    }

    /// Whether `proof` is what `role` must send for `exchange` (compared in constant time).
    public static func verify(_ proof: UnsafeRawBufferPointer, secret: [UInt8], role: Role, exchange: Exchange) -> Bool {
        guard proof.count == bytes else { return false }
        let expected = compute(secret: secret, role: role, exchange: exchange)
        return expected.withUnsafeBytes { CRYPTO_memcmp($0.baseAddress, proof.baseAddress, bytes) == 0 }
    }
}

/// One member connection's progress through the secret exchange (only with a cluster secret).
struct MemberAuthentication {
    /// This side's nonce, sent after its handshake.
    let localNonce: [UInt8]
    /// The peer's nonce, once received; this side's proof went out then.
    var peerNonce: [UInt8]?
    /// The peer's handshake was accepted (the identity checks passed).
    var handshakeAccepted = false

    init(localNonce: [UInt8]) {
        precondition(localNonce.count == MemberProof.bytes, "member nonces are 32 bytes")
        self.localNonce = localNonce
    }
}
