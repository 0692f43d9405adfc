import KeelCore
import KeelPOSIX

/// Drives a `PosixTransport` in a test: waits, reaps, and keeps every completion by token until a
/// test takes it. Every wait is bounded so a broken transport fails the test instead of hanging it.
final class TransportHarness {
    let transport: PosixTransport
    private var buffer = IOCompletionBuffer(capacity: 256)
    private(set) var completions: [UInt64: IOCompletion] = [:]

    init(configuration: PosixTransport.Configuration = PosixTransport.Configuration()) {
        transport = PosixTransport(configuration: configuration)
    }

    struct Timeout: Error, CustomStringConvertible {
        var waitingFor: String
        var description: String { "timed out waiting for \(waitingFor)" }
    }

    /// One round: wait up to 10 ms, then move completions into `completions`.
    func pump() throws {
        try transport.waitForCompletions(timeoutNanos: 10_000_000)
        transport.reapCompletions(into: &buffer)
        for index in 0..<buffer.count {
            let completion = buffer[index]
            precondition(completions[completion.token.rawValue] == nil, "token \(completion.token) completed twice")
            completions[completion.token.rawValue] = completion
        }
        buffer.removeAll()
    }

    /// Pumps until `token` has completed (also pumping `others`, e.g. the peer's transport); returns
    /// and forgets its completion.
    func await(_ token: UInt64, pumping others: [TransportHarness] = [], seconds: Int = 10) throws -> IOCompletion {
        let deadline = ContinuousClock.now.advanced(by: .seconds(seconds))
        while ContinuousClock.now < deadline {
            if let completion = completions.removeValue(forKey: token) { return completion }
            try pump()
            for other in others { try other.pump() }
        }
        throw Timeout(waitingFor: "token \(token)")
    }

    /// True if `token` completed (without waiting).
    func hasCompleted(_ token: UInt64) -> Bool { completions[token] != nil }

    /// A listener on an ephemeral loopback port, and that port.
    func listen() throws -> (ConnectionID, UInt16) {
        let listener = try transport.listen(host: "127.0.0.1", port: 0)
        return (listener, try transport.localPort(listener))
    }

    /// Connects `client` to `server`'s listener; returns (client side, server side).
    static func connect(
        _ client: TransportHarness, to server: TransportHarness, listener: ConnectionID, port: UInt16, tokenBase: UInt64
    ) throws -> (ConnectionID, ConnectionID) {
        try server.transport.submitAccept(listener, token: IOToken(tokenBase))
        let clientSide = try client.transport.submitConnect(host: "127.0.0.1", port: port, token: IOToken(tokenBase + 1))
        let connected = try client.await(tokenBase + 1, pumping: [server])
        precondition(connected.succeeded, "connect failed: \(String(describing: connected.error))")
        let accepted = try server.await(tokenBase, pumping: [client])
        precondition(accepted.succeeded, "accept failed: \(String(describing: accepted.error))")
        return (clientSide, ConnectionID(rawValue: accepted.result))
    }
}

/// A heap buffer that outlives the operations using it (tests own their buffers explicitly).
final class TestBuffer {
    let bytes: UnsafeMutableRawBufferPointer
    init(count: Int) {
        bytes = .allocate(byteCount: count, alignment: 16)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }
    init(_ contents: [UInt8]) {
        bytes = .allocate(byteCount: max(contents.count, 1), alignment: 16)
        contents.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }
    deinit { bytes.deallocate() }
    var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }
    func prefix(_ count: Int) -> [UInt8] { Array(bytes[0..<count]) }
}
