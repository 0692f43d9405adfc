import KeelCore

/// What an `Authenticator` decided about a connecting client.
public enum AuthenticationDecision: Sendable, Equatable {
    /// Let the client in as `principal` (opaque bytes the service sees as `ClientSession.principal`).
    case accept(principal: [UInt8])
    /// Ask the client first: `challenge` goes to it, and its answer comes back to
    /// `Authenticator.verify(challenge:response:credentials:)`.
    case challenge([UInt8])
    /// Refuse: the client gets a connect-rejected (authentication failed) with `reason`, and no session.
    case reject(reason: String)
}

/// Decides who may open or reattach a session (issue 8 §2), consulted by the leader on every
/// connect and reattach before anything reaches the log. Called on the consensus agent's thread:
/// answer quickly, without blocking I/O.
public protocol Authenticator: Sendable {
    /// The client's connect (or reattach) credentials, at most 4096 bytes.
    func authenticate(credentials: UnsafeRawBufferPointer) -> AuthenticationDecision
    /// The client's `response` to a `challenge` this authenticator issued on the same connection
    /// (for the connect that presented `credentials`). May challenge again.
    func verify(challenge: [UInt8], response: UnsafeRawBufferPointer, credentials: [UInt8]) -> AuthenticationDecision
    /// Whether a connection authenticated as `principal` may send admin requests.
    func mayAdminister(principal: [UInt8]) -> Bool
}

extension Authenticator {
    public func verify(challenge: [UInt8], response: UnsafeRawBufferPointer, credentials: [UInt8]) -> AuthenticationDecision {
        .reject(reason: "unexpected challenge response")
    }
}

/// The default: every client is accepted, with an empty principal, and may administer.
public struct AcceptAllAuthenticator: Authenticator {
    public init() {}
    public func authenticate(credentials: UnsafeRawBufferPointer) -> AuthenticationDecision { .accept(principal: []) }
    public func mayAdminister(principal: [UInt8]) -> Bool { true }
}

/// A shared secret: the client presents `NAME:SECRET` (UTF-8) as its credentials; it is accepted as
/// principal `NAME` when `SECRET` equals the configured secret (compared in constant time).
/// `administrators` names the principals allowed to send admin requests (none when empty).
///
/// The credentials cross the network as they are: use it on trusted networks, or tunnel clients
/// through TLS (Keel does not terminate TLS itself).
public struct SharedSecretAuthenticator: Authenticator {
    let secret: [UInt8]
    let administrators: Set<[UInt8]>

    /// `secret` must be 1…4096 bytes.
    public init(secret: [UInt8], administrators: [String] = []) {
        precondition(!secret.isEmpty && secret.count <= 4096, "a shared secret is 1…4096 bytes")
        self.secret = secret
        self.administrators = Set(administrators.map { Array($0.utf8) })
    }

    /// The credentials a client presents: `name:secret`.
    public static func credentials(name: String, secret: [UInt8]) -> [UInt8] { Array(name.utf8) + [0x3A] + secret }

    public func authenticate(credentials: UnsafeRawBufferPointer) -> AuthenticationDecision {
        guard let colon = credentials.firstIndex(of: 0x3A), colon > 0 else {
            return .reject(reason: "credentials must be NAME:SECRET")
        }
        let name = Array(credentials[..<colon])
        guard name.count <= 64, name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .reject(reason: "the name must be 1…64 printable characters")
        }
        let presented = credentials[(colon + 1)...]
        // Constant time in the presented bytes: every byte is compared whatever the first difference.
        var difference = UInt8(truncatingIfNeeded: presented.count ^ secret.count)
        for (index, byte) in presented.enumerated() { difference |= byte ^ secret[index % secret.count] }
        guard difference == 0 else { return .reject(reason: "wrong secret for '\(String(decoding: name, as: UTF8.self))'") }
        return .accept(principal: name)
    }

    public func mayAdminister(principal: [UInt8]) -> Bool { administrators.contains(principal) }
}
