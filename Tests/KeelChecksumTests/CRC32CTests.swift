import CKeelChecksum
import KeelCore
import Testing

@Suite struct CRC32CTests {
    private func crc(_ bytes: [UInt8], _ function: (UInt32, UnsafeRawPointer?, Int) -> UInt32) -> UInt32 {
        bytes.withUnsafeBytes { function(0, $0.baseAddress, $0.count) }
    }

    @Test func standardCheckValue() {
        let digits = Array("123456789".utf8)
        #expect(crc(digits, keel_crc32c) == 0xE306_9283)
        #expect(crc(digits, keel_crc32c_portable) == 0xE306_9283)
        if keel_crc32c_hardware_available() != 0 {
            #expect(crc(digits, keel_crc32c_hardware) == 0xE306_9283)
        }
    }

    @Test func knownVectorsFromRFC3720() {
        // iSCSI (RFC 3720 B.4) test patterns.
        #expect(crc([UInt8](repeating: 0, count: 32), keel_crc32c) == 0x8A91_36AA)
        #expect(crc([UInt8](repeating: 0xFF, count: 32), keel_crc32c) == 0x62A8_AB43)
        #expect(crc((0..<32).map { UInt8($0) }, keel_crc32c) == 0x46DD_794E)
    }

    @Test func hardwareAndPortableAgreeOnRandomInputs() {
        guard keel_crc32c_hardware_available() != 0 else { return }
        var random = SeededRandom(seed: 0xC4C)
        // Lengths cover the unaligned head, the 8-byte loop, the tail and the three-stream blocks.
        let lengths = [0, 1, 7, 8, 9, 63, 4095, 12_287, 12_288, 12_289, 40_000, 100_003]
        for length in lengths {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            for offset in [0, 1, 3] where offset <= length {
                bytes.withUnsafeBytes { raw in
                    let slice = UnsafeRawBufferPointer(rebasing: raw[offset...])
                    let hardware = keel_crc32c_hardware(0x1234_5678, slice.baseAddress, slice.count)
                    let portable = keel_crc32c_portable(0x1234_5678, slice.baseAddress, slice.count)
                    #expect(hardware == portable, "length \(length) offset \(offset)")
                }
            }
        }
    }

    @Test func continuingEqualsOneShot() {
        var random = SeededRandom(seed: 99)
        let bytes = (0..<50_000).map { _ in UInt8.random(in: 0...255, using: &random) }
        bytes.withUnsafeBytes { raw in
            let whole = keel_crc32c(0, raw.baseAddress, raw.count)
            let first = keel_crc32c(0, raw.baseAddress, 17_001)
            let both = keel_crc32c(first, raw.baseAddress! + 17_001, raw.count - 17_001)
            #expect(whole == both)
        }
    }

    @Test func singleBitFlipChangesTheChecksum() {
        var bytes = [UInt8](repeating: 0x5A, count: 4096)
        let before = crc(bytes, keel_crc32c)
        bytes[2000] ^= 0x10
        #expect(crc(bytes, keel_crc32c) != before)
    }
}
