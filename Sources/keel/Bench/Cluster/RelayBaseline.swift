import ArgumentParser
import Foundation
import Glibc
import KeelCore
import KeelLocalCluster
import Synchronization

/// The same-run baseline of `keel bench cluster`: the four hops of the cluster's path
/// (client → leader → follower → leader → client) with no logic — a three-process TCP relay over
/// blocking sockets with TCP_NODELAY. Process A forwards the client's bytes to process B, which
/// sends them straight back, and A returns them to the client. The client side (this process)
/// sends on one thread, at each message's scheduled time, and receives on another.
final class RelayBaseline {
    let relayA: ChildProcess
    let relayB: ChildProcess
    let connection: Int32
    let messageBytes: Int

    init(binary: String, directory: String, messageBytes: Int) throws {
        self.messageBytes = messageBytes
        let ports = try LocalFiles.freePorts(2)
        relayB = try ChildProcess.spawn(binary, ["bench", "relay-peer", "--listen", "\(ports[1])"], outputPath: "\(directory)/relay-b.log")
        relayA = try ChildProcess.spawn(
            binary, ["bench", "relay-peer", "--listen", "\(ports[0])", "--forward", "\(ports[1])"], outputPath: "\(directory)/relay-a.log")
        connection = try PlainSocket.connectRetrying(port: ports[0], timeoutNanos: 10_000_000_000)
        // A receive timeout lets the receiving loop notice the schedule's end while nothing arrives.
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func close() {
        Glibc.close(connection)
        relayA.stop()
        relayB.stop()
    }

    /// Shared between the sending thread and the receiving one.
    final class Progress: Sendable {
        let sent = Atomic<Int64>(0)
        let received = Atomic<Int64>(0)
        let senderDone = Atomic<Bool>(false)
        let senderError = Atomic<Int32>(0)
    }

    /// Runs `schedule` through the relay with at most `inFlightMax` messages unanswered; returns
    /// the recorder and the backlog at the middle and at the end of the measured window.
    func run(_ schedule: OpenLoopSchedule, inFlightMax: Int64, drainNanos: Int64, progressLine: ProgressLine, onTick: (Int64) -> Void)
        throws -> (recorder: CorrectedLatencyRecorder, sent: Int64, received: Int64, backlogMid: Int64, backlogEnd: Int64)
    {
        let progress = Progress()
        let fd = connection, size = messageBytes
        let sender = Thread {
            RelayBaseline.send(schedule, fd: fd, messageBytes: size, inFlightMax: inFlightMax, progress: progress)
        }
        sender.start()
        var recorder = CorrectedLatencyRecorder(schedule: schedule)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 64)
        defer { buffer.deallocate() }
        var carried = 0, received: Int64 = 0
        var backlogMid: Int64 = -1, backlogEnd: Int64 = -1
        let middle = schedule.measureStartNanos + schedule.measureNanos / 2
        while true {
            let now = monotonicNanos()
            onTick(now)
            let due = schedule.dueCount(atNanos: now)
            if backlogMid < 0 && now >= middle { backlogMid = due - received }
            if backlogEnd < 0 && now >= schedule.endNanos { backlogEnd = due - received }
            progressLine.update(now: now, sent: progress.sent.load(ordering: .relaxed), received: received, backlog: max(0, due - received))
            if progress.senderDone.load(ordering: .acquiring) && received >= progress.sent.load(ordering: .relaxed) { break }
            if now > schedule.endNanos + drainNanos { break }
            let count = read(fd, buffer.baseAddress! + carried, buffer.count - carried)
            if count < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            guard count > 0 else { throw BenchmarkError("relay: the connection ended: \(count == 0 ? "closed" : errnoName(errno))") }
            let arrived = monotonicNanos()
            let total = carried + count
            var offset = 0
            while offset + size <= total {
                let message = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + size)])
                recorder.record(scheduledNanos: BenchMessage.scheduledNanos(message), receivedNanos: arrived)
                offset += size
                received += 1
            }
            carried = total - offset
            if carried > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + offset, byteCount: carried) }
            progress.received.store(received, ordering: .releasing)
        }
        progressLine.finish()
        // Everything echoed before the window closed: the window's CPU and backlog are read at its end.
        if monotonicNanos() < schedule.endNanos { sleepUntil(schedule.endNanos) }
        onTick(monotonicNanos())
        if backlogMid < 0 { backlogMid = schedule.dueCount(atNanos: middle) - received }
        if backlogEnd < 0 { backlogEnd = schedule.messageCount - received }
        let error = progress.senderError.load(ordering: .relaxed)
        guard error == 0 else { throw BenchmarkError("relay: send failed: \(errnoName(error))") }
        // The sender stops by itself at the schedule's end; wait for it before the next phase.
        while !progress.senderDone.load(ordering: .acquiring) { usleep(1_000) }
        return (recorder, progress.sent.load(ordering: .relaxed), received, max(0, backlogMid), max(0, backlogEnd))
    }

    /// The sending thread: sleeps until the next message is due, then writes every message due (and
    /// allowed by the in-flight limit) in one write.
    static func send(_ schedule: OpenLoopSchedule, fd: Int32, messageBytes: Int, inFlightMax: Int64, progress: Progress) {
        _ = keelSetTimerSlack()
        let capacity = max(1, (1 << 16) / messageBytes)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity * messageBytes, alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        defer {
            buffer.deallocate()
            progress.senderDone.store(true, ordering: .releasing)
        }
        var sent: Int64 = 0
        let total = schedule.messageCount
        while sent < total {
            let now = monotonicNanos()
            // An overloaded phase ends on time: its unsent backlog is counted, not sent.
            if now >= schedule.endNanos + 100_000_000 { break }
            let allowed = min(schedule.dueCount(atNanos: now), progress.received.load(ordering: .acquiring) + inFlightMax)
            if allowed <= sent {
                if schedule.dueCount(atNanos: now) <= sent {
                    sleepUntil(schedule.scheduledNanos(of: sent))
                } else {
                    var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
                    nanosleep(&pause, nil)
                }
                continue
            }
            let count = Int(min(allowed - sent, Int64(capacity)))
            for index in 0..<count {
                let slot = UnsafeMutableRawBufferPointer(rebasing: buffer[(index * messageBytes)..<((index + 1) * messageBytes)])
                BenchMessage.stamp(slot, scheduledNanos: schedule.scheduledNanos(of: sent + Int64(index)), index: sent + Int64(index))
            }
            do {
                try PlainSocket.writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<(count * messageBytes)]))
            } catch {
                progress.senderError.store(errno == 0 ? EIO : errno, ordering: .relaxed)
                return
            }
            sent += Int64(count)
            progress.sent.store(sent, ordering: .releasing)
        }
    }

    /// CPU time of the two relay processes.
    func cpuNanos() -> [(name: String, nanos: Int64)] {
        [("relay A", relayA.cpuNanos ?? 0), ("relay B", relayB.cpuNanos ?? 0)]
    }
}

/// Sleeps (CLOCK_MONOTONIC, absolute) until `deadlineNanos`.
func sleepUntil(_ deadlineNanos: Int64) {
    var deadline = timespec(tv_sec: Int(deadlineNanos / 1_000_000_000), tv_nsec: Int(deadlineNanos % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nil) == EINTR {}
}

extension PlainSocket {
    /// Connects to a loopback port, retrying while nothing listens there yet.
    static func connectRetrying(port: UInt16, timeoutNanos: Int64) throws -> Int32 {
        let deadline = monotonicNanos() + timeoutNanos
        while true {
            do {
                return try connect(port: port)
            } catch {
                if monotonicNanos() > deadline { throw error }
                usleep(10_000)
            }
        }
    }
}

/// `keel bench relay-peer` (hidden): one process of the relay baseline. With `--forward`, process
/// A: accepts the client, connects to B, and copies bytes both ways on two threads. Without it,
/// process B: accepts A and sends every byte straight back. Blocking sockets, TCP_NODELAY.
struct BenchRelayPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "relay-peer", abstract: "(internal) a process of the relay baseline.", shouldDisplay: false)

    @Option var listen: UInt16
    @Option var forward: UInt16?

    func run() throws {
        let listener = try PlainSocket.listening(port: listen)
        if let forward {
            let next = try PlainSocket.connectRetrying(port: forward, timeoutNanos: 10_000_000_000)
            let client = try PlainSocket.accept(listener)
            let toNext = Thread { RelayBaselinePeer.copy(from: client, to: next) }
            toNext.start()
            RelayBaselinePeer.copy(from: next, to: client)
        } else {
            let client = try PlainSocket.accept(listener)
            RelayBaselinePeer.copy(from: client, to: client)
        }
    }
}

enum RelayBaselinePeer {
    /// Copies until the source ends, then half-closes the destination.
    static func copy(from source: Int32, to destination: Int32) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let count = read(source, buffer.baseAddress!, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            do { try PlainSocket.writeAll(destination, UnsafeRawBufferPointer(rebasing: buffer[0..<count])) } catch { break }
        }
        shutdown(destination, Int32(SHUT_WR))
    }
}

extension PlainSocket {
    static func listening(port: UInt16) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw BenchmarkError("socket: \(errnoName(errno))") }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(descriptor, 16) == 0 else { throw BenchmarkError("bind/listen on port \(port): \(errnoName(errno))") }
        return descriptor
    }

    static func accept(_ listener: Int32) throws -> Int32 {
        let descriptor = Glibc.accept(listener, nil, nil)
        guard descriptor >= 0 else { throw BenchmarkError("accept: \(errnoName(errno))") }
        try setNoDelay(descriptor)
        return descriptor
    }
}
