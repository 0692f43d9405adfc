import Foundation
import Glibc
import Synchronization

/// A blocking loopback TCP socket for proxy tests; every receive is bounded in time.
final class ProxyTestSocket {
    let descriptor: Int32

    init(descriptor: Int32) {
        self.descriptor = descriptor
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Connects to 127.0.0.1:`port`.
    static func connect(port: UInt16) throws -> ProxyTestSocket {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let failure = errno
            close(descriptor)
            throw ProxyTestError("connect to port \(port) failed: errno \(failure)")
        }
        return ProxyTestSocket(descriptor: descriptor)
    }

    deinit { close(descriptor) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw ProxyTestError("send failed: errno \(errno)") }
            offset += sent
        }
    }

    /// What arrives within `timeoutMillis`, up to `count` bytes; `closed` when the peer closed.
    func receive(count: Int, timeoutMillis: Int) -> (bytes: [UInt8], closed: Bool) {
        var bytes: [UInt8] = []
        let deadline = Self.nowMillis() + timeoutMillis
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count < count {
            let remaining = deadline - Self.nowMillis()
            if remaining <= 0 { break }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(remaining)) > 0 else { continue }
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, min($0.count, count - bytes.count), 0) }
            if received <= 0 { return (bytes, true) }
            bytes.append(contentsOf: buffer[0..<received])
        }
        return (bytes, false)
    }

    /// Receives exactly `text` (or fails the caller's expectation with what came instead).
    func receiveText(_ expectedCount: Int, timeoutMillis: Int = 5000) -> String {
        String(decoding: receive(count: expectedCount, timeoutMillis: timeoutMillis).bytes, as: UTF8.self)
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    static func nowMillis() -> Int {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return time.tv_sec * 1000 + time.tv_nsec / 1_000_000
    }
}

struct ProxyTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A loopback listening socket on a free port.
final class ProxyTestListener {
    let descriptor: Int32
    let port: UInt16

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = ProxyTestSocket.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            close(descriptor)
            throw ProxyTestError("listen failed: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(descriptor) }

    /// The next connection, waiting at most `timeoutMillis`.
    func accept(timeoutMillis: Int = 5000) throws -> ProxyTestSocket {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeoutMillis)) > 0 else { throw ProxyTestError("no connection within \(timeoutMillis) ms") }
        let accepted = Glibc.accept(descriptor, nil, nil)
        guard accepted >= 0 else { throw ProxyTestError("accept failed: errno \(errno)") }
        return ProxyTestSocket(descriptor: accepted)
    }
}

/// An echo server on its own thread: every byte received on a connection is sent back on it.
final class ProxyEchoServer: @unchecked Sendable {
    private let listener: ProxyTestListener
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    var port: UInt16 { listener.port }

    init() throws {
        listener = try ProxyTestListener()
        let descriptor = listener.descriptor
        // Safe because: the thread reads only `descriptor` and the atomics; `stop()` waits for it.
        Thread.detachNewThread { [self] in
            serve(listenDescriptor: descriptor)
            finished.store(true, ordering: .releasing)
        }
    }

    private func serve(listenDescriptor: Int32) {
        var clients: [Int32] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !stopping.load(ordering: .acquiring) {
            var pollers = [pollfd(fd: listenDescriptor, events: Int16(POLLIN), revents: 0)]
            pollers += clients.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&pollers, nfds_t(pollers.count), 20) > 0 else { continue }
            if pollers[0].revents != 0 {
                let client = accept(listenDescriptor, nil, nil)
                if client >= 0 { clients.append(client) }
            }
            for (index, poller) in pollers.enumerated().dropFirst() where poller.revents != 0 {
                let client = clients[index - 1]
                let received = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if received <= 0 {
                    close(client)
                    clients[index - 1] = -1
                    continue
                }
                var offset = 0
                while offset < received {
                    let sent = buffer.withUnsafeBytes { send(client, $0.baseAddress! + offset, received - offset, Int32(MSG_NOSIGNAL)) }
                    if sent <= 0 { break }
                    offset += sent
                }
            }
            clients.removeAll { $0 < 0 }
        }
        for client in clients { close(client) }
    }

    /// Stops the thread and closes its connections.
    func stop() {
        stopping.store(true, ordering: .releasing)
        while !finished.load(ordering: .acquiring) { usleep(1000) }
    }

    deinit { stop() }
}
