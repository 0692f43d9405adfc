import KeelCore

/// The `Transport` of one simulated process, on a `SimulatedNetwork` (made by
/// `SimulatedNetwork.makeTransport(host:)`).
///
/// Behaves as the io_uring transport does: operations are queued by `submit…` and complete later,
/// when the network's virtual time has moved far enough and someone reaps; an accept's result is
/// the new connection's raw id; a receive completes with 0 at the peer's orderly close and with
/// the negated ECONNRESET / ETIMEDOUT when the connection was cut; a send completes with the
/// count the peer's buffers took (possibly short; nothing until there is room); closing cancels
/// the connection's operations (ECANCELED). Connection ids are never reused.
public final class SimulatedTransport: Transport {
    /// The address of this process.
    public let host: String
    unowned let network: SimulatedNetwork
    /// True after `crash()`: the process is gone; a restarted one gets a new transport.
    public private(set) var isCrashed = false

    /// Open endpoints in creation order (iteration order is part of determinism).
    private(set) var endpoints: [SimulatedEndpoint] = []
    private var endpointsByID: [Int32: SimulatedEndpoint] = [:]
    private var listenersByID: [Int32: SimulatedListener] = [:]
    private var listenerOrder: [SimulatedListener] = []
    private var nextID: Int32 = 1
    private var nextEphemeralPort: UInt16 = 40_000
    private var completed: [IOCompletion] = []
    private var completedHead = 0

    init(host: String, network: SimulatedNetwork) {
        self.host = host
        self.network = network
    }

    // MARK: Transport

    public func listen(host: String, port: UInt16) throws(IOError) -> ConnectionID {
        precondition(!isCrashed, "a crashed process cannot listen")
        guard host == self.host || host == "0.0.0.0" else {
            throw IOError(.accept, errno: Errno.addressNotAvailable, subject: "listen \(host):\(port) on simulated host \(self.host)")
        }
        var chosenPort = port
        if chosenPort == 0 {
            while network.listeners["\(self.host):\(nextEphemeralPort)"] != nil { nextEphemeralPort &+= 1 }
            chosenPort = nextEphemeralPort
            nextEphemeralPort &+= 1
        }
        let address = "\(self.host):\(chosenPort)"
        guard network.listeners[address] == nil else {
            throw IOError(.accept, errno: Errno.addressInUse, subject: "listen \(address)")
        }
        let listener = SimulatedListener(id: makeID(), transport: self, address: address)
        listenersByID[listener.id.rawValue] = listener
        listenerOrder.append(listener)
        network.listeners[address] = listener
        return listener.id
    }

    /// The port a listener is bound to (for listeners made with port 0).
    public func boundPort(_ listener: ConnectionID) -> UInt16? {
        guard let address = listenersByID[listener.rawValue]?.address, let colon = address.lastIndex(of: ":") else { return nil }
        return UInt16(address[address.index(after: colon)...])
    }

    public func submitAccept(_ listener: ConnectionID, token: IOToken) throws(IOError) {
        guard let listener = listenersByID[listener.rawValue] else {
            throw IOError(.accept, errno: Errno.badFile, subject: "\(listener) on simulated host \(host)")
        }
        listener.pendingAccepts.append(token)
    }

    public func submitConnect(host: String, port: UInt16, token: IOToken) throws(IOError) -> ConnectionID {
        precondition(!isCrashed, "a crashed process cannot connect")
        let endpoint = makeEndpoint(remoteHost: host)
        network.startConnect(endpoint, host: host, port: port, token: token)
        return endpoint.id
    }

    public func submitSend(_ connection: ConnectionID, _ bytes: UnsafeRawBufferPointer, token: IOToken) throws(IOError) {
        try endpoint(connection, .send).pendingSends.append(.init(bytes: bytes, token: token))
    }

    public func submitReceive(_ connection: ConnectionID, into buffer: UnsafeMutableRawBufferPointer, token: IOToken) throws(IOError) {
        try endpoint(connection, .receive).pendingReceives.append(.init(buffer: buffer, token: token))
    }

    public func close(_ connection: ConnectionID) {
        if let listener = listenersByID.removeValue(forKey: connection.rawValue) {
            listenerOrder.removeAll { $0 === listener }
            network.listeners[listener.address] = nil
            for token in listener.pendingAccepts { complete(token, .accept, -Errno.canceled) }
            // Connections the process never accepted are reset, as the kernel does.
            for endpoint in listener.backlog { network.reset(endpoint, errno: Errno.connectionReset) }
            return
        }
        guard let endpoint = endpointsByID.removeValue(forKey: connection.rawValue) else { return }
        endpoints.removeAll { $0 === endpoint }
        for receive in endpoint.pendingReceives { complete(receive.token, .receive, -Errno.canceled) }
        for send in endpoint.pendingSends { complete(send.token, .send, -Errno.canceled) }
        endpoint.pendingReceives.removeAll()
        endpoint.pendingSends.removeAll()
        if case .open = endpoint.state, let peer = endpoint.peer { network.sendEndOfStream(to: peer) }
        endpoint.state = .closed
        endpoint.discardBuffers()
    }

    public func reapCompletions(into completions: inout IOCompletionBuffer) {
        network.deliverDue()
        while completedHead < completed.count, completions.append(completed[completedHead]) { completedHead += 1 }
        if completedHead == completed.count {
            completed.removeAll(keepingCapacity: true)
            completedHead = 0
        }
    }

    /// The process dies: every connection it had is reset at the peer, its listeners vanish,
    /// and its own pending operations and completions are gone with it.
    public func crash() {
        for endpoint in endpoints { network.reset(endpoint, errno: Errno.connectionReset) }
        for listener in listenerOrder {
            network.listeners[listener.address] = nil
            for endpoint in listener.backlog { network.reset(endpoint, errno: Errno.connectionReset) }
        }
        endpoints.removeAll()
        endpointsByID.removeAll()
        listenersByID.removeAll()
        listenerOrder.removeAll()
        completed.removeAll()
        completedHead = 0
        isCrashed = true
    }

    public func peerAddress(_ connection: ConnectionID) -> String? {
        endpointsByID[connection.rawValue].map { "\($0.remoteHost) (simulated)" }
    }

    // MARK: Used by the network

    func makeEndpoint(remoteHost: String) -> SimulatedEndpoint {
        let endpoint = SimulatedEndpoint(id: makeID(), transport: self, remoteHost: remoteHost)
        endpoints.append(endpoint)
        endpointsByID[endpoint.id.rawValue] = endpoint
        return endpoint
    }

    func complete(_ token: IOToken, _ operation: IOOperation, _ result: Int32) {
        guard !isCrashed else { return }
        completed.append(IOCompletion(token: token, operation: operation, result: result))
    }

    /// Hands waiting connections to pending accepts; true when any was accepted.
    func matchAccepts() -> Bool {
        var progress = false
        for listener in listenerOrder {
            while !listener.backlog.isEmpty && !listener.pendingAccepts.isEmpty {
                let endpoint = listener.backlog.removeFirst()
                complete(listener.pendingAccepts.removeFirst(), .accept, endpoint.id.rawValue)
                progress = true
            }
        }
        return progress
    }

    /// Completes what an endpoint's state allows; true when anything completed.
    func completeOperations(of endpoint: SimulatedEndpoint) -> Bool {
        var progress = false
        switch endpoint.state {
        case .connecting, .closed:
            return false
        case .failed(let errno):
            for receive in endpoint.pendingReceives { complete(receive.token, .receive, -errno) }
            for send in endpoint.pendingSends { complete(send.token, .send, -errno) }
            progress = !endpoint.pendingReceives.isEmpty || !endpoint.pendingSends.isEmpty
            endpoint.pendingReceives.removeAll()
            endpoint.pendingSends.removeAll()
        case .open:
            while let receive = endpoint.pendingReceives.first {
                if endpoint.unreadBytes > 0 {
                    complete(receive.token, .receive, Int32(endpoint.read(into: receive.buffer)))
                } else if endpoint.endOfStreamArrived {
                    complete(receive.token, .receive, 0)
                } else {
                    break
                }
                endpoint.pendingReceives.removeFirst()
                progress = true
            }
            while let send = endpoint.pendingSends.first {
                if let peer = endpoint.peer, case .open = peer.state {
                    let taken = send.bytes.isEmpty ? 0 : network.transmit(from: endpoint, to: peer, send.bytes)
                    if taken == 0 && !send.bytes.isEmpty { break }
                    complete(send.token, .send, Int32(taken))
                } else {
                    complete(send.token, .send, -Errno.brokenPipe)  // the peer has closed
                }
                endpoint.pendingSends.removeFirst()
                progress = true
            }
        }
        return progress
    }

    private func makeID() -> ConnectionID {
        defer { nextID += 1 }
        return ConnectionID(rawValue: nextID)
    }

    private func endpoint(_ connection: ConnectionID, _ operation: IOOperation) throws(IOError) -> SimulatedEndpoint {
        guard let endpoint = endpointsByID[connection.rawValue] else {
            throw IOError(operation, errno: Errno.badFile, subject: "\(connection) on simulated host \(host)")
        }
        return endpoint
    }
}
