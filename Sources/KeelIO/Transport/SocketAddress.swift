import Glibc
import KeelCore

/// IPv4 socket addresses for the transport. Names are not resolved through DNS on purpose: a node
/// is configured with addresses, and a blocking resolver call has no place on an agent thread.
enum SocketAddress {
    /// `host:port` as a `sockaddr_in`. Accepts dotted IPv4 (`127.0.0.1`), `localhost` and `0.0.0.0`.
    static func ipv4(host: String, port: UInt16, operation: IOOperation) throws(IOError) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        let numeric = host == "localhost" ? "127.0.0.1" : host
        let parsed = inet_pton(AF_INET, numeric, &address.sin_addr)
        guard parsed == 1 else {
            throw IOError(operation, errno: Errno.invalid, subject: "\(host):\(port) (not an IPv4 address)")
        }
        return address
    }

    /// `a.b.c.d:port` of an address, for messages.
    static func describe(_ address: sockaddr_in) -> String {
        let host = UInt32(bigEndian: address.sin_addr.s_addr)
        return "\(host >> 24).\(host >> 16 & 0xFF).\(host >> 8 & 0xFF).\(host & 0xFF):\(UInt16(bigEndian: address.sin_port))"
    }

    /// The local address a socket is bound to.
    static func local(of descriptor: Int32) throws(IOError) -> sockaddr_in {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { throw IOError(.stat, errno: errno, subject: "getsockname on fd \(descriptor)") }
        return address
    }
}

extension SocketAddress {
    /// The address at the other end of a connected socket, or nil (not connected, or not IPv4).
    static func peer(of descriptor: Int32) -> sockaddr_in? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &length) }
        }
        guard result == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
        return address
    }
}

/// Sets an integer socket option; throws naming the option.
func setSocketOption(_ descriptor: Int32, level: Int32, option: Int32, value: Int32, name: String, operation: IOOperation) throws(IOError) {
    var value = value
    guard setsockopt(descriptor, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
        throw IOError(operation, errno: errno, subject: "setsockopt \(name) on fd \(descriptor)")
    }
}
