import Glibc
import KeelCore

/// A TCP proxy for tests with real processes (issue 5 §3): placed on a link (listen → target), it
/// forwards bytes and, on command while running, drops everything (a partition: bytes discarded,
/// connections kept), drops one direction only, delays bytes by N ms, or cuts every connection.
///
/// It runs on its own thread with poll(2). Commands come in process through `apply(_:)` (thread
/// safe; returns once the command is in force, so bytes read afterwards follow it) or as text
/// lines on the optional control port (`keel tool proxy`): `pass`, `drop`, `drop a->b`,
/// `drop b->a`, `delay MS`, `cut`, `status`, each answered with a line starting "ok" (or "error:").
///
/// Dropping discards bytes from the middle of a TCP stream: after healing, the receiver sees a
/// stream with a hole, which Keel's framing rejects and the connection is re-established — the
/// realistic outcome of a long partition. Memory is bounded: at most
/// `FaultProxyChannel.capacityBytes` are held per direction per connection; beyond that the proxy
/// stops reading the sender.
public final class FaultProxy: Sendable {
    /// Where clients connect (with the port the kernel chose when 0 was asked for).
    public let listenEndpoint: FaultProxyEndpoint
    /// Where the proxy connects for each client.
    public let target: FaultProxyEndpoint
    /// The control port's address, when one was asked for.
    public let controlEndpoint: FaultProxyEndpoint?

    private let mailbox = FaultProxyMailbox()
    private let wakeWriteDescriptor: Int32
    private let thread: pthread_t

    /// Binds the listen (and control) sockets and starts the proxy's thread, in `pass` mode.
    public init(listen: FaultProxyEndpoint, target: FaultProxyEndpoint, control: FaultProxyEndpoint? = nil) throws(IOError) {
        let targetAddress = try FaultProxySockets.address(target, operation: .connect)
        let listenDescriptor = try FaultProxySockets.listen(on: listen)
        var controlDescriptor: Int32?
        if let control {
            do {
                controlDescriptor = try FaultProxySockets.listen(on: control)
            } catch {
                close(listenDescriptor)
                throw error
            }
        }
        var pipeDescriptors: [Int32] = [-1, -1]
        guard pipe(&pipeDescriptors) == 0 else {
            let failure = errno
            close(listenDescriptor)
            if let controlDescriptor { close(controlDescriptor) }
            throw IOError(.wake, errno: failure, subject: "fault proxy wake pipe")
        }
        FaultProxySockets.makeNonBlockingCloseOnExec(pipeDescriptors[0])
        FaultProxySockets.makeNonBlockingCloseOnExec(pipeDescriptors[1])
        self.listenEndpoint = FaultProxyEndpoint(host: listen.host, port: FaultProxySockets.localPort(listenDescriptor))
        self.target = target
        self.controlEndpoint = control.map { FaultProxyEndpoint(host: $0.host, port: FaultProxySockets.localPort(controlDescriptor!)) }
        wakeWriteDescriptor = pipeDescriptors[1]
        let loop = FaultProxyLoop(mailbox: mailbox, listenDescriptor: listenDescriptor, controlListenDescriptor: controlDescriptor,
                                  wakeDescriptor: pipeDescriptors[0], target: target, targetAddress: targetAddress)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(loop).toOpaque()
        let created = pthread_create(&thread, nil, { context in
            // Safe because: the loop was retained for this thread and is used by it alone.
            let loop = Unmanaged<FaultProxyLoop>.fromOpaque(context!).takeRetainedValue()
            loop.run()
            return nil
        }, context)
        guard created == 0 else {
            Unmanaged<FaultProxyLoop>.fromOpaque(context).release()
            close(listenDescriptor)
            if let controlDescriptor { close(controlDescriptor) }
            close(pipeDescriptors[0])
            close(pipeDescriptors[1])
            throw IOError(.probe, errno: created, subject: "fault proxy thread")
        }
        self.thread = thread
    }

    deinit { stop() }

    /// Applies `command` and returns once the proxy thread has put it in force (true), or false if
    /// that did not happen within `timeoutNanos` or the proxy is stopped.
    @discardableResult
    public func apply(_ command: FaultProxyCommand, timeoutNanos: Int64 = 5_000_000_000) -> Bool {
        let sequence = mailbox.submit(command)
        wake()
        return mailbox.waitUntilApplied(sequence, timeoutNanos: timeoutNanos)
    }

    /// Bytes and connections so far, and the mode in force.
    public var statistics: FaultProxyStatistics { mailbox.statistics }

    /// Stops the thread and closes every socket (listen, control, proxied). Idempotent.
    public func stop() {
        guard mailbox.claimJoin() else { return }
        mailbox.requestStop()
        wake()
        pthread_join(thread, nil)
        close(wakeWriteDescriptor)
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWriteDescriptor, &byte, 1)  // a full pipe already means "wake up"
    }
}
