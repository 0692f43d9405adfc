import CKeelShims
import Glibc
import KeelCore

// Moving queued operations forward: one poll over every socket with something queued, then each
// ready socket's operations are tried until the kernel says EAGAIN.

extension PosixTransport {
    /// Polls every socket with queued work for up to `timeoutNanos` (0: just look) and progresses
    /// what is ready. With nothing queued it sleeps for the timeout, like a wait that finds nothing.
    /// ppoll, not poll: a client pacing sends 100 µs apart must not be woken a millisecond late.
    func progress(timeoutNanos: Int64) throws(IOError) {
        pollDescriptors.removeAll(keepingCapacity: true)
        for (descriptor, socket) in sockets {
            var events: Int16 = 0
            switch socket.role {
            case .connecting:
                events = Int16(POLLOUT)
            case .listener:
                if !socket.receives.isEmpty { events = Int16(POLLIN) }
            case .connected:
                if !socket.receives.isEmpty { events |= Int16(POLLIN) }
                if !socket.sends.isEmpty { events |= Int16(POLLOUT) }
            }
            if events != 0 { pollDescriptors.append(pollfd(fd: descriptor, events: events, revents: 0)) }
        }
        if pollDescriptors.isEmpty && timeoutNanos <= 0 { return }
        let readyCount = pollDescriptors.withUnsafeMutableBufferPointer { buffer in
            keel_ppoll_nanos(buffer.baseAddress, UInt(buffer.count), max(0, timeoutNanos))
        }
        if readyCount < 0 {
            let failure = errno
            if failure == EINTR { return }
            throw IOError(.receive, errno: failure, subject: "poll")
        }
        guard readyCount > 0 else { return }
        for index in pollDescriptors.indices where pollDescriptors[index].revents != 0 {
            handle(pollDescriptors[index].fd, events: pollDescriptors[index].revents)
        }
    }

    private func handle(_ descriptor: Int32, events: Int16) {
        guard let role = sockets[descriptor]?.role else { return }
        let failed = events & Int16(POLLERR | POLLHUP | POLLNVAL) != 0
        switch role {
        case .connecting:
            let outcome = SocketCalls.pendingError(descriptor)
            // Still in progress (a spurious wake-up): wait for the next poll.
            if outcome == EINPROGRESS || outcome == EALREADY { return }
            sockets[descriptor]!.role = .connected
            complete(sockets[descriptor]!.connectToken, .connect, result: -Int(outcome))
            // Sends queued while connecting can go now.
            if outcome == 0 { progressSends(descriptor) }
        case .listener:
            progressAccepts(descriptor)
        case .connected:
            if events & Int16(POLLIN) != 0 || failed { progressReceive(descriptor) }
            if events & Int16(POLLOUT) != 0 || failed { progressSends(descriptor) }
        }
    }

    private func progressAccepts(_ listener: Int32) {
        while sockets[listener]?.receives.isEmpty == false {
            let accepted = SocketCalls.acceptOne(listener)
            if accepted == -EAGAIN { return }
            let token = sockets[listener]!.receives.pop().token
            complete(token, .accept, result: accepted < 0 ? Int(accepted) : adoptAccepted(accepted))
        }
    }

    /// One receive per readiness: a receive completes with whatever one recv(2) returned.
    private func progressReceive(_ descriptor: Int32) {
        // Scalar reads only: holding a copy of the socket while popping would make its queue's
        // storage shared and force a copy (an allocation) on the data path.
        guard sockets[descriptor]?.receives.isEmpty == false else { return }
        let operation = sockets[descriptor]!.receives.first
        let received = SocketCalls.receiveSome(descriptor, operation.base!, operation.count)
        if received == -Int(EAGAIN) { return }
        _ = sockets[descriptor]!.receives.pop()
        complete(operation.token, .receive, result: received)
    }

    /// Sends queued bytes in order until the kernel's buffer is full; a send completes once all its
    /// bytes are taken.
    func progressSends(_ descriptor: Int32) {
        while sockets[descriptor]?.sends.isEmpty == false {
            var operation = sockets[descriptor]!.sends.first
            let remaining = operation.count - operation.doneBytes
            if remaining > 0 {
                let sent = SocketCalls.sendSome(descriptor, UnsafeRawPointer(operation.base! + operation.doneBytes), remaining)
                if sent == -Int(EAGAIN) { return }
                if sent < 0 {
                    _ = sockets[descriptor]!.sends.pop()
                    complete(operation.token, .send, result: sent)
                    continue
                }
                operation.doneBytes += sent
            }
            if operation.doneBytes == operation.count {
                _ = sockets[descriptor]!.sends.pop()
                complete(operation.token, .send, result: operation.count)
            } else {
                sockets[descriptor]!.sends.first = operation
            }
        }
    }
}
