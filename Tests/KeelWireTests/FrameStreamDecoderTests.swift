import KeelCore
import KeelWire
import Testing

/// Cutting a TCP byte stream into frames.
@Suite struct FrameStreamDecoderTests {
    /// Feeds `stream` in pieces of the given sizes (cycled), collecting every frame's bytes.
    private func frames(of stream: [UInt8], pieceSizes: [Int], decoder: FrameStreamDecoder) throws(WireRejection) -> [[UInt8]] {
        var collected: [[UInt8]] = []
        var offset = 0, piece = 0
        while offset < stream.count {
            let size = min(pieceSizes[piece % pieceSizes.count], stream.count - offset)
            piece += 1
            let space = decoder.receiveSpace()
            let count = min(size, space.count)
            precondition(count > 0, "decoder full")
            stream.withUnsafeBytes { raw in
                space.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + count)]))
            }
            decoder.didReceive(byteCount: count)
            offset += count
            while let frame = try decoder.nextFrame() { collected.append(Array(frame)) }
        }
        return collected
    }

    @Test func framesSplitAcrossReceivesComeOutWhole() throws {
        var rng = SeededRandom(seed: 42)
        var originals: [[UInt8]] = []
        for _ in 0..<300 {
            originals.append(FrameSamples.random(MessageType.allCases.randomElement(using: &rng)!, using: &rng, maxVariableBytes: 300))
        }
        let stream = originals.flatMap { $0 }
        for pieces in [[1], [3, 7], [4096], [stream.count], [5, 1000, 13]] {
            let decoder = FrameStreamDecoder(maxFrameLengthBytes: 4096, capacityBytes: 4096)
            let got = try frames(of: stream, pieceSizes: pieces, decoder: decoder)
            #expect(got == originals, "pieces \(pieces)")
            #expect(decoder.bufferedByteCount == 0)
        }
        // Every frame the stream yields validates.
        for frame in originals { #expect(rejection(of: frame) == nil) }
    }

    @Test func largeFrameAcrossManyReceives() throws {
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let frame = payload.withUnsafeBytes { bytes in
            encoded(capacity: 24 + bytes.count) { RequestFrame.encode(into: $0, sessionID: 1, sequence: 1, payload: bytes) }
        }
        let decoder = FrameStreamDecoder(maxFrameLengthBytes: 256 << 10)
        let got = try frames(of: frame + frame, pieceSizes: [65536, 1, 12345], decoder: decoder)
        #expect(got == [frame, frame])
    }

    @Test func oversizedFrameIsRejectedBeforeItIsBuffered() throws {
        let decoder = FrameStreamDecoder(maxFrameLengthBytes: 1024)
        // Only the length field has arrived: that is enough to refuse.
        let header = hex("01040000")  // 1025
        #expect(decoder.append(header.withUnsafeBytes { $0 }) == 4)
        #expect(throws: WireRejection.tooLong(length: 1025, maximum: 1024)) { try decoder.nextFrame() }
        // The stream stays failed.
        #expect(throws: WireRejection.tooLong(length: 1025, maximum: 1024)) { try decoder.nextFrame() }
        #expect(decoder.failure?.reason == .tooLong)
        decoder.reset()
        #expect(decoder.failure == nil)
        let afterReset = try decoder.nextFrame()
        #expect(afterReset == nil)
    }

    @Test func lengthBelowTheHeaderIsRejected() {
        let decoder = FrameStreamDecoder(maxFrameLengthBytes: 1024)
        decoder.append(hex("03000000 0101").withUnsafeBytes { $0 })
        #expect(throws: WireRejection.tooShort(length: 3, minimum: 8)) { try decoder.nextFrame() }
    }

    @Test func appendTakesOnlyWhatFits() throws {
        let decoder = FrameStreamDecoder(maxFrameLengthBytes: 64, capacityBytes: 64)
        let frame = encoded { TimeoutNowFrame.encode(into: $0, term: Term(1)) }  // 16 bytes
        let five = Array(repeating: frame, count: 5).flatMap { $0 }  // 80 bytes
        let taken = five.withUnsafeBytes { decoder.append($0) }
        #expect(taken == 64)
        var count = 0
        while try decoder.nextFrame() != nil { count += 1 }
        #expect(count == 4)
        let rest = five.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[64...])) }
        #expect(rest == 16)
        let last = try #require(try decoder.nextFrame())
        #expect(Array(last) == frame)
    }

    @Test func partialFrameMovesToTheFrontOfTheBuffer() throws {
        let decoder = FrameStreamDecoder(maxFrameLengthBytes: 40, capacityBytes: 40)
        let a = encoded { HeartbeatFrame.encode(into: $0, term: Term(1), leaderCommit: LogPosition(1)) }  // 24
        let b = encoded { HeartbeatFrame.encode(into: $0, term: Term(2), leaderCommit: LogPosition(2)) }
        let stream = a + b
        // 24 + 16 fills the buffer; the second frame is cut in half.
        #expect(stream.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<40])) } == 40)
        #expect(try decoder.nextFrame().map(Array.init) == a)
        #expect(try decoder.nextFrame() == nil)
        // Room appears only by moving the 16 buffered bytes to the front.
        #expect(decoder.receiveSpace().count == 24)
        #expect(stream.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[40...])) } == 8)
        #expect(try decoder.nextFrame().map(Array.init) == b)
    }
}
