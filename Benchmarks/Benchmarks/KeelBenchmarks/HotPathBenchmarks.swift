import Benchmark
import KeelClient
import KeelCore
import KeelRuntime
import KeelWire

/// Suites for the wire codecs, the egress queue and the client's offer path (issue 7 §4). Each
/// measures 100 messages of 32 bytes per iteration, with set-up and warm-up outside the measurement.
func registerHotPathBenchmarks() {
    Benchmark("Wire:_encode_100_request_frames_of_32_B") { benchmark in
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 100 * RequestFrame.encodedLength(payloadByteCount: 32), alignment: 16)
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 16)
        defer { buffer.deallocate(); payload.deallocate() }
        payload.initializeMemory(as: UInt8.self, repeating: 7)
        let frameBytes = RequestFrame.encodedLength(payloadByteCount: 32)
        var sequence: Int64 = 1
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for index in 0..<100 {
                let slot = UnsafeMutableRawBufferPointer(rebasing: buffer[(index * frameBytes)..<((index + 1) * frameBytes)])
                RequestFrame.encode(into: slot, sessionID: 1, sequence: sequence, payload: UnsafeRawBufferPointer(payload))
                sequence += 1
            }
        }
        benchmark.stopMeasurement()
        blackHole(buffer[0])
    }

    Benchmark("Wire:_decode_100_response_frames_of_32_B_(stream_decoder_+_validation)") { benchmark in
        let frameBytes = ResponseFrame.encodedLength(payloadByteCount: 32)
        let stream = UnsafeMutableRawBufferPointer.allocate(byteCount: 100 * frameBytes, alignment: 16)
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 16)
        defer { stream.deallocate(); payload.deallocate() }
        payload.initializeMemory(as: UInt8.self, repeating: 9)
        for index in 0..<100 {
            let slot = UnsafeMutableRawBufferPointer(rebasing: stream[(index * frameBytes)..<((index + 1) * frameBytes)])
            ResponseFrame.encode(into: slot, sessionID: 1, sequence: Int64(index + 1), timestamp: ClusterTime(rawValue: 5), payload: UnsafeRawBufferPointer(payload))
        }
        let decoder = FrameStreamDecoder(maxFrameLengthBytes: 4096, capacityBytes: 1 << 16)
        var checksum: Int64 = 0
        func decodeAll() throws(WireRejection) {
            decoder.append(UnsafeRawBufferPointer(stream))
            while let frame = try decoder.nextFrame() {
                if case .response(let response) = try WireMessage(validating: frame) { checksum &+= response.sequence }
            }
        }
        do throws(WireRejection) {
            for _ in 0..<1000 { try decodeAll() }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { try decodeAll() }
            benchmark.stopMeasurement()
        } catch {
            benchmark.error("decode failed: \(error)")
        }
        blackHole(checksum)
    }

    Benchmark("Egress_queue:_offer_and_take_100_responses_of_32_B") { benchmark in
        let queue = EgressQueue(capacityBytes: 1 << 20)
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 16)
        defer { payload.deallocate() }
        payload.initializeMemory(as: UInt8.self, repeating: 3)
        var taken: Int64 = 0
        func cycle() {
            for index in 0..<100 {
                let offered = queue.offer(kind: .response, sessionID: 1, correlation: Int64(index + 1), timestamp: ClusterTime(rawValue: 1), payload: UnsafeRawBufferPointer(payload))
                precondition(offered, "the egress queue is sized for a whole batch")
            }
            while let record = queue.peek() {
                taken &+= record.correlation
                queue.release()
            }
        }
        for _ in 0..<1000 { cycle() }  // wrap the ring a few times before measuring
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { cycle() }
        benchmark.stopMeasurement()
        blackHole(taken)
    }

    Benchmark("Client:_offer_100_requests_of_32_B_and_poll_their_responses_(loopback_leader)", configuration: .init(maxIterations: 20_000)) { benchmark in
        do {
            let leader = try FakeLeader()
            defer { leader.stop() }
            var configuration = ClusterClientConfiguration(members: [ClusterMemberAddress(id: MemberID(0), host: "127.0.0.1", clientPort: leader.port)])
            configuration.maxOutstandingRequests = 256
            let client = ClusterClient(configuration: configuration, clock: MonotonicClock())
            defer { client.close() }
            try client.connect(timeoutNanos: 10_000_000_000)
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 16)
            defer { payload.deallocate() }
            payload.initializeMemory(as: UInt8.self, repeating: 1)
            var answered = 0
            func roundTrip() throws(ClusterClientError) {
                for _ in 0..<100 {
                    guard case .accepted = client.offer(UnsafeRawBufferPointer(payload)) else { preconditionFailure("offer refused") }
                }
                var remaining = 100
                while remaining > 0 {
                    try client.poll(waitingUpToNanos: 1_000_000) { _ in remaining -= 1; answered += 1 }
                }
            }
            for _ in 0..<200 { try roundTrip() }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { try roundTrip() }
            benchmark.stopMeasurement()
            blackHole(answered)
        } catch {
            benchmark.error("client benchmark failed: \(error)")
        }
    }
}

/// The exactly-once bookkeeping a service agent does per request (issue 8 §7): the session table's
/// sequence check (`admit`) and the response window's record of the reply (`recordResponse`), with the
/// default window (1,024 requests, 1 MiB per session), warmed past the point where every window is full
/// and its buffer has settled. One session (all in cache) and 64 in turn (`keel bench cluster --sessions 64`).
func registerExactlyOnceBenchmarks() {
    for sessionCount in [1, 64] {
        let name = "Sessions:_exactly-once_admit_+_record_100_requests_of_32_B_(\(sessionCount)_session\(sessionCount == 1 ? "" : "s"))"
        Benchmark(name) { benchmark in exactlyOnceCycles(benchmark, sessionCount: sessionCount) }
    }
}

private func exactlyOnceCycles(_ benchmark: Benchmark, sessionCount: Int) {
    var table = SessionTable(limits: ResponseWindowLimits())
    for id in 1...sessionCount { table.open(id: Int64(id), secret: UInt64(id), principal: [], timestamp: ClusterTime(rawValue: 1)) }
    var sequences = [Int64](repeating: 0, count: sessionCount + 1)
    let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 16)
    defer { payload.deallocate() }
    payload.initializeMemory(as: UInt8.self, repeating: 5)
    var next = 0, applied = 0
    func cycle() {
        for _ in 0..<100 {
            let id = next % sessionCount + 1
            next += 1
            sequences[id] += 1
            let timestamp = ClusterTime(rawValue: Int64(next))
            guard case .apply = table.admit(sessionID: Int64(id), sequence: sequences[id], timestamp: timestamp) else {
                preconditionFailure("a fresh sequence must be applied")
            }
            table.recordResponse(sessionID: Int64(id), sequence: sequences[id], timestamp: timestamp, payload: UnsafeRawBufferPointer(payload))
            applied += 1
        }
    }
    // Every window full (1,024 requests per session) several times over, so each buffer has settled.
    for _ in 0..<(4 * 1024 * sessionCount / 100 + 100) { cycle() }
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations { cycle() }
    benchmark.stopMeasurement()
    blackHole(applied)
}
