import KeelCore

/// Where a client reaches one member of the cluster: its id and its client port.
public struct ClusterMemberAddress: Sendable, Equatable, CustomStringConvertible {
    public var id: MemberID
    /// Dotted IPv4 or `localhost` (the plain-socket transport does not resolve names).
    public var host: String
    /// The member's client port (not its member-to-member port).
    public var clientPort: UInt16

    public init(id: MemberID, host: String, clientPort: UInt16) {
        self.id = id
        self.host = host
        self.clientPort = clientPort
    }

    public var description: String { "\(id)@\(host):\(clientPort)" }

    /// Parses the member list of `keel node --members`: `ID=HOST:MEMBERPORT:CLIENTPORT`, comma
    /// separated (e.g. `0=127.0.0.1:9010:9020,1=127.0.0.1:9011:9021`). The client keeps only the
    /// client ports. Returns nil, with no partial result, when any entry is malformed.
    public static func parseMemberList(_ text: String) -> [ClusterMemberAddress]? {
        var members: [ClusterMemberAddress] = []
        for entry in text.split(separator: ",") {
            let sides = entry.split(separator: "=", omittingEmptySubsequences: false)
            guard sides.count == 2, let id = Int32(sides[0]), id >= 0 else { return nil }
            let fields = sides[1].split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 3, !fields[0].isEmpty, UInt16(fields[1]) != nil,
                let clientPort = UInt16(fields[2]), clientPort > 0
            else { return nil }
            guard !members.contains(where: { $0.id.rawValue == id }) else { return nil }
            members.append(ClusterMemberAddress(id: MemberID(id), host: String(fields[0]), clientPort: clientPort))
        }
        return members.isEmpty ? nil : members
    }
}

/// The limits and timeouts of a `ClusterClient`. Everything is bounded: the buffers are allocated
/// once, at start, from these numbers.
public struct ClusterClientConfiguration: Sendable {
    /// The members to try, in order, until one is (or names) the leader.
    public var members: [ClusterMemberAddress]
    /// Opaque bytes sent with every connect (≤ 4096).
    public var credentials: [UInt8]
    /// The most requests offered but not yet acknowledged (by a response); past it, `offer`
    /// reports back-pressure.
    public var maxOutstandingRequests: Int
    /// The most bytes of request frames offered but not yet acknowledged.
    public var outstandingBytesMax: Int
    /// The largest frame accepted from the cluster (response payload + 32 bytes).
    public var maxInboundFrameBytes: Int
    /// How long one attempt (TCP connect, connect reply, session open) may take before the client
    /// gives up on that member and tries the next.
    public var attemptTimeoutNanos: Int64
    /// How long the client keeps looking for a leader, from losing one (or from the start), before
    /// it fails with `ClusterClientError.noLeader`.
    public var failoverTimeoutNanos: Int64
    /// The pause after a round of attempts that found no leader (elections take a few hundred ms).
    public var retryDelayNanos: Int64
    /// With requests unacknowledged, silence from the leader for this long counts as losing it.
    public var responseTimeoutNanos: Int64
    /// A keep-alive goes out when nothing else was sent on an open session for this long.
    public var keepAliveIntervalNanos: Int64
    /// Answers the cluster authenticator's challenges (nil: a challenge fails the client).
    public var challengeResponder: (@Sendable ([UInt8]) -> [UInt8])?

    public init(
        members: [ClusterMemberAddress],
        credentials: [UInt8] = [],
        maxOutstandingRequests: Int = 4096,
        outstandingBytesMax: Int = 4 << 20,
        maxInboundFrameBytes: Int = 1 << 20,
        attemptTimeoutNanos: Int64 = 1_000_000_000,
        failoverTimeoutNanos: Int64 = 15_000_000_000,
        retryDelayNanos: Int64 = 50_000_000,
        responseTimeoutNanos: Int64 = 3_000_000_000,
        keepAliveIntervalNanos: Int64 = 500_000_000
    ) {
        precondition(!members.isEmpty, "a client needs at least one member address")
        precondition(credentials.count <= 4096, "credentials longer than 4096 bytes")
        precondition(maxOutstandingRequests > 0 && outstandingBytesMax >= 64, "outstanding limits must be positive")
        precondition(maxInboundFrameBytes >= 64, "inbound frame limit too small")
        precondition(attemptTimeoutNanos > 0 && failoverTimeoutNanos > 0 && responseTimeoutNanos > 0, "timeouts must be positive")
        precondition(retryDelayNanos >= 0 && keepAliveIntervalNanos > 0, "intervals must be positive")
        self.members = members
        self.credentials = credentials
        self.maxOutstandingRequests = maxOutstandingRequests
        self.outstandingBytesMax = outstandingBytesMax
        self.maxInboundFrameBytes = maxInboundFrameBytes
        self.attemptTimeoutNanos = attemptTimeoutNanos
        self.failoverTimeoutNanos = failoverTimeoutNanos
        self.retryDelayNanos = retryDelayNanos
        self.responseTimeoutNanos = responseTimeoutNanos
        self.keepAliveIntervalNanos = keepAliveIntervalNanos
    }
}
