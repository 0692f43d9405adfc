import Glibc
import KeelCore
@testable import KeelIO

/// Monotonic wall-clock nanoseconds, for test deadlines and stall timeouts.
func wallNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

struct TransportTestTimeout: Error, CustomStringConvertible {
    var description: String
}

/// A transport on its own ring, and a loop that waits for and hands out its completions.
final class TransportFixture {
    let ring: Ring
    let transport: IOUringTransport
    var completions = IOCompletionBuffer(capacity: 512)

    init(configuration: IOUringTransport.Configuration = .init()) throws {
        ring = try Ring(configuration: .init(submissionQueueEntries: 256))
        transport = IOUringTransport(ring: ring, configuration: configuration)
    }

    /// A listener on an ephemeral loopback port, and that port.
    func listenOnLoopback() throws -> (listener: ConnectionID, port: UInt16) {
        let listener = try transport.listen(host: "127.0.0.1", port: 0)
        return (listener, try transport.localPort(listener))
    }

    /// Reaps and hands completions to `handle` until `done()` or the deadline (which throws).
    /// `beforeWaiting` runs on every round first (to offer and flush, say).
    func run(
        timeoutNanos: Int64 = 10_000_000_000, _ what: String, beforeWaiting: () throws -> Void = {},
        until done: () -> Bool, handle: (IOCompletion) throws -> Void
    ) throws {
        let deadline = wallNanos() + timeoutNanos
        while true {
            try beforeWaiting()
            if done() { return }
            guard wallNanos() < deadline else { throw TransportTestTimeout(description: "timed out waiting for \(what)") }
            try transport.waitForCompletions(timeoutNanos: 5_000_000)
            transport.reapCompletions(into: &completions)
            for index in 0..<completions.count { try handle(completions[index]) }
            completions.removeAll()
            if let failure = transport.submitFailure { throw failure }
        }
    }

    /// Waits for exactly one completion with `token` and returns it (others are a test failure).
    func next(_ what: String, token: IOToken) throws -> IOCompletion {
        var found: IOCompletion?
        try run(what, until: { found != nil }) { completion in
            guard completion.token == token else { throw TransportTestTimeout(description: "unexpected \(completion) waiting for \(what)") }
            found = completion
        }
        return found!
    }

    /// A connected pair on loopback: (client side, server side).
    func connectedPair() throws -> (client: ConnectionID, server: ConnectionID, listener: ConnectionID) {
        let (listener, port) = try listenOnLoopback()
        try transport.submitAccept(listener, token: IOToken(1))
        let client = try transport.submitConnect(host: "127.0.0.1", port: port, token: IOToken(2))
        var server: ConnectionID?
        var connected = false
        try run("accept and connect", until: { server != nil && connected }) { completion in
            if completion.token == IOToken(1) {
                precondition(completion.succeeded, "accept failed: \(completion)")
                server = ConnectionID(rawValue: completion.result)
            } else if completion.token == IOToken(2) {
                precondition(completion.succeeded, "connect failed: \(completion)")
                connected = true
            }
        }
        return (client, server!, listener)
    }
}

/// A deterministic byte pattern: byte `i` of a stream.
@inline(__always)
func patternByte(_ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index &* 131 &+ index >> 9) }
