import KeelCore

/// The payload of a session-open log entry: what every replica must know of a session from its
/// start — the secret the leader issued and the principal its authenticator named.
///
/// ```
/// | secret u64 | principalLength u32 | reserved u32 = 0 | principal bytes |
/// ```
enum SessionOpenEntry {
    static let fixedBytes = 16

    static func encodedLength(principalByteCount: Int) -> Int { fixedBytes + principalByteCount }

    /// Outbound: writes the payload into `buffer`; returns its length.
    static func encode(into buffer: UnsafeMutableRawBufferPointer, secret: UInt64, principal: UnsafeRawBufferPointer) -> Int {
        precondition(buffer.count >= fixedBytes + principal.count, "open entry buffer too small")
        buffer.storeBytes(of: secret.littleEndian, toByteOffset: 0, as: UInt64.self)
        buffer.storeBytes(of: UInt32(principal.count).littleEndian, toByteOffset: 8, as: UInt32.self)
        buffer.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
        if principal.count > 0 { (buffer.baseAddress! + fixedBytes).copyMemory(from: principal.baseAddress!, byteCount: principal.count) }
        return fixedBytes + principal.count
    }

    /// Inbound: the secret and principal, or nil when the payload is not a valid open entry (an
    /// entry from a build before sessions carried secrets has an empty payload).
    static func decode(_ payload: UnsafeRawBufferPointer) -> (secret: UInt64, principal: [UInt8])? {
        guard payload.count >= fixedBytes else { return nil }
        let length = Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        guard payload.count == fixedBytes + length else { return nil }
        let secret = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        return (secret, Array(payload[fixedBytes...]))
    }
}
