import KeelCore

/// One member of the cluster as the configuration names it: `id=host:memberPort:clientPort`.
public struct MemberEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// The member's id.
    public var id: MemberID
    /// Host (an IPv4 address) the member listens on.
    public var host: String
    /// Port for the other members (handshake, Raft).
    public var memberPort: UInt16
    /// Port for clients.
    public var clientPort: UInt16

    public init(id: MemberID, host: String, memberPort: UInt16, clientPort: UInt16) {
        self.id = id
        self.host = host
        self.memberPort = memberPort
        self.clientPort = clientPort
    }

    public var description: String { "\(id.rawValue)=\(host):\(memberPort):\(clientPort)" }

    /// Parses `0=127.0.0.1:9010:9020,1=…` — the form `keel node --members` takes. Throws a
    /// `ConfigurationError` naming the first problem (bad syntax, bad port, duplicate id or address).
    public static func parseList(_ text: String) throws(ConfigurationError) -> [MemberEndpoint] {
        var members: [MemberEndpoint] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let id = Int32(parts[0]), id >= 0 else {
                throw ConfigurationError("bad member '\(item)': expected ID=HOST:MEMBER_PORT:CLIENT_PORT with a non-negative ID")
            }
            let address = parts[1].split(separator: ":", omittingEmptySubsequences: false)
            guard address.count == 3, !address[0].isEmpty else {
                throw ConfigurationError("bad member '\(item)': expected ID=HOST:MEMBER_PORT:CLIENT_PORT")
            }
            guard let memberPort = UInt16(address[1]), memberPort > 0, let clientPort = UInt16(address[2]), clientPort > 0 else {
                throw ConfigurationError("bad member '\(item)': ports must be 1…65535")
            }
            members.append(MemberEndpoint(id: MemberID(id), host: String(address[0]), memberPort: memberPort, clientPort: clientPort))
        }
        guard !members.isEmpty else { throw ConfigurationError("the member list is empty") }
        var seenIDs = Set<MemberID>()
        var seenAddresses = Set<String>()
        for member in members {
            guard seenIDs.insert(member.id).inserted else { throw ConfigurationError("duplicate member id \(member.id.rawValue) in the member list") }
            for port in [member.memberPort, member.clientPort] {
                guard seenAddresses.insert("\(member.host):\(port)").inserted else {
                    throw ConfigurationError("address \(member.host):\(port) is used twice in the member list")
                }
            }
        }
        return members
    }
}

/// A configuration problem, with one line that says what is wrong.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What every member of one cluster must agree on, plus which member this is.
public struct ClusterConfiguration: Sendable {
    /// The cluster's name (`--cluster-id`); its hash is the numeric cluster id in files and handshakes.
    public var clusterName: String
    /// Every member, in id order.
    public var members: [MemberEndpoint]
    /// This member.
    public var selfID: MemberID
    /// What an acknowledgement promises (DESIGN.md decision 7).
    public var durability: DurabilityMode
    /// Bytes per log segment.
    public var segmentLengthBytes: Int64 = 64 << 20
    /// The largest request or response payload.
    public var maxMessageBytes: Int = 1 << 20
    /// Election timeout range and heartbeat (DESIGN.md defaults).
    public var electionTimeoutMinNanos: Int64 = 300_000_000
    public var electionTimeoutMaxNanos: Int64 = 600_000_000
    public var heartbeatIntervalNanos: Int64 = 50_000_000
    /// Most client connections served at once.
    public var maxClientConnections = 128
    /// The leader closes (reason: timeout) a session it has heard nothing from — no request, no
    /// keep-alive — for this long, in cluster time; a new leader gives every session this long
    /// again from when it is ready.
    public var sessionTimeoutNanos: Int64 = 10_000_000_000
    /// How much of each session's responses every replica keeps for retried requests.
    public var responseWindow = ResponseWindowLimits()
    /// The leader appends a snapshot marker whenever this many log bytes followed the last one
    /// (`keel node --snapshot-every-mib`); nil: snapshots only on an admin request. Local to the
    /// member (only the leader's matters), so not part of the digest.
    public var snapshotIntervalBytes: Int64?
    /// Snapshots each member keeps in its archive (older ones are removed after a new one).
    public var snapshotsKept = 3
    /// Compaction (issue 10): once the archive keeps `snapshotsKept` snapshots, the log is kept
    /// from this many bytes before the oldest of them (rounded down to a segment start) and the
    /// segments before that are deleted. The slack lets a follower that lags briefly be served from
    /// the log rather than sent a snapshot. nil: the log is never compacted. Local to the member.
    public var compactionSlackBytes: Int64? = 64 << 20
    /// This member lost its whole directory and rejoins a running cluster (`keel node --rejoin`):
    /// when it finds no hard state it starts with its votes and acknowledgements forgotten
    /// (`RaftHardState.forgottenBootID`), non-voting until a leader has caught it up — by a shipped
    /// snapshot when the leader's log no longer starts at 0. Ignored when hard state exists. Local
    /// to the member: not part of the digest.
    public var rejoining = false
    /// Where this member connects to reach a member, when not at its listed address (e.g. through
    /// a fault proxy on that one link). Local to this member: not part of the digest.
    public var memberRoutes: [MemberID: (host: String, port: UInt16)] = [:]
    /// The cluster secret (`keel node --cluster-secret-file`, 1…4096 bytes): when set, every member
    /// connection is authenticated by an HMAC-SHA256 challenge/response over both sides' nonces
    /// (`MemberProof`), and a peer that cannot prove it is refused. Every member must have the same
    /// one; it never crosses the wire and is not part of the digest.
    public var clusterSecret: [UInt8]? {
        didSet { precondition(clusterSecret.map { !$0.isEmpty && $0.count <= 4096 } ?? true, "a cluster secret is 1…4096 bytes") }
    }

    public init(clusterName: String, members: [MemberEndpoint], selfID: MemberID, durability: DurabilityMode) throws(ConfigurationError) {
        guard !clusterName.isEmpty, clusterName.utf8.count <= 200, clusterName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ConfigurationError("the cluster id must be 1…200 printable characters without spaces")
        }
        guard members.contains(where: { $0.id == selfID }) else {
            throw ConfigurationError("member id \(selfID.rawValue) is not in the member list (\(members.map { "\($0.id.rawValue)" }.joined(separator: ",")))")
        }
        guard Set(members.map(\.id)).count == members.count else { throw ConfigurationError("duplicate member ids in the member list") }
        self.clusterName = clusterName
        self.members = members.sorted { $0.id < $1.id }
        self.selfID = selfID
        self.durability = durability
    }

    /// The numeric cluster id: FNV-1a of the name (kept in log segments, hard state and handshakes).
    public var clusterID: UInt64 { Self.fnv1a(Array(clusterName.utf8)) }

    /// A digest of what members must agree on: the member list and the durability mode.
    public var configurationDigest: UInt64 { Self.fnv1a(Array(canonicalDescription.utf8)) }

    /// The member list and mode as text (what the digest covers; shown when members disagree).
    public var canonicalDescription: String {
        "members \(members.map(\.description).joined(separator: ",")) sync \(durability.rawValue)"
    }

    /// This member's endpoint.
    public var selfEndpoint: MemberEndpoint { members.first { $0.id == selfID }! }

    /// The endpoint of `member`, if it is in the configuration.
    public func endpoint(of member: MemberID) -> MemberEndpoint? { members.first { $0.id == member } }

    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}
