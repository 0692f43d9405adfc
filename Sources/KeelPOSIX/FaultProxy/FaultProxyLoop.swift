import Glibc
import KeelCore

/// The proxy's thread: one poll(2) loop over the wake pipe, the listen and control sockets, control
/// connections and every proxied pair. It alone touches sockets and connection state; commands
/// reach it through the mailbox and take effect before the next bytes are read.
final class FaultProxyLoop {
    private struct ControlConnection {
        var descriptor: Int32
        var input: [UInt8] = []
    }

    private enum Owner {
        case wake, listen, controlListen
        case control(Int)
        case client(Int), target(Int)
    }

    /// The longest control line accepted.
    private static let controlLineBytesMax = 256
    private static let readChunkBytes = 64 * 1024

    private let mailbox: FaultProxyMailbox
    private let listenDescriptor: Int32
    private let controlListenDescriptor: Int32?
    private let wakeDescriptor: Int32
    private let target: FaultProxyEndpoint
    private let targetAddress: sockaddr_in
    private var mode = FaultProxyMode.pass
    private var connections: [FaultProxyConnection] = []
    private var controls: [ControlConnection] = []
    private var pollDescriptors: [pollfd] = []
    private var owners: [Owner] = []
    private var commands: [FaultProxyCommand] = []
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: readChunkBytes, alignment: 16)

    init(mailbox: FaultProxyMailbox, listenDescriptor: Int32, controlListenDescriptor: Int32?, wakeDescriptor: Int32,
         target: FaultProxyEndpoint, targetAddress: sockaddr_in) {
        self.mailbox = mailbox
        self.listenDescriptor = listenDescriptor
        self.controlListenDescriptor = controlListenDescriptor
        self.wakeDescriptor = wakeDescriptor
        self.target = target
        self.targetAddress = targetAddress
    }

    deinit { scratch.deallocate() }

    private static func nowNanos() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Runs until `FaultProxy.stop()`; then closes every socket it owns.
    func run() {
        while takeCommands() {
            let now = Self.nowNanos()
            flushAll(nowNanos: now)
            let timeoutMillis = preparePoll(nowNanos: now)
            let ready = poll(&pollDescriptors, nfds_t(pollDescriptors.count), timeoutMillis)
            if ready < 0 && errno != EINTR { break }
            // Commands that arrived during the wait take effect before any byte read below.
            guard takeCommands() else { break }
            if ready > 0 { handleEvents(nowNanos: Self.nowNanos()) }
            flushAll(nowNanos: Self.nowNanos())
            reapFinished()
        }
        shutDown()
    }

    /// Applies waiting commands; false when the proxy is to stop.
    private func takeCommands() -> Bool {
        let stop = mailbox.take(into: &commands)
        for command in commands { _ = apply(command) }
        mailbox.markApplied(commands.count)
        commands.removeAll(keepingCapacity: true)
        return !stop
    }

    /// Applies one command; returns the control port's answer.
    private func apply(_ command: FaultProxyCommand) -> String {
        switch command {
        case .set(let newMode):
            mode = newMode
            mailbox.updateStatistics { $0.mode = newMode }
        case .cut:
            for connection in connections { connection.closeBoth() }
            connections.removeAll()
            mailbox.updateStatistics { $0.connectionsOpen = 0 }
        case .status:
            return "ok mode=\(mode) connections=\(connections.count)"
        }
        return "ok"
    }

    /// Fills the poll set and returns the timeout: until the next delayed bytes are due, or forever.
    private func preparePoll(nowNanos: Int64) -> Int32 {
        pollDescriptors.removeAll(keepingCapacity: true)
        owners.removeAll(keepingCapacity: true)
        func watch(_ descriptor: Int32, _ events: Int32, _ owner: Owner) {
            pollDescriptors.append(pollfd(fd: descriptor, events: Int16(events), revents: 0))
            owners.append(owner)
        }
        watch(wakeDescriptor, POLLIN, .wake)
        watch(listenDescriptor, POLLIN, .listen)
        if let controlListenDescriptor { watch(controlListenDescriptor, POLLIN, .controlListen) }
        for (index, control) in controls.enumerated() { watch(control.descriptor, POLLIN, .control(index)) }
        var nextDueNanos = Int64.max
        for (index, connection) in connections.enumerated() {
            var clientEvents: Int32 = connection.toTarget.isFull ? 0 : POLLIN
            if connection.toClient.readyBytes(nowNanos: nowNanos) > 0 { clientEvents |= POLLOUT }
            var targetEvents: Int32 = POLLOUT
            if !connection.connecting {
                targetEvents = connection.toClient.isFull ? 0 : POLLIN
                if connection.toTarget.readyBytes(nowNanos: nowNanos) > 0 { targetEvents |= POLLOUT }
            }
            watch(connection.clientDescriptor, clientEvents, .client(index))
            watch(connection.targetDescriptor, targetEvents, .target(index))
            for due in [connection.toTarget.nextReleaseNanos(after: nowNanos), connection.toClient.nextReleaseNanos(after: nowNanos)] {
                if let due { nextDueNanos = min(nextDueNanos, due) }
            }
        }
        guard nextDueNanos != Int64.max else { return -1 }
        return Int32(clamping: (nextDueNanos - nowNanos + 999_999) / 1_000_000)
    }

    private func handleEvents(nowNanos: Int64) {
        for (slot, owner) in owners.enumerated() {
            let events = Int32(pollDescriptors[slot].revents)
            if events == 0 { continue }
            switch owner {
            case .wake: drainWake()
            case .listen: acceptClients()
            case .controlListen: acceptControls()
            case .control(let index): serveControl(index)
            case .client(let index):
                let connection = connections[index]
                if connection.finished { continue }
                if connection.toTarget.isFull && events & (POLLHUP | POLLERR) != 0 {
                    connection.finished = true  // cannot read the hang-up without room: give up the pair, do not spin
                } else {
                    receive(from: connection.clientDescriptor, into: &connection.toTarget, .toTarget, connection, nowNanos)
                }
            case .target(let index):
                let connection = connections[index]
                if connection.finished { continue }
                if connection.connecting {
                    if FaultProxySockets.pendingError(connection.targetDescriptor) == 0 {
                        connection.connecting = false
                    } else {
                        connection.finished = true  // the target refused: the client sees its connection close
                    }
                } else if connection.toClient.isFull && events & (POLLHUP | POLLERR) != 0 {
                    connection.finished = true
                } else if events & (POLLIN | POLLHUP | POLLERR) != 0 {
                    receive(from: connection.targetDescriptor, into: &connection.toClient, .toClient, connection, nowNanos)
                }
            }
        }
        controls.removeAll { $0.descriptor < 0 }
    }

    /// Reads what `descriptor` has (up to a few chunks) and queues or drops it per the mode.
    private func receive(from descriptor: Int32, into channel: inout FaultProxyChannel, _ direction: FaultProxyDirection,
                         _ connection: FaultProxyConnection, _ nowNanos: Int64) {
        for _ in 0..<16 where !channel.isFull {
            let count = read(descriptor, scratch.baseAddress, scratch.count)
            if count == 0 { connection.finished = true; return }
            if count < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { connection.finished = true }
                return
            }
            if mode.drops(direction) {
                mailbox.updateStatistics {
                    if direction == .toTarget { $0.bytesDroppedToTarget += Int64(count) } else { $0.bytesDroppedToClient += Int64(count) }
                }
            } else {
                channel.append(UnsafeRawBufferPointer(rebasing: scratch[0..<count]), releaseNanos: nowNanos + mode.delayNanos)
            }
            if count < scratch.count { return }
        }
    }

    private func flushAll(nowNanos: Int64) {
        for connection in connections where !connection.finished {
            let toClient = connection.toClient.flush(to: connection.clientDescriptor, nowNanos: nowNanos)
            var toTarget = 0
            if !connection.connecting { toTarget = connection.toTarget.flush(to: connection.targetDescriptor, nowNanos: nowNanos) }
            if toClient < 0 || toTarget < 0 { connection.finished = true }
            if toClient > 0 || toTarget > 0 {
                mailbox.updateStatistics {
                    $0.bytesForwardedToClient += Int64(max(0, toClient))
                    $0.bytesForwardedToTarget += Int64(max(0, toTarget))
                }
            }
        }
    }

    private func reapFinished() {
        guard connections.contains(where: \.finished) else { return }
        for connection in connections where connection.finished { connection.closeBoth() }
        connections.removeAll { $0.finished }
        let open = connections.count
        mailbox.updateStatistics { $0.connectionsOpen = open }
    }

    private func acceptClients() {
        while true {
            let client = FaultProxySockets.accept(listenDescriptor)
            if client < 0 { return }
            FaultProxySockets.disableNagle(client)
            do {
                let (targetDescriptor, connected) = try FaultProxySockets.startConnect(to: targetAddress, endpoint: target)
                FaultProxySockets.disableNagle(targetDescriptor)
                connections.append(FaultProxyConnection(clientDescriptor: client, targetDescriptor: targetDescriptor, connecting: !connected))
            } catch {
                close(client)  // the target cannot be reached: the client sees its connection close
            }
            let open = connections.count
            mailbox.updateStatistics {
                $0.connectionsAccepted += 1
                $0.connectionsOpen = open
            }
        }
    }

    private func acceptControls() {
        guard let controlListenDescriptor else { return }
        while true {
            let descriptor = FaultProxySockets.accept(controlListenDescriptor)
            if descriptor < 0 { return }
            controls.append(ControlConnection(descriptor: descriptor))
        }
    }

    /// Reads control input; answers each complete line. Marks the connection closed (-1) at EOF.
    private func serveControl(_ index: Int) {
        let count = read(controls[index].descriptor, scratch.baseAddress, scratch.count)
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard count > 0 else { closeControl(index); return }
        controls[index].input.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
        while let newline = controls[index].input.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: controls[index].input[..<newline], as: UTF8.self)
            controls[index].input.removeSubrange(...newline)
            if line.allSatisfy(\.isWhitespace) { continue }
            let answer: String
            do {
                answer = apply(try FaultProxyCommand(parsing: line))
            } catch {
                answer = "error: \(error)"
            }
            let text = Array((answer + "\n").utf8)
            _ = text.withUnsafeBytes { send(controls[index].descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        if controls[index].input.count > Self.controlLineBytesMax { closeControl(index) }
    }

    private func closeControl(_ index: Int) {
        close(controls[index].descriptor)
        controls[index].descriptor = -1
    }

    private func drainWake() {
        while read(wakeDescriptor, scratch.baseAddress, scratch.count) > 0 {}
    }

    private func shutDown() {
        for connection in connections { connection.closeBoth() }
        connections.removeAll()
        for control in controls where control.descriptor >= 0 { close(control.descriptor) }
        controls.removeAll()
        close(listenDescriptor)
        if let controlListenDescriptor { close(controlListenDescriptor) }
        close(wakeDescriptor)
        mailbox.updateStatistics { $0.connectionsOpen = 0 }
    }
}
