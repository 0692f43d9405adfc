import KeelCore

/// A seeded, fault-injecting TCP network between simulated processes (DESIGN.md decision 3).
///
/// Each process talks through its own `SimulatedTransport` (made with `makeTransport(host:)`),
/// which conforms to `Transport`, so the runtime code that runs over io_uring runs here unchanged.
/// Time is a `SimulatedTimeSource`: nothing moves until the simulator advances it and someone
/// reaps (`SimulatedTransport.reapCompletions` or `deliverDue()`).
///
/// Faults, all drawn from one seeded generator (same seed and same calls, same history):
/// - every send takes a delay (minimum + jitter, and sometimes a long tail); bytes of one
///   connection still arrive in order, as TCP's do;
/// - a connection may be cut (reset at both ends) — by chance per send, or on command;
/// - links between hosts can be blocked (`partition`, one-way `blockLink`) and healed: blocked
///   bytes are held, delivered in order if the link heals within the retransmission timeout,
///   and the connection is reset otherwise; a connect across a blocked link times out;
/// - a process crash resets every connection of its host.
public final class SimulatedNetwork {
    struct Link: Hashable {
        var from: String
        var to: String
    }

    struct PendingConnect {
        var endpoint: SimulatedEndpoint
        var host: String
        var port: UInt16
        var token: IOToken
        var decideAtNanos: Int64
        var timesOut: Bool
    }

    /// The virtual time every transport of this network reads.
    public let timeSource: SimulatedTimeSource
    /// What goes wrong, and how often.
    public var faults: SimulatedNetworkFaults
    var random: SeededRandom
    /// Every transport made, in creation order (iteration order is part of determinism).
    private(set) var transports: [SimulatedTransport] = []
    private var blockedLinks = Set<Link>()
    var listeners: [String: SimulatedListener] = [:]
    private var pendingConnects: [PendingConnect] = []

    /// Connections reset by a fault (cut, retransmission timeout, crash).
    public private(set) var connectionsCut = 0
    /// Bytes that reached a receive buffer.
    public private(set) var bytesDelivered: Int64 = 0

    /// A network drawing its faults from `seed`.
    public init(seed: UInt64, timeSource: SimulatedTimeSource, faults: SimulatedNetworkFaults = SimulatedNetworkFaults()) {
        random = SeededRandom(seed: seed)
        self.timeSource = timeSource
        self.faults = faults
    }

    /// The transport of the process at `host` (an address such as "10.0.0.1"; one per process).
    public func makeTransport(host: String) -> SimulatedTransport {
        precondition(!transports.contains { $0.host == host && !$0.isCrashed }, "host \(host) already has a live transport")
        let transport = SimulatedTransport(host: host, network: self)
        transports.append(transport)
        return transport
    }

    // MARK: Faults on command

    /// Stops packets from `from` to `to` (a one-way link failure).
    public func blockLink(from: String, to: String) { blockedLinks.insert(Link(from: from, to: to)) }

    /// Stops packets both ways between `a` and `b`.
    public func partition(_ a: String, _ b: String) {
        blockLink(from: a, to: b)
        blockLink(from: b, to: a)
    }

    /// Cuts `host` off from every other host known to the network, both ways.
    public func isolate(_ host: String) {
        for other in transports where other.host != host { partition(host, other.host) }
    }

    /// Lets packets from `from` to `to` through again.
    public func healLink(from: String, to: String) { blockedLinks.remove(Link(from: from, to: to)) }

    /// Heals every blocked link.
    public func healAll() { blockedLinks.removeAll() }

    /// True when packets from `from` to `to` get through.
    public func carries(from: String, to: String) -> Bool { !blockedLinks.contains(Link(from: from, to: to)) }

    /// Resets every connection between `a` and `b` (both ends see ECONNRESET).
    public func cutConnections(between a: String, and b: String) {
        for transport in transports where transport.host == a {
            for endpoint in transport.endpoints where endpoint.remoteHost == b { reset(endpoint, errno: Errno.connectionReset) }
        }
    }

    // MARK: Sending and connecting (called by transports)

    /// One send's one-way delay.
    func drawDelayNanos() -> Int64 {
        var delay = faults.latencyMinNanos
        if faults.latencyJitterNanos > 0 { delay += random.integer(in: 0...faults.latencyJitterNanos) }
        if faults.latencyTailMaxNanos > 0 && random.chance(faults.latencyTailChance) {
            let uniform = Double(random.next() >> 11) * 0x1.0p-53
            delay += Int64(Double(faults.latencyTailMaxNanos) * uniform * uniform * uniform)
        }
        return delay
    }

    func startConnect(_ endpoint: SimulatedEndpoint, host: String, port: UInt16, token: IOToken) {
        let now = timeSource.nowNanos
        let blocked = !carries(from: endpoint.localHost, to: host) || !carries(from: host, to: endpoint.localHost)
        let decideAt = blocked ? now + faults.connectTimeoutNanos : now + drawDelayNanos()
        pendingConnects.append(PendingConnect(endpoint: endpoint, host: host, port: port, token: token, decideAtNanos: decideAt, timesOut: blocked))
    }

    /// Moves `bytes` (as much as the peer's buffers hold) towards the peer; returns the count taken.
    func transmit(from endpoint: SimulatedEndpoint, to peer: SimulatedEndpoint, _ bytes: UnsafeRawBufferPointer) -> Int {
        let space = faults.pipeCapacityBytes - peer.bufferedBytes
        guard space > 0 else { return 0 }
        let count = min(space, bytes.count)
        let arrival = max(peer.lastArrivalNanos, timeSource.nowNanos + drawDelayNanos())
        peer.enqueue(SimulatedSegment(arrivalNanos: arrival, bytes: Array(bytes[0..<count]), isEndOfStream: false))
        if faults.connectionCutChance > 0 && random.chance(faults.connectionCutChance) {
            let cutAt = min(endpoint.cutAtNanos ?? .max, arrival)
            endpoint.cutAtNanos = cutAt
            peer.cutAtNanos = cutAt
        }
        return count
    }

    /// Sends the FIN of a closing endpoint after the bytes already travelling.
    func sendEndOfStream(to peer: SimulatedEndpoint) {
        let arrival = max(peer.lastArrivalNanos, timeSource.nowNanos + drawDelayNanos())
        peer.enqueue(SimulatedSegment(arrivalNanos: arrival, bytes: [], isEndOfStream: true))
    }

    /// Resets a connection at both ends: buffers are dropped, operations fail with `errno`.
    func reset(_ endpoint: SimulatedEndpoint, errno: Int32) {
        guard case .open = endpoint.state else { return }
        connectionsCut += 1
        for end in [endpoint, endpoint.peer].compactMap({ $0 }) {
            if case .open = end.state { end.state = .failed(errno) }
            end.discardBuffers()
            end.cutAtNanos = nil
        }
    }

    // MARK: Progress

    /// Does everything due by now: decides connects, delivers arrived bytes, completes receives,
    /// sends and accepts. Called by every transport's `reapCompletions`; idempotent at one instant.
    public func deliverDue() {
        var rounds = 0
        while progressOnce() {
            rounds += 1
            precondition(rounds < 1_000_000, "simulated network made progress forever at one instant")
        }
    }

    private func progressOnce() -> Bool {
        var progress = decideConnects()
        for transport in transports where !transport.isCrashed {
            for endpoint in transport.endpoints where advance(endpoint) { progress = true }
            if transport.matchAccepts() { progress = true }
        }
        return progress
    }

    private func decideConnects() -> Bool {
        let now = timeSource.nowNanos
        var decided = false
        var index = 0
        while index < pendingConnects.count {
            let connect = pendingConnects[index]
            guard connect.decideAtNanos <= now else { index += 1; continue }
            pendingConnects.remove(at: index)
            decided = true
            let endpoint = connect.endpoint
            guard endpoint.state == .connecting, !endpoint.transport.isCrashed else { continue }
            let listener = listeners["\(connect.host):\(connect.port)"]
            if connect.timesOut {
                endpoint.state = .failed(Errno.connectionTimedOut)
                endpoint.transport.complete(connect.token, .connect, -Errno.connectionTimedOut)
            } else if let listener, !listener.transport.isCrashed {
                let accepted = listener.transport.makeEndpoint(remoteHost: endpoint.localHost)
                accepted.state = .open
                endpoint.state = .open
                accepted.peer = endpoint
                endpoint.peer = accepted
                listener.backlog.append(accepted)
                endpoint.transport.complete(connect.token, .connect, 0)
            } else {
                endpoint.state = .failed(Errno.connectionRefused)
                endpoint.transport.complete(connect.token, .connect, -Errno.connectionRefused)
            }
        }
        return decided
    }

    /// Moves one endpoint forward; true when anything changed.
    private func advance(_ endpoint: SimulatedEndpoint) -> Bool {
        let now = timeSource.nowNanos
        var progress = false
        if let cutAt = endpoint.cutAtNanos, cutAt <= now {
            reset(endpoint, errno: Errno.connectionReset)
            progress = true
        }
        if case .open = endpoint.state {
            let linkOpen = carries(from: endpoint.remoteHost, to: endpoint.localHost)
            let before = endpoint.unreadBytes
            let (delivered, heldSince) = endpoint.deliverDue(nowNanos: now, linkOpen: linkOpen)
            bytesDelivered += Int64(endpoint.unreadBytes - before)
            if delivered { progress = true }
            if let heldSince, now - heldSince >= faults.retransmissionTimeoutNanos {
                reset(endpoint, errno: Errno.connectionTimedOut)
                progress = true
            }
        }
        if endpoint.transport.completeOperations(of: endpoint) { progress = true }
        return progress
    }

    /// The earliest virtual time at which something will happen without new submissions, or nil
    /// when the network is quiet. A simulator can advance time straight to it.
    public func nextEventNanos() -> Int64? {
        var earliest: Int64?
        func consider(_ time: Int64?) {
            guard let time else { return }
            earliest = min(earliest ?? time, time)
        }
        for connect in pendingConnects { consider(connect.decideAtNanos) }
        for transport in transports where !transport.isCrashed {
            for endpoint in transport.endpoints {
                consider(endpoint.cutAtNanos)
                guard let arrival = endpoint.nextArrivalNanos else { continue }
                let linkOpen = carries(from: endpoint.remoteHost, to: endpoint.localHost)
                // A held segment matters again when the retransmission timeout gives up on it.
                let now = timeSource.nowNanos
                consider(linkOpen || arrival > now ? arrival : arrival + faults.retransmissionTimeoutNanos)
            }
        }
        return earliest
    }
}

/// A listening address of a simulated transport.
final class SimulatedListener {
    let id: ConnectionID
    unowned let transport: SimulatedTransport
    let address: String
    /// Connections made to it and not accepted yet, oldest first.
    var backlog: [SimulatedEndpoint] = []
    var pendingAccepts: [IOToken] = []

    init(id: ConnectionID, transport: SimulatedTransport, address: String) {
        self.id = id
        self.transport = transport
        self.address = address
    }
}
