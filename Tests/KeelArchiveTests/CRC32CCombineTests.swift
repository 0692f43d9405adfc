@testable import KeelArchive
import KeelCore
import KeelWire
import Testing

/// The CRC join the writer and verifier rely on equals a CRC over the joined bytes.
@Suite struct CRC32CCombineTests {
    @Test func combiningEqualsChecksummingTheConcatenation() {
        var random = SeededRandom(seed: 77)
        for lengths in [(0, 0), (1, 0), (0, 1), (9, 1), (16, 4096), (1000, 1 << 20), (5, 3), (128, 65_537)] {
            let a = patternBytes(count: lengths.0, seed: random.next())
            let b = patternBytes(count: lengths.1, seed: random.next())
            let crcA = a.withUnsafeBytes { CRC32C.checksum($0) }
            let crcB = b.withUnsafeBytes { CRC32C.checksum($0) }
            let joined = (a + b).withUnsafeBytes { CRC32C.checksum($0) }
            #expect(CRC32CCombine.combine(crcA, crcB, secondBytes: b.count) == joined, "lengths \(lengths)")
        }
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.checksum($0) } == 0xE306_9283)
    }
}
