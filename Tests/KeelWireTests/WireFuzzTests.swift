import KeelCore
import KeelWire
import Testing

/// Decodes `frame` with the one typed decoder of `type` (not the dispatching one); returns the
/// rejection, or nil when accepted.
private func typedRejection(_ type: MessageType, _ frame: UnsafeRawBufferPointer) -> WireRejection? {
    do throws(WireRejection) {
        switch type {
        case .connect: _ = try ConnectFrame(validating: frame)
        case .connectAccepted: _ = try ConnectAcceptedFrame(validating: frame)
        case .redirect: _ = try RedirectFrame(validating: frame)
        case .connectRejected: _ = try ConnectRejectedFrame(validating: frame)
        case .sessionOpened: _ = try SessionOpenedFrame(validating: frame)
        case .sessionClosed: _ = try SessionClosedFrame(validating: frame)
        case .request: _ = try RequestFrame(validating: frame)
        case .response: _ = try ResponseFrame(validating: frame)
        case .keepAlive, .close: _ = try SessionSignalFrame(validating: frame, type: type)
        case .reattach: _ = try ReattachFrame(validating: frame)
        case .requestRejected: _ = try RequestRejectedFrame(validating: frame)
        case .challenge, .challengeResponse: _ = try AuthenticationExchangeFrame(validating: frame, type: type)
        case .adminRequest: _ = try AdminRequestFrame(validating: frame)
        case .adminResponse: _ = try AdminResponseFrame(validating: frame)
        case .handshake: _ = try HandshakeFrame(validating: frame)
        case .handshakeRefused: _ = try HandshakeRefusedFrame(validating: frame)
        case .memberAuthentication: _ = try MemberAuthenticationFrame(validating: frame)
        case .appendEntries: _ = try AppendEntriesFrame(validating: frame)
        case .appendResponse: _ = try AppendResponseFrame(validating: frame)
        case .heartbeat: _ = try HeartbeatFrame(validating: frame)
        case .heartbeatResponse: _ = try HeartbeatResponseFrame(validating: frame)
        case .voteRequest: _ = try VoteRequestFrame(validating: frame)
        case .voteResponse: _ = try VoteResponseFrame(validating: frame)
        case .timeoutNow: _ = try TimeoutNowFrame(validating: frame)
        case .snapshotChunk: _ = try SnapshotChunkFrame(validating: frame)
        case .caughtUp: _ = try CaughtUpFrame(validating: frame)
        case .snapshotOffer: _ = try SnapshotOfferFrame(validating: frame)
        case .snapshotAck: _ = try SnapshotAckFrame(validating: frame)
        case .snapshotAbort: _ = try SnapshotAbortFrame(validating: frame)
        }
        return nil
    } catch {
        return error
    }
}

/// How many frames the fuzz run feeds. The figure is 10⁶: a release build runs that by
/// default. A debug build runs 5·10⁵ (measured: 10⁶ take 14 s of CPU in debug here, 25 s of wall
/// time while other builds share the 2 cores — over the ~20 s budget), each frame going through the
/// dispatching decoder, one typed decoder and the stream decoder. KEEL_WIRE_FUZZ_ITERATIONS
/// overrides both (`KEEL_WIRE_FUZZ_ITERATIONS=1000000` for the full run in debug).
private var fuzzIterations: Int {
    if let text = Environment.variable("KEEL_WIRE_FUZZ_ITERATIONS"), let value = Int(text), value > 0 { return value }
    #if DEBUG
    return 500_000
    #else
    return 1_000_000
    #endif
}

/// The environment without Foundation (KeelWireTests depends on KeelWire and KeelCore only).
private enum Environment {
    static func variable(_ name: String) -> String? {
        // The stdlib has no getenv and this target imports neither Foundation nor Glibc: bind the
        // C library's getenv directly.
        guard let pointer = keelTestGetenv(name) else { return nil }
        return String(cString: pointer)
    }
}

@_silgen_name("getenv")
private func keelTestGetenv(_ name: UnsafePointer<CChar>) -> UnsafePointer<CChar>?

/// Fuzz-style: random and mutated frames into every decoder. Must never crash or hang; every
/// rejection is a `WireRejection` (the decoders' typed throws guarantee that much at compile
/// time); every accepted frame must be canonical (re-encoding its fields gives its exact bytes);
/// and every rejection reason must turn up, which shows the mutations reach every rule.
@Suite struct WireFuzzTests {
    /// One mutated or random frame.
    private static func sample(_ rng: inout SeededRandom) -> (bytes: [UInt8], pristine: Bool) {
        let type = MessageType.allCases.randomElement(using: &rng)!
        var bytes = FrameSamples.random(type, using: &rng, maxVariableBytes: 48)
        let mode = rng.next() % 8
        switch mode {
        case 0:
            return (bytes, true)
        case 1:
            // Pure noise, sometimes behind a plausible header so it reaches the field checks.
            bytes = (0..<Int(rng.next() % 96)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if bytes.count >= 8 && rng.next() & 1 == 0 {
                bytes.replaceSubrange(0..<4, with: withUnsafeBytes(of: UInt32(bytes.count).littleEndian, Array.init))
                bytes[4] = WireProtocol.version
                bytes[5] = type.rawValue
            }
        case 2, 3:
            // Flip a few bits anywhere (header included).
            for _ in 0...(rng.next() % 3) where !bytes.isEmpty {
                bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1) << UInt8(rng.next() % 8)
            }
        case 4:
            // Overwrite one aligned 8-byte field of the body with an edge value; keep the header honest.
            let edges: [Int64] = [0, 1, -1, Int64.min, Int64.max, 1 << 32, 0x7FFF_FFFF, 48]
            let fieldCount = (bytes.count - 8) / 8
            if fieldCount > 0 {
                let offset = 8 + 8 * Int(rng.next() % UInt64(fieldCount))
                bytes.replaceSubrange(offset..<(offset + 8), with: withUnsafeBytes(of: edges.randomElement(using: &rng)!.littleEndian, Array.init))
            }
        case 5:
            // Overwrite one 16-bit field (reasons, lengths, ports, flags) with a random value.
            if bytes.count >= 8 {
                let offset = 6 + 2 * Int(rng.next() % UInt64((bytes.count - 6) / 2))
                bytes.replaceSubrange(offset..<(offset + 2), with: withUnsafeBytes(of: UInt16(truncatingIfNeeded: rng.next()), Array.init))
            }
        case 6:
            // Truncate or extend, then sometimes make the header's length agree with the new size.
            if rng.next() & 1 == 0 {
                bytes.removeLast(Int(rng.next() % UInt64(bytes.count + 1)))
            } else {
                bytes += (0..<Int(1 + rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            if bytes.count >= 4 && rng.next() & 1 == 0 {
                bytes.replaceSubrange(0..<4, with: withUnsafeBytes(of: UInt32(bytes.count).littleEndian, Array.init))
            }
        default:
            // A wrong version or type byte.
            if rng.next() & 1 == 0 { bytes[4] = UInt8(truncatingIfNeeded: rng.next()) } else { bytes[5] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return (bytes, false)
    }

    @Test(.timeLimit(.minutes(2)))
    func randomAndMutatedFramesIntoEveryDecoder() {
        var rng = SeededRandom(seed: 0x5EED_F00D)
        var seen = Set<WireRejectionReason>()
        var accepted = 0, pristine = 0, nonCanonical = 0, pristineRejected = 0, inconsistent = 0
        let stream = FrameStreamDecoder(maxFrameLengthBytes: 256, capacityBytes: 512)
        var streamFrames = 0
        for _ in 0..<fuzzIterations {
            let (bytes, isPristine) = Self.sample(&rng)
            if isPristine { pristine += 1 }
            bytes.withUnsafeBytes { raw in
                do throws(WireRejection) {
                    let message = try WireMessage(validating: raw)
                    accepted += 1
                    var again = reencode(message)
                    // Handshakes keep whatever (non-zero) header version the peer sent; the
                    // encoder writes this build's.
                    if message.type.isVersionIndependent { again[4] = bytes[4] }
                    if again != bytes { nonCanonical += 1 }
                } catch {
                    seen.insert(error.reason)
                    if isPristine { pristineRejected += 1 }
                }
                // One typed decoder too, picked at random: it may accept only what the dispatcher accepts.
                let type = MessageType.allCases.randomElement(using: &rng)!
                if let typed = typedRejection(type, raw) {
                    seen.insert(typed.reason)
                } else if rejection(of: bytes) != nil || raw[5] != type.rawValue {
                    inconsistent += 1
                }
                // And the stream decoder, fed the same bytes in two pieces; a failed stream is reset
                // as a connection would be replaced.
                let cut = Int(rng.next() % UInt64(raw.count + 1))
                for piece in [UnsafeRawBufferPointer(rebasing: raw[..<cut]), UnsafeRawBufferPointer(rebasing: raw[cut...])] {
                    var rest = piece
                    while !rest.isEmpty {
                        let taken = stream.append(rest)
                        rest = UnsafeRawBufferPointer(rebasing: rest[taken...])
                        do throws(WireRejection) {
                            while let frame = try stream.nextFrame() {
                                streamFrames += 1
                                #expect(frame.count >= WireProtocol.headerBytes && frame.count <= 256)
                            }
                        } catch {
                            seen.insert(error.reason)
                            stream.reset()
                        }
                    }
                }
            }
        }
        print("wire fuzz: \(fuzzIterations) frames, \(accepted) accepted (\(pristine) unmutated), \(streamFrames) cut from the stream, reasons seen: \(seen.map(\.description).sorted())")
        #expect(pristineRejected == 0, "valid frames rejected")
        #expect(nonCanonical == 0, "accepted frames that do not re-encode to the same bytes")
        #expect(inconsistent == 0, "a typed decoder accepted what the dispatcher rejected")
        #expect(accepted >= pristine)
        #expect(streamFrames > 0)
        #expect(seen == Set(WireRejectionReason.allCases), "rejection reasons never reached: \(Set(WireRejectionReason.allCases).subtracting(seen))")
    }
}
