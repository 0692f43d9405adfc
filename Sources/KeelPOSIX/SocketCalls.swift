import Glibc
import KeelCore

// The thin layer between PosixTransport and the C library: every call that can fail turns its errno
// into an IOError naming the operation and its subject, and EINTR is retried here, in one place.

enum SocketCalls {
    /// A non-blocking, close-on-exec IPv4 TCP socket.
    static func makeSocket(operation: IOOperation, subject: @autoclosure () -> String) throws(IOError) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let descriptor = socket(AF_INET, type, 0)
        guard descriptor >= 0 else { throw IOError(operation, errno: errno, subject: subject()) }
        return descriptor
    }

    /// `host:port` as an IPv4 address. Dotted IPv4 and `localhost` only: names are not resolved,
    /// because a resolver call blocks the agent thread for an unbounded time.
    static func address(host: String, port: UInt16, operation: IOOperation) throws(IOError) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        let numeric = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, numeric, &address.sin_addr) == 1 else {
            throw IOError(operation, errno: Errno.invalid, subject: "\(host):\(port) is not an IPv4 address")
        }
        return address
    }

    /// Sets an Int32 socket option.
    static func setOption(
        _ descriptor: Int32, level: Int32, option: Int32, value: Int32, operation: IOOperation, name: String
    ) throws(IOError) {
        var value = value
        guard setsockopt(descriptor, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw IOError(operation, errno: errno, subject: "setsockopt \(name) on fd \(descriptor)")
        }
    }

    /// TCP_NODELAY: frames are batched by their sender, so Nagle's algorithm would only add delay.
    static func disableNagle(_ descriptor: Int32, operation: IOOperation) throws(IOError) {
        try setOption(descriptor, level: Int32(IPPROTO_TCP), option: TCP_NODELAY, value: 1, operation: operation, name: "TCP_NODELAY")
    }

    /// Binds and listens.
    static func bindAndListen(_ descriptor: Int32, _ address: sockaddr_in, backlog: Int32, subject: String) throws(IOError) {
        var address = address
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw IOError(.accept, errno: errno, subject: "bind \(subject)") }
        guard Glibc.listen(descriptor, backlog) == 0 else { throw IOError(.accept, errno: errno, subject: "listen \(subject)") }
    }

    /// Starts a non-blocking connect: 0 when connected at once, EINPROGRESS while under way, or
    /// another errno when it failed at once.
    static func startConnect(_ descriptor: Int32, _ address: sockaddr_in) -> Int32 {
        var address = address
        while true {
            let result = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if result == 0 { return 0 }
            let failure = errno
            if failure != EINTR { return failure }
        }
    }

    /// The outcome of a finished non-blocking connect (SO_ERROR): 0 or an errno.
    static func pendingError(_ descriptor: Int32) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &value, &length) == 0 else { return errno }
        return value
    }

    /// The port a socket is bound to.
    static func localPort(_ descriptor: Int32) throws(IOError) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { throw IOError(.stat, errno: errno, subject: "getsockname on fd \(descriptor)") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// One non-blocking accept: the new descriptor (made non-blocking and close-on-exec), or the
    /// negated errno (EAGAIN when none waits). accept4 is not visible through Glibc's module.
    static func acceptOne(_ listener: Int32) -> Int32 {
        while true {
            let descriptor = accept(listener, nil, nil)
            if descriptor >= 0 {
                let flags = fcntl(descriptor, F_GETFL)
                guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0,
                    fcntl(descriptor, F_SETFD, FD_CLOEXEC) == 0
                else {
                    let failure = errno
                    _ = Glibc.close(descriptor)
                    return -failure
                }
                return descriptor
            }
            let failure = errno
            if failure != EINTR { return -failure }
        }
    }

    /// One non-blocking send: bytes taken, or the negated errno. Never raises SIGPIPE.
    static func sendSome(_ descriptor: Int32, _ base: UnsafeRawPointer, _ count: Int) -> Int {
        while true {
            let result = send(descriptor, base, count, Int32(MSG_NOSIGNAL))
            if result >= 0 { return result }
            let failure = errno
            if failure != EINTR { return -Int(failure) }
        }
    }

    /// One non-blocking receive: bytes read (0 at end of stream), or the negated errno.
    static func receiveSome(_ descriptor: Int32, _ base: UnsafeMutableRawPointer, _ count: Int) -> Int {
        while true {
            let result = recv(descriptor, base, count, 0)
            if result >= 0 { return result }
            let failure = errno
            if failure != EINTR { return -Int(failure) }
        }
    }
}
