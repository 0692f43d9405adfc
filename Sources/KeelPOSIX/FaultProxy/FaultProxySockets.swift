import Glibc
import KeelCore

// The few socket calls the fault proxy makes, each turning failure into an IOError.
enum FaultProxySockets {
    static func address(_ endpoint: FaultProxyEndpoint, operation: IOOperation) throws(IOError) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = endpoint.port.bigEndian
        guard inet_pton(AF_INET, endpoint.host, &address.sin_addr) == 1 else {
            throw IOError(operation, errno: Errno.invalid, subject: "\(endpoint) (an IPv4 address is needed)")
        }
        return address
    }

    /// A non-blocking, close-on-exec TCP socket.
    static func makeSocket(operation: IOOperation, subject: String) throws(IOError) -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw IOError(operation, errno: errno, subject: subject) }
        return descriptor
    }

    /// A listening socket bound to `endpoint` (port 0: any free port).
    static func listen(on endpoint: FaultProxyEndpoint) throws(IOError) -> Int32 {
        var address = try address(endpoint, operation: .accept)
        let descriptor = try makeSocket(operation: .accept, subject: "\(endpoint)")
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(descriptor, 64) == 0 else {
            let failure = errno
            close(descriptor)
            throw IOError(.accept, errno: failure, subject: "listen on \(endpoint)")
        }
        return descriptor
    }

    /// The port a socket is bound to.
    static func localPort(_ descriptor: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Accepts one connection as a non-blocking socket; -1 when none is waiting.
    static func accept(_ listener: Int32) -> Int32 {
        // accept4 is GNU-only (not imported through Glibc): accept, then set the flags.
        let descriptor = Glibc.accept(listener, nil, nil)
        if descriptor >= 0 { makeNonBlockingCloseOnExec(descriptor) }
        return descriptor
    }

    /// Sets O_NONBLOCK and FD_CLOEXEC on `descriptor`.
    static func makeNonBlockingCloseOnExec(_ descriptor: Int32) {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        _ = fcntl(descriptor, F_SETFD, fcntl(descriptor, F_GETFD) | FD_CLOEXEC)
    }

    /// Starts a non-blocking connect. Returns the socket, and whether the connection is already up.
    static func startConnect(to address: sockaddr_in, endpoint: FaultProxyEndpoint) throws(IOError) -> (descriptor: Int32, connected: Bool) {
        let descriptor = try makeSocket(operation: .connect, subject: "\(endpoint)")
        var address = address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 { return (descriptor, true) }
        let failure = errno
        if failure == EINPROGRESS { return (descriptor, false) }
        close(descriptor)
        throw IOError(.connect, errno: failure, subject: "\(endpoint)")
    }

    /// The outcome of a finished non-blocking connect (0 or an errno).
    static func pendingError(_ descriptor: Int32) -> Int32 {
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &failure, &length) == 0 else { return errno }
        return failure
    }

    /// Turns off Nagle's algorithm: the proxy forwards what it reads at once.
    static func disableNagle(_ descriptor: Int32) {
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }
}
