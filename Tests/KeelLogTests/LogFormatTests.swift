import KeelCore
@testable import KeelLog
import Testing

@Suite struct LogFormatTests {
    @Test func segmentNamesSortByStartPositionAndParseBack() {
        let starts: [Int64] = [0, 4096, 65_536, 1 << 32, 0x7FFF_0000_0000_0000]
        let names = starts.map { LogFormat.segmentFileName(start: LogPosition($0)) }
        #expect(names == names.sorted())
        #expect(names[0] == "log-0000000000000000.seg")
        #expect(names.map { LogFormat.segmentStart(fileName: $0)?.rawValue } == starts)
        #expect(LogFormat.segmentStart(fileName: "hard-state") == nil)
        #expect(LogFormat.segmentStart(fileName: "log-xyz0000000000000.seg") == nil)
    }

    @Test func frameRoundTripsAndEveryFlippedBitIsCaught() {
        let payload: [UInt8] = Array(0..<77)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 32)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xEE)
        let entry = LogEntryHeader(type: .timerEvent, sessionID: -3, correlationID: 99, timestamp: ClusterTime(rawValue: 12345), flags: 0)
        let occupied = payload.withUnsafeBytes {
            FrameCodec.encodeFrame(into: buffer.baseAddress!, term: Term(4), entry: entry, durablePosition: LogPosition(640), payload: $0)
        }
        #expect(occupied == 160)  // 64 + 77 = 141, aligned to 32
        #expect(buffer[141..<160].allSatisfy { $0 == 0 })
        #expect(FrameCodec.check(buffer.baseAddress!, bytesToSegmentEnd: 4096, maxFrameBytes: 1024, availableBytes: 256) == .valid(occupiedBytes: 160))
        let view = LogFrameView(base: UnsafeRawPointer(buffer.baseAddress!), position: LogPosition(1024))
        #expect(view.type == .timerEvent && view.term == Term(4) && view.sessionID == -3 && view.correlationID == 99)
        #expect(view.timestamp == ClusterTime(rawValue: 12345) && view.durablePosition == LogPosition(640))
        #expect(Array(view.payload) == payload && view.endPosition == LogPosition(1184))
        for bit in 0..<(141 * 8) where !(bit / 8 >= 4 && bit / 8 < 8) {
            buffer[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            let check = FrameCodec.check(buffer.baseAddress!, bytesToSegmentEnd: 4096, maxFrameBytes: 1024, availableBytes: 256)
            #expect(check != .valid(occupiedBytes: 160), "flipped bit \(bit) went unnoticed")
            buffer[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
        }
    }

    @Test func paddingFrameMustEndTheSegment() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 96, alignment: 32)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        FrameCodec.encodePadding(into: buffer.baseAddress!, bytes: 96, term: Term(2))
        #expect(FrameCodec.check(buffer.baseAddress!, bytesToSegmentEnd: 96, maxFrameBytes: 1024, availableBytes: 96) == .valid(occupiedBytes: 96))
        if case .invalid = FrameCodec.check(buffer.baseAddress!, bytesToSegmentEnd: 128, maxFrameBytes: 1024, availableBytes: 128) {} else {
            Issue.record("padding that stops short of the segment end was accepted")
        }
        FrameCodec.encodePadding(into: buffer.baseAddress!, bytes: 32, term: Term(2))
        #expect(FrameCodec.check(buffer.baseAddress!, bytesToSegmentEnd: 32, maxFrameBytes: 1024, availableBytes: 32) == .valid(occupiedBytes: 32))
    }

    @Test func unknownFrameVersionIsReportedAsSuch() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 32)
        defer { buffer.deallocate() }
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        _ = FrameCodec.encodeFrame(into: buffer.baseAddress!, term: Term(1), entry: LogEntryHeader(type: .sessionOpen), durablePosition: .zero, payload: empty)
        buffer[FrameField.version] = 9
        let crc = FrameCodec.checksum(UnsafeRawPointer(buffer.baseAddress!), length: 64)
        buffer.storeBytes(of: crc.littleEndian, toByteOffset: FrameField.crc, as: UInt32.self)
        #expect(FrameCodec.check(buffer.baseAddress!, bytesToSegmentEnd: 4096, maxFrameBytes: 1024, availableBytes: 64) == .unsupportedVersion(9))
    }

    @Test func segmentHeaderRoundTripsAndRejectsDamage() {
        var bytes = [UInt8](repeating: 0, count: 64)
        let header = SegmentHeader(formatVersion: 1, clusterID: 42, startPosition: LogPosition(1 << 20), segmentLengthBytes: 1 << 20)
        bytes.withUnsafeMutableBytes { header.encode(into: $0) }
        #expect(bytes.withUnsafeBytes { SegmentHeader.decode($0) } == .valid(header))
        bytes[20] ^= 1
        if case .invalid = bytes.withUnsafeBytes({ SegmentHeader.decode($0) }) {} else { Issue.record("damaged header accepted") }
        var future = [UInt8](repeating: 0, count: 64)
        var newer = header
        newer.formatVersion = 7
        future.withUnsafeMutableBytes { newer.encode(into: $0) }
        #expect(future.withUnsafeBytes { SegmentHeader.decode($0) } == .unsupportedVersion(7))
    }
}
