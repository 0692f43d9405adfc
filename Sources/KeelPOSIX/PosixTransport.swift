import Glibc
import KeelCore

/// `KeelCore.Transport` over plain non-blocking sockets and poll(2): for client programs that must
/// run where io_uring is blocked (a container's default seccomp profile, `kernel.io_uring_disabled`).
///
/// Same contract as the io_uring transport, so code written against `Transport` runs on either:
/// - A `ConnectionID` is the socket's descriptor; an accept completion's result is the new one.
///   (Descriptor numbers are reused after `close`: drop an id once closed.)
/// - Operations are queued, then progressed by `reapCompletions` (non-blocking) or
///   `waitForCompletions(timeoutNanos:)` (poll with a timeout). Completions are collected first and
///   handed out afterwards; nothing calls back into the owner.
/// - A send completes once all its bytes are taken by the kernel (result = the byte count), or
///   with an error; a receive completes with the bytes read, 0 at the end of the stream. A connect
///   completes with 0 or the negated errno (ECONNREFUSED for a refused connect).
/// - Every connection gets TCP_NODELAY.
/// - `close` completes the connection's queued operations with ECANCELED.
///
/// Bounded: at most `maxConnections` sockets and `operationsPerConnection` queued sends (and as
/// many receives or accepts) per socket; past that, submits throw EMFILE or EAGAIN — back-pressure
/// the caller can act on. The queues are allocated when a socket is set up, not per operation.
///
/// Owned by one thread; not thread-safe.
public final class PosixTransport: Transport {
    /// Limits and socket options.
    public struct Configuration: Sendable {
        /// Pending connections a listener queues before refusing.
        public var listenBacklog: Int32
        /// SO_SNDBUF / SO_RCVBUF in bytes, or nil for the kernel's autotuning.
        public var socketBufferBytes: Int32?
        /// The most sockets (listeners and connections) open at once.
        public var maxConnections: Int
        /// The most sends (and, separately, receives or accepts) queued per socket.
        public var operationsPerConnection: Int

        public init(listenBacklog: Int32 = 512, socketBufferBytes: Int32? = nil, maxConnections: Int = 1024, operationsPerConnection: Int = 64) {
            precondition(maxConnections > 0 && operationsPerConnection > 0, "transport limits must be positive")
            self.listenBacklog = listenBacklog
            self.socketBufferBytes = socketBufferBytes
            self.maxConnections = maxConnections
            self.operationsPerConnection = operationsPerConnection
        }
    }

    enum Role { case listener, connecting, connected }

    struct Socket {
        var role: Role
        /// The token of the connect under way (role `connecting`).
        var connectToken: IOToken
        var sends: PendingOperationQueue
        /// Receives on a connection, accepts on a listener.
        var receives: PendingOperationQueue
    }

    /// The limits and options in force.
    public let configuration: Configuration
    var sockets: [Int32: Socket]
    /// Completions not yet reaped, from `readyHead` on.
    var ready: [IOCompletion]
    var readyHead = 0
    /// Rebuilt in place before every poll.
    var pollDescriptors: [pollfd]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        sockets = Dictionary(minimumCapacity: configuration.maxConnections)
        ready = []
        ready.reserveCapacity(configuration.maxConnections * 2 + 64)
        pollDescriptors = []
        pollDescriptors.reserveCapacity(configuration.maxConnections)
    }

    deinit {
        for descriptor in sockets.keys { _ = Glibc.close(descriptor) }
    }

    /// Open listeners and connections.
    public var openSocketCount: Int { sockets.count }

    /// Completions waiting to be reaped.
    public var readyCompletionCount: Int { ready.count - readyHead }

    public func listen(host: String, port: UInt16) throws(IOError) -> ConnectionID {
        let subject = "\(host):\(port)"
        let address = try SocketCalls.address(host: host, port: port, operation: .accept)
        guard sockets.count < configuration.maxConnections else { throw IOError(.accept, errno: EMFILE, subject: subject) }
        let descriptor = try SocketCalls.makeSocket(operation: .accept, subject: "socket for \(subject)")
        do throws(IOError) {
            try SocketCalls.setOption(descriptor, level: SOL_SOCKET, option: SO_REUSEADDR, value: 1, operation: .accept, name: "SO_REUSEADDR")
            try SocketCalls.bindAndListen(descriptor, address, backlog: configuration.listenBacklog, subject: subject)
        } catch {
            _ = Glibc.close(descriptor)
            throw error
        }
        sockets[descriptor] = makeSocket(role: .listener)
        return ConnectionID(rawValue: descriptor)
    }

    /// The local port of a listener or connection (for listeners bound to port 0).
    public func localPort(_ connection: ConnectionID) throws(IOError) -> UInt16 {
        try SocketCalls.localPort(connection.rawValue)
    }

    public func submitAccept(_ listener: ConnectionID, token: IOToken) throws(IOError) {
        guard sockets[listener.rawValue]?.role == .listener else {
            throw IOError(.accept, errno: Errno.invalid, subject: "\(listener) is not a listener")
        }
        guard sockets[listener.rawValue]!.receives.push(PendingOperation(token: token, base: nil, count: 0, doneBytes: 0)) else {
            throw IOError(.accept, errno: Errno.tryAgain, subject: "accept queue of \(listener) full")
        }
    }

    public func submitConnect(host: String, port: UInt16, token: IOToken) throws(IOError) -> ConnectionID {
        let subject = "\(host):\(port)"
        let address = try SocketCalls.address(host: host, port: port, operation: .connect)
        guard sockets.count < configuration.maxConnections else { throw IOError(.connect, errno: EMFILE, subject: subject) }
        let descriptor = try SocketCalls.makeSocket(operation: .connect, subject: "socket for \(subject)")
        do throws(IOError) {
            try configureConnection(descriptor, operation: .connect)
        } catch {
            _ = Glibc.close(descriptor)
            throw error
        }
        let started = SocketCalls.startConnect(descriptor, address)
        if started == EINPROGRESS {
            var socket = makeSocket(role: .connecting)
            socket.connectToken = token
            sockets[descriptor] = socket
        } else {
            // Done at once, either way: the completion says which.
            sockets[descriptor] = makeSocket(role: .connected)
            complete(token, .connect, result: -Int(started))
        }
        return ConnectionID(rawValue: descriptor)
    }

    public func submitSend(_ connection: ConnectionID, _ bytes: UnsafeRawBufferPointer, token: IOToken) throws(IOError) {
        let descriptor = connection.rawValue
        guard let role = sockets[descriptor]?.role else { throw IOError(.send, errno: Errno.badFile, subject: "\(connection)") }
        guard role != .listener else { throw IOError(.send, errno: Errno.invalid, subject: "\(connection) is a listener") }
        let operation = PendingOperation(token: token, base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), count: bytes.count, doneBytes: 0)
        guard sockets[descriptor]!.sends.push(operation) else {
            throw IOError(.send, errno: Errno.tryAgain, subject: "send queue of \(connection) full")
        }
        // Try at once: on an uncongested socket the send completes without waiting for a poll.
        if role == .connected && sockets[descriptor]!.sends.count == 1 { progressSends(descriptor) }
    }

    public func submitReceive(_ connection: ConnectionID, into buffer: UnsafeMutableRawBufferPointer, token: IOToken) throws(IOError) {
        precondition(buffer.count > 0, "a receive needs room for at least one byte")
        guard let role = sockets[connection.rawValue]?.role else {
            throw IOError(.receive, errno: Errno.badFile, subject: "\(connection)")
        }
        guard role != .listener else { throw IOError(.receive, errno: Errno.invalid, subject: "\(connection) is a listener") }
        let operation = PendingOperation(token: token, base: buffer.baseAddress, count: buffer.count, doneBytes: 0)
        guard sockets[connection.rawValue]!.receives.push(operation) else {
            throw IOError(.receive, errno: Errno.tryAgain, subject: "receive queue of \(connection) full")
        }
    }

    public func close(_ connection: ConnectionID) {
        guard var socket = sockets.removeValue(forKey: connection.rawValue) else { return }
        _ = Glibc.close(connection.rawValue)
        let canceled = -Int(Errno.canceled)
        if socket.role == .connecting { complete(socket.connectToken, .connect, result: canceled) }
        let receiveKind: IOOperation = socket.role == .listener ? .accept : .receive
        while !socket.receives.isEmpty { complete(socket.receives.pop().token, receiveKind, result: canceled) }
        while !socket.sends.isEmpty { complete(socket.sends.pop().token, .send, result: canceled) }
    }

    /// Progresses queued operations without blocking (the io_uring transport's counterpart hands
    /// queued entries to the kernel).
    public func flushSubmissions() throws(IOError) {
        try progress(timeoutNanos: 0)
    }

    public func reapCompletions(into completions: inout IOCompletionBuffer) {
        // Cannot throw here: poll fails only for EFAULT/EINVAL/ENOMEM, which leave nothing to reap.
        try? progress(timeoutNanos: 0)
        while readyHead < ready.count && completions.append(ready[readyHead]) { readyHead += 1 }
        if readyHead == ready.count {
            ready.removeAll(keepingCapacity: true)
            readyHead = 0
        }
    }

    /// Blocks in poll(2) until an operation can progress or `timeoutNanos` has passed (returns at
    /// once when completions are already waiting). Reap afterwards.
    public func waitForCompletions(timeoutNanos: Int64) throws(IOError) {
        if readyCompletionCount > 0 { return try progress(timeoutNanos: 0) }
        try progress(timeoutNanos: timeoutNanos)
    }

    func complete(_ token: IOToken, _ operation: IOOperation, result: Int) {
        ready.append(IOCompletion(token: token, operation: operation, result: Int32(clamping: result)))
    }

    private func makeSocket(role: Role) -> Socket {
        Socket(
            role: role, connectToken: IOToken(0),
            sends: PendingOperationQueue(capacity: configuration.operationsPerConnection),
            receives: PendingOperationQueue(capacity: configuration.operationsPerConnection))
    }

    /// TCP_NODELAY and buffer sizes on a new connection.
    func configureConnection(_ descriptor: Int32, operation: IOOperation) throws(IOError) {
        try SocketCalls.disableNagle(descriptor, operation: operation)
        if let bytes = configuration.socketBufferBytes {
            try SocketCalls.setOption(descriptor, level: SOL_SOCKET, option: SO_SNDBUF, value: bytes, operation: operation, name: "SO_SNDBUF")
            try SocketCalls.setOption(descriptor, level: SOL_SOCKET, option: SO_RCVBUF, value: bytes, operation: operation, name: "SO_RCVBUF")
        }
    }

    func adoptAccepted(_ descriptor: Int32) -> Int {
        guard sockets.count < configuration.maxConnections else {
            _ = Glibc.close(descriptor)
            return -Int(EMFILE)
        }
        do throws(IOError) {
            try configureConnection(descriptor, operation: .accept)
        } catch {
            _ = Glibc.close(descriptor)
            return -Int(error.errno)
        }
        sockets[descriptor] = makeSocket(role: .connected)
        return Int(descriptor)
    }
}
