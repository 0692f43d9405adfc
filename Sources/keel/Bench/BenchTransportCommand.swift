import ArgumentParser
import Foundation
import Glibc
import Histogram
import KeelCore
import KeelIO

/// `keel bench transport`: 32-byte frames between two processes over loopback TCP, through
/// `IOUringTransport` and through plain blocking sockets, in the same run.
///
/// - one-way: the peer sends `--frames` frames, `--batch` frames per send (one send in flight);
///   this process receives and checks every frame's sequence number. Frames per second from the
///   accept to the last byte.
/// - ping-pong: this process sends one frame, the peer echoes it; round-trip percentiles.
///
/// The peer is this executable itself (`keel bench transport-peer`, hidden), started per series.
struct BenchTransportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "Measure one-way frame throughput and ping-pong latency through io_uring against blocking sockets.",
        discussion: "Goals (issue 5): ping-pong p50 within 1.5x of the blocking baseline; one-way at least 10 M frames/s.")

    @Option(help: "Frames per one-way series.")
    var frames: Int = 20_000_000
    @Option(help: "Frames per send (batching).")
    var batch: Int = 2048
    @Option(help: "Round trips per ping-pong series (after 1,000 warm-up trips).")
    var pings: Int = 20_000
    @Option(help: "Runs; medians are reported.")
    var runs: Int = 5
    @Option(help: "io_uring setup mode for both processes (automatic, deferTaskRun, cooperativeTaskRun, basic).")
    var ringMode: Ring.SetupMode = .automatic
    @Option(help: "Write all results as JSON to this file.")
    var json: String?
    @Flag(help: "A short smoke run (CI): its figures are not for recording.")
    var quick = false

    func run() throws {
        try requireIOUring()
        let sizes = quick
            ? TransportBenchmark.Sizes(frames: 500_000, batchFrames: batch, pings: 2_000, runs: 1, ringMode: ringMode)
            : TransportBenchmark.Sizes(frames: frames, batchFrames: batch, pings: pings, runs: runs, ringMode: ringMode)
        let machine = MachineDescription.current(directory: "/tmp")
        print("keel bench transport — \(machine.cpuModel), \(machine.cores) cores, kernel \(machine.kernel); loopback TCP, 32-byte frames; ring mode \(ringMode)")
        var results: [TransportBenchmark.RunResult] = []
        for run in 1...sizes.runs {
            print("  run \(run)/\(sizes.runs)")
            results.append(try TransportBenchmark(sizes: sizes).runOnce())
        }
        let report = TransportBenchmarkReport(machine: machine, sizes: sizes, runs: results, quick: quick)
        report.printTable()
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            print("results written to \(json)")
        }
    }
}

/// The benchmark's other process (hidden): connects back to `--port` and sends or echoes.
struct BenchTransportPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "transport-peer", abstract: "(internal) the peer of `keel bench transport`.", shouldDisplay: false)

    @Option var port: UInt16
    @Option var mode: TransportBenchmark.PeerMode
    @Option var frames: Int = 0
    @Option var batch: Int = 2048
    @Option var ringMode: Ring.SetupMode = .automatic

    func run() throws {
        switch mode {
        case .ringSend: try RingPeer(port: port, mode: ringMode).send(frames: frames, batchFrames: batch)
        case .ringEcho: try RingPeer(port: port, mode: ringMode).echo()
        case .plainSend: try PlainPeer(port: port).send(frames: frames, batchFrames: batch)
        case .plainEcho: try PlainPeer(port: port).echo()
        }
    }
}

// MARK: - Report

/// Medians over the runs, the goals, and every run's figures.
struct TransportBenchmarkReport: Codable {
    var machine: MachineDescription
    var sizes: TransportBenchmark.Sizes
    var quick: Bool
    var medianRingFramesPerSecond: Double
    var medianPlainFramesPerSecond: Double
    var medianRingPingPongP50Nanos: UInt64
    var medianPlainPingPongP50Nanos: UInt64
    var medianRingPingPongP99Nanos: UInt64
    var medianPlainPingPongP99Nanos: UInt64
    var medianRingPingPongP999Nanos: UInt64
    var medianPlainPingPongP999Nanos: UInt64
    /// Ring p50 over plain p50 (goal: at most 1.5).
    var pingPongP50Ratio: Double
    var pingPongGoalMet: Bool
    /// Goal: at least 10 M frames/s one-way through the ring.
    var oneWayGoalMet: Bool
    var runs: [TransportBenchmark.RunResult]

    init(machine: MachineDescription, sizes: TransportBenchmark.Sizes, runs: [TransportBenchmark.RunResult], quick: Bool) {
        func median<T: Comparable>(_ values: [T]) -> T { values.sorted()[values.count / 2] }
        self.machine = machine
        self.sizes = sizes
        self.quick = quick
        self.runs = runs
        medianRingFramesPerSecond = median(runs.map(\.ringFramesPerSecond))
        medianPlainFramesPerSecond = median(runs.map(\.plainFramesPerSecond))
        medianRingPingPongP50Nanos = median(runs.map(\.ringPingPong.p50Nanos))
        medianPlainPingPongP50Nanos = median(runs.map(\.plainPingPong.p50Nanos))
        medianRingPingPongP99Nanos = median(runs.map(\.ringPingPong.p99Nanos))
        medianPlainPingPongP99Nanos = median(runs.map(\.plainPingPong.p99Nanos))
        medianRingPingPongP999Nanos = median(runs.map(\.ringPingPong.p999Nanos))
        medianPlainPingPongP999Nanos = median(runs.map(\.plainPingPong.p999Nanos))
        pingPongP50Ratio = Double(medianRingPingPongP50Nanos) / Double(max(1, medianPlainPingPongP50Nanos))
        pingPongGoalMet = pingPongP50Ratio <= 1.5
        oneWayGoalMet = medianRingFramesPerSecond >= 10_000_000
    }

    func printTable() {
        let runsNote = "median of \(runs.count) run\(runs.count == 1 ? "" : "s")"
        print("")
        print("one-way, 32-byte frames, \(sizes.batchFrames) per send, \(sizes.frames) frames (\(runsNote))")
        print("  ring   \(padLeft(formatFixed(medianRingFramesPerSecond / 1e6, decimals: 2), 8)) M frames/s   goal ≥ 10: \(oneWayGoalMet ? "met" : "NOT met")")
        print("  plain  \(padLeft(formatFixed(medianPlainFramesPerSecond / 1e6, decimals: 2), 8)) M frames/s")
        print("ping-pong round trip, 32-byte frame, µs (\(sizes.pings) trips, \(runsNote))")
        print("  " + padRight("", 7) + ["p50", "p99", "p99.9"].map { padLeft($0, 9) }.joined())
        print("  " + padRight("ring", 7) + [medianRingPingPongP50Nanos, medianRingPingPongP99Nanos, medianRingPingPongP999Nanos].map { padLeft(micros($0), 9) }.joined())
        print("  " + padRight("plain", 7) + [medianPlainPingPongP50Nanos, medianPlainPingPongP99Nanos, medianPlainPingPongP999Nanos].map { padLeft(micros($0), 9) }.joined())
        print("  ring/plain p50 = \(formatFixed(pingPongP50Ratio, decimals: 2))   goal ≤ 1.5: \(pingPongGoalMet ? "met" : "NOT met")")
        if quick { print("(quick run: not for recording)") }
    }
}

// MARK: - Frames

/// The benchmark frame: 32 bytes, little-endian.
/// ```
///  0        4        8                16                              32
/// +--------+--------+----------------+-------------------------------+
/// | length | type   | sequence       | payload (zeros)               |
/// +--------+--------+----------------+-------------------------------+
/// ```
enum BenchFrame {
    static let bytes = 32
    static let type: UInt32 = 0xBE

    /// Encodes frames `first ..< first + count` into `buffer` (which holds at least that many).
    static func encode(into buffer: UnsafeMutableRawBufferPointer, first: Int, count: Int) {
        for index in 0..<count {
            let offset = index * bytes
            buffer.storeBytes(of: UInt32(bytes).littleEndian, toByteOffset: offset, as: UInt32.self)
            buffer.storeBytes(of: type.littleEndian, toByteOffset: offset + 4, as: UInt32.self)
            buffer.storeBytes(of: UInt64(first + index).littleEndian, toByteOffset: offset + 8, as: UInt64.self)
        }
    }
}

/// Checks a stream of frames as it arrives in arbitrary pieces: every whole frame's length and
/// sequence number (the frames straddling piece boundaries are counted, not checked).
struct FrameStreamChecker {
    private(set) var streamBytes = 0
    private(set) var badFrames = 0

    var frames: Int { streamBytes / BenchFrame.bytes }

    mutating func consume(_ piece: UnsafeRawBufferPointer) {
        let skip = (BenchFrame.bytes - streamBytes % BenchFrame.bytes) % BenchFrame.bytes
        var offset = skip
        var sequence = (streamBytes + skip) / BenchFrame.bytes
        while offset + BenchFrame.bytes <= piece.count {
            let length = UInt32(littleEndian: piece.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let number = UInt64(littleEndian: piece.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
            if length != UInt32(BenchFrame.bytes) || number != UInt64(sequence) { badFrames += 1 }
            offset += BenchFrame.bytes
            sequence += 1
        }
        streamBytes += piece.count
    }
}

// MARK: - The measuring side

struct TransportBenchmark {
    struct Sizes: Codable {
        var frames: Int
        var batchFrames: Int
        var pings: Int
        var runs: Int
        var ringMode: Ring.SetupMode
    }

    enum PeerMode: String, ExpressibleByArgument, Codable {
        case ringSend = "ring-send", ringEcho = "ring-echo", plainSend = "plain-send", plainEcho = "plain-echo"
    }

    struct RunResult: Codable {
        var ringFramesPerSecond: Double
        var plainFramesPerSecond: Double
        var ringPingPong: LatencySummary
        var plainPingPong: LatencySummary
    }

    static let warmUpPings = 1_000
    static let seriesTimeoutNanos: Int64 = 60_000_000_000

    let sizes: Sizes

    func runOnce() throws -> RunResult {
        let ringOneWay = try RingMeasurer(mode: sizes.ringMode).oneWay(sizes: sizes)
        let plainOneWay = try PlainMeasurer().oneWay(sizes: sizes)
        let ringPing = try RingMeasurer(mode: sizes.ringMode).pingPong(sizes: sizes)
        let plainPing = try PlainMeasurer().pingPong(sizes: sizes)
        print("    one-way: ring \(formatFixed(ringOneWay / 1e6, decimals: 2)) M frames/s, plain \(formatFixed(plainOneWay / 1e6, decimals: 2)) M frames/s;"
              + " ping-pong p50: ring \(micros(ringPing.p50Nanos)) µs, plain \(micros(plainPing.p50Nanos)) µs")
        return RunResult(ringFramesPerSecond: ringOneWay, plainFramesPerSecond: plainOneWay, ringPingPong: ringPing, plainPingPong: plainPing)
    }
}

/// Starts this executable as the benchmark's peer.
func startPeer(port: UInt16, mode: TransportBenchmark.PeerMode, sizes: TransportBenchmark.Sizes) throws -> Process {
    var pathBuffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &pathBuffer, pathBuffer.count - 1)
    guard length > 0 else { throw BenchmarkError("cannot find this executable (/proc/self/exe): \(errnoName(errno))") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: String(decoding: pathBuffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    process.arguments = ["bench", "transport-peer", "--port", "\(port)", "--mode", mode.rawValue,
                         "--frames", "\(sizes.frames)", "--batch", "\(sizes.batchFrames)", "--ring-mode", sizes.ringMode.rawValue]
    try process.run()
    return process
}

/// Waits for the peer to exit (killing it when it overstays) and fails on a non-zero status.
func finishPeer(_ process: Process) throws {
    let deadline = monotonicNanos() + 10_000_000_000
    while process.isRunning && monotonicNanos() < deadline { usleep(1_000) }
    if process.isRunning {
        process.terminate()
        throw BenchmarkError("the benchmark peer did not exit")
    }
    guard process.terminationStatus == 0 else { throw BenchmarkError("the benchmark peer failed (status \(process.terminationStatus))") }
}

/// Measures through `IOUringTransport`.
final class RingMeasurer {
    let ring: Ring
    let transport: IOUringTransport
    var completions = IOCompletionBuffer(capacity: 64)

    init(mode: Ring.SetupMode) throws {
        ring = try Ring(configuration: .init(setupMode: mode))
        transport = IOUringTransport(ring: ring)
    }

    /// Completions reaped but not asked for yet (a send and a receive can complete together).
    private var waiting: [IOCompletion] = []

    /// Waits (in the kernel) for the next completion with `token`.
    func next(_ token: IOToken, deadline: Int64) throws -> IOCompletion {
        waiting.reserveCapacity(64)
        while true {
            if let index = waiting.firstIndex(where: { $0.token == token }) {
                let completion = waiting.remove(at: index)
                if let error = completion.error { throw error }
                return completion
            }
            transport.reapCompletions(into: &completions)
            for index in 0..<completions.count { waiting.append(completions[index]) }
            let reapedAny = !completions.isEmpty
            completions.removeAll()
            if reapedAny { continue }
            guard monotonicNanos() < deadline else { throw BenchmarkError("timed out waiting for \(token)") }
            try transport.waitForCompletions(timeoutNanos: 100_000_000)
        }
    }

    func acceptPeer(mode: TransportBenchmark.PeerMode, sizes: TransportBenchmark.Sizes) throws -> (ConnectionID, ConnectionID, Process, Int64) {
        let listener = try transport.listen(host: "127.0.0.1", port: 0)
        let peer = try startPeer(port: try transport.localPort(listener), mode: mode, sizes: sizes)
        try transport.submitAccept(listener, token: IOToken(1))
        let accepted = try next(IOToken(1), deadline: monotonicNanos() + 10_000_000_000)
        return (ConnectionID(rawValue: accepted.result), listener, peer, monotonicNanos())
    }

    func oneWay(sizes: TransportBenchmark.Sizes) throws -> Double {
        let (connection, listener, peer, start) = try acceptPeer(mode: .ringSend, sizes: sizes)
        defer { transport.close(connection); transport.close(listener) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var checker = FrameStreamChecker()
        let deadline = start + TransportBenchmark.seriesTimeoutNanos
        while checker.frames < sizes.frames {
            try transport.submitReceive(connection, into: buffer, token: IOToken(2))
            let received = try next(IOToken(2), deadline: deadline)
            guard received.result > 0 else { throw BenchmarkError("the peer closed after \(checker.frames) frames") }
            checker.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<Int(received.result)]))
        }
        let elapsed = monotonicNanos() - start
        try finishPeer(peer)
        guard checker.badFrames == 0 else { throw BenchmarkError("\(checker.badFrames) frames arrived damaged or out of order") }
        return Double(checker.frames) / (Double(elapsed) / 1e9)
    }

    func pingPong(sizes: TransportBenchmark.Sizes) throws -> LatencySummary {
        let pings = sizes.pings
        let (connection, listener, peer, start) = try acceptPeer(mode: .ringEcho, sizes: sizes)
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchFrame.bytes, alignment: 64)
        let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchFrame.bytes, alignment: 64)
        defer { frame.deallocate(); reply.deallocate() }
        var histogram = LatencySummary.makeHistogram()
        let deadline = start + TransportBenchmark.seriesTimeoutNanos
        for index in 0..<(TransportBenchmark.warmUpPings + pings) {
            BenchFrame.encode(into: frame, first: index, count: 1)
            let sentAt = monotonicNanos()
            // Send and receive go to the kernel in one submit; the send completes first.
            try transport.submitSend(connection, UnsafeRawBufferPointer(frame), token: IOToken(3))
            try transport.submitReceive(connection, into: reply, token: IOToken(4))
            _ = try next(IOToken(3), deadline: deadline)
            var got = Int(try next(IOToken(4), deadline: deadline).result)
            while got < BenchFrame.bytes {
                guard got > 0 else { throw BenchmarkError("the echo peer closed") }
                try transport.submitReceive(connection, into: UnsafeMutableRawBufferPointer(rebasing: reply[got...]), token: IOToken(4))
                got += Int(try next(IOToken(4), deadline: deadline).result)
            }
            if index >= TransportBenchmark.warmUpPings { histogram.record(UInt64(monotonicNanos() - sentAt)) }
        }
        transport.close(connection)
        transport.close(listener)
        try finishPeer(peer)
        return LatencySummary(histogram)
    }
}

/// Measures through plain blocking sockets (the baseline).
struct PlainMeasurer {
    func acceptPeer(mode: TransportBenchmark.PeerMode, sizes: TransportBenchmark.Sizes) throws -> (Int32, Process, Int64) {
        let listener = try PlainSocket.listenOnLoopback()
        defer { Glibc.close(listener.descriptor) }
        let peer = try startPeer(port: listener.port, mode: mode, sizes: sizes)
        let connection = accept(listener.descriptor, nil, nil)
        guard connection >= 0 else { throw BenchmarkError("accept: \(errnoName(errno))") }
        try PlainSocket.setNoDelay(connection)
        return (connection, peer, monotonicNanos())
    }

    func oneWay(sizes: TransportBenchmark.Sizes) throws -> Double {
        let (connection, peer, start) = try acceptPeer(mode: .plainSend, sizes: sizes)
        defer { Glibc.close(connection) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var checker = FrameStreamChecker()
        while checker.frames < sizes.frames {
            let count = read(connection, buffer.baseAddress, buffer.count)
            guard count > 0 else { throw BenchmarkError("the peer closed after \(checker.frames) frames") }
            checker.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        let elapsed = monotonicNanos() - start
        try finishPeer(peer)
        guard checker.badFrames == 0 else { throw BenchmarkError("\(checker.badFrames) frames arrived damaged or out of order") }
        return Double(checker.frames) / (Double(elapsed) / 1e9)
    }

    func pingPong(sizes: TransportBenchmark.Sizes) throws -> LatencySummary {
        let pings = sizes.pings
        let (connection, peer, _) = try acceptPeer(mode: .plainEcho, sizes: sizes)
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchFrame.bytes, alignment: 64)
        let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchFrame.bytes, alignment: 64)
        defer { frame.deallocate(); reply.deallocate() }
        var histogram = LatencySummary.makeHistogram()
        for index in 0..<(TransportBenchmark.warmUpPings + pings) {
            BenchFrame.encode(into: frame, first: index, count: 1)
            let sentAt = monotonicNanos()
            try PlainSocket.writeAll(connection, UnsafeRawBufferPointer(frame))
            try PlainSocket.readExactly(connection, into: reply)
            if index >= TransportBenchmark.warmUpPings { histogram.record(UInt64(monotonicNanos() - sentAt)) }
        }
        Glibc.close(connection)
        try finishPeer(peer)
        return LatencySummary(histogram)
    }
}

// MARK: - The peer side

/// Blocking-socket helpers for the baseline and the plain peer.
enum PlainSocket {
    static func listenOnLoopback() throws -> (descriptor: Int32, port: UInt16) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw BenchmarkError("socket: \(errnoName(errno))") }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else { throw BenchmarkError("bind/listen: \(errnoName(errno))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return (descriptor, UInt16(bigEndian: address.sin_port))
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    static func connect(port: UInt16) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard descriptor >= 0, result == 0 else { throw BenchmarkError("connect to port \(port): \(errnoName(errno))") }
        try setNoDelay(descriptor)
        return descriptor
    }

    static func setNoDelay(_ descriptor: Int32) throws {
        var one: Int32 = 1
        guard setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw BenchmarkError("TCP_NODELAY: \(errnoName(errno))")
        }
    }

    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let count = write(descriptor, bytes.baseAddress! + done, bytes.count - done)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw BenchmarkError("write: \(errnoName(errno))") }
            done += count
        }
    }

    /// Reads exactly `buffer.count` bytes; false at end of stream before the first byte.
    @discardableResult
    static func readExactly(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        var done = 0
        while done < buffer.count {
            let count = read(descriptor, buffer.baseAddress! + done, buffer.count - done)
            if count < 0 && errno == EINTR { continue }
            if count == 0 && done == 0 { return false }
            guard count > 0 else { throw BenchmarkError("read: \(count == 0 ? "end of stream" : errnoName(errno))") }
            done += count
        }
        return true
    }
}

/// The peer over blocking sockets.
struct PlainPeer {
    let port: UInt16

    func send(frames: Int, batchFrames: Int) throws {
        let connection = try PlainSocket.connect(port: port)
        defer { Glibc.close(connection) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: batchFrames * BenchFrame.bytes, alignment: 4096)
        defer { buffer.deallocate() }
        var sent = 0
        while sent < frames {
            let count = min(batchFrames, frames - sent)
            BenchFrame.encode(into: buffer, first: sent, count: count)
            try PlainSocket.writeAll(connection, UnsafeRawBufferPointer(rebasing: buffer[0..<count * BenchFrame.bytes]))
            sent += count
        }
    }

    func echo() throws {
        let connection = try PlainSocket.connect(port: port)
        defer { Glibc.close(connection) }
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchFrame.bytes, alignment: 64)
        defer { frame.deallocate() }
        while try PlainSocket.readExactly(connection, into: frame) {
            try PlainSocket.writeAll(connection, UnsafeRawBufferPointer(frame))
        }
    }
}

/// The peer through `IOUringTransport`: one send in flight, the next batch encoded meanwhile.
struct RingPeer {
    let port: UInt16
    let mode: Ring.SetupMode

    func connect(_ measurer: RingMeasurer) throws -> ConnectionID {
        let connection = try measurer.transport.submitConnect(host: "127.0.0.1", port: port, token: IOToken(1))
        _ = try measurer.next(IOToken(1), deadline: monotonicNanos() + 10_000_000_000)
        return connection
    }

    func send(frames: Int, batchFrames: Int) throws {
        let measurer = try RingMeasurer(mode: mode)
        let connection = try connect(measurer)
        let batchBytes = batchFrames * BenchFrame.bytes
        let buffers = [UnsafeMutableRawBufferPointer.allocate(byteCount: batchBytes, alignment: 4096),
                       UnsafeMutableRawBufferPointer.allocate(byteCount: batchBytes, alignment: 4096)]
        defer { buffers.forEach { $0.deallocate() } }
        let deadline = monotonicNanos() + TransportBenchmark.seriesTimeoutNanos
        var encoded = min(batchFrames, frames)
        BenchFrame.encode(into: buffers[0], first: 0, count: encoded)
        var current = 0, currentBytes = encoded * BenchFrame.bytes
        while currentBytes > 0 {
            var offset = 0
            try measurer.transport.submitSend(connection, UnsafeRawBufferPointer(rebasing: buffers[current][0..<currentBytes]), token: IOToken(2))
            // Encode the next batch while this one is in the kernel.
            let nextCount = min(batchFrames, frames - encoded)
            BenchFrame.encode(into: buffers[1 - current], first: encoded, count: nextCount)
            encoded += nextCount
            while true {
                offset += Int(try measurer.next(IOToken(2), deadline: deadline).result)
                if offset == currentBytes { break }
                try measurer.transport.submitSend(connection, UnsafeRawBufferPointer(rebasing: buffers[current][offset..<currentBytes]), token: IOToken(2))
            }
            current = 1 - current
            currentBytes = nextCount * BenchFrame.bytes
        }
        measurer.transport.close(connection)
    }

    func echo() throws {
        let measurer = try RingMeasurer(mode: mode)
        let connection = try connect(measurer)
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchFrame.bytes, alignment: 64)
        let outgoing = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchFrame.bytes, alignment: 64)
        defer { incoming.deallocate(); outgoing.deallocate() }
        let deadline = monotonicNanos() + TransportBenchmark.seriesTimeoutNanos
        var got = 0
        var sendInFlight = false
        try measurer.transport.submitReceive(connection, into: incoming, token: IOToken(3))
        while true {
            let count = Int(try measurer.next(IOToken(3), deadline: deadline).result)
            if count == 0 { break }
            got += count
            if got == BenchFrame.bytes {
                // The reply and the next receive go to the kernel in one submit; the reply's
                // buffer is reused only after its send has completed.
                if sendInFlight { _ = try measurer.next(IOToken(4), deadline: deadline) }
                outgoing.copyMemory(from: UnsafeRawBufferPointer(incoming))
                try measurer.transport.submitSend(connection, UnsafeRawBufferPointer(outgoing), token: IOToken(4))
                sendInFlight = true
                got = 0
            }
            try measurer.transport.submitReceive(connection, into: UnsafeMutableRawBufferPointer(rebasing: incoming[got...]), token: IOToken(3))
        }
        measurer.transport.close(connection)
    }
}

extension Ring.SetupMode: ExpressibleByArgument {}
extension Ring.SetupMode: Codable {}
