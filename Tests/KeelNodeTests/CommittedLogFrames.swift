import Glibc
import KeelWire

/// One frame of a node's log, read from its segment files by the layout in docs/log-format.md.
struct CommittedFrame: Equatable, CustomStringConvertible {
    let position: Int64
    let type: UInt16
    let term: Int64
    /// The CRC checked against the frame's own bytes.
    let crcValid: Bool
    /// The bytes every replica must hold identically: the frame without its CRC (4..<8) and, for
    /// non-padding frames, without its durable position (48..<56), which each member stamps with
    /// its own value and re-seals. A padding frame's covered part is its first 32 bytes.
    let replicatedBytes: [UInt8]

    var description: String { "frame at \(position) type \(type) term \(term) (\(replicatedBytes.count + 4) B)" }
}

enum LogFormatError: Error, CustomStringConvertible {
    case bad(String)
    var description: String { if case .bad(let text) = self { text } else { "" } }
}

/// Reads the frames of the log in `directory` (a node's DIR/log) from its start up to
/// `limitPosition`, which must be a frame boundary (e.g. the commit position).
enum CommittedLogReader {
    static let headerBytes: Int64 = 4096
    static let frameHeaderBytes = 64

    static func frames(directory: String, upTo limitPosition: Int64) throws -> [CommittedFrame] {
        var frames: [CommittedFrame] = []
        var position: Int64?
        for name in try segmentNames(directory) {
            if let reached = position, reached >= limitPosition { break }
            let (start, length, bytes) = try readSegment("\(directory)/\(name)", upTo: limitPosition)
            if let reached = position, reached != start { throw LogFormatError.bad("\(name) starts at \(start), expected \(reached)") }
            var offset = 0
            while start + Int64(offset) < min(limitPosition, start + length) {
                let frame = try parseFrame(bytes, at: offset, position: start + Int64(offset), name: name)
                frames.append(frame.frame)
                offset += frame.occupiedBytes
            }
            position = start + Int64(offset)
        }
        guard let reached = position, reached == limitPosition else {
            throw LogFormatError.bad("frames in \(directory) end at \(position ?? -1), not at \(limitPosition)")
        }
        return frames
    }

    private static func parseFrame(_ bytes: [UInt8], at offset: Int, position: Int64, name: String) throws -> (frame: CommittedFrame, occupiedBytes: Int) {
        guard offset + 32 <= bytes.count else { throw LogFormatError.bad("\(name): frame at \(position) beyond the bytes read") }
        let length = Int(load(UInt32.self, bytes, offset))
        let type = load(UInt16.self, bytes, offset + 10)
        let term = load(Int64.self, bytes, offset + 16)
        guard length >= 32, offset + (type == 0 ? 32 : length) <= bytes.count else {
            throw LogFormatError.bad("\(name): frame at \(position) has length \(length)")
        }
        let covered = type == 0 ? 32 : length
        precondition(type == 0 || length >= frameHeaderBytes)
        let storedCRC = load(UInt32.self, bytes, offset + 4)
        let crc = bytes.withUnsafeBytes { raw in
            let head = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + 4)]))
            return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[(offset + 8)..<(offset + covered)]), continuing: head)
        }
        var replicated = Array(bytes[offset..<(offset + 4)]) + bytes[(offset + 8)..<(offset + covered)]
        if type != 0 { replicated.removeSubrange(44..<52) }  // frame bytes 48..<56, shifted by the removed CRC
        let frame = CommittedFrame(position: position, type: type, term: term, crcValid: crc == storedCRC, replicatedBytes: replicated)
        return (frame, (length + 31) & ~31)
    }

    /// The segment's start position, length and data bytes up to `limitPosition` (at most the whole segment).
    private static func readSegment(_ path: String, upTo limitPosition: Int64) throws -> (start: Int64, length: Int64, data: [UInt8]) {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw LogFormatError.bad("open \(path): errno \(errno)") }
        defer { close(descriptor) }
        let header = try readFully(descriptor, count: 64, offset: 0, path: path)
        guard Array(header[0..<8]) == Array("KEELLOG1".utf8) else { throw LogFormatError.bad("\(path): bad magic") }
        let start = load(Int64.self, header, 24), length = load(Int64.self, header, 32)
        let wanted = Int(max(0, min(length, limitPosition - start)))
        // Whole frames may run past the limit only if the limit is not a frame boundary; read a
        // little more so such a frame is still parsed (and then reported as overrunning).
        let data = try readFully(descriptor, count: min(Int(length), wanted + 32), offset: headerBytes, path: path)
        return (start, length, data)
    }

    private static func readFully(_ descriptor: Int32, count: Int, offset: Int64, path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            guard got > 0 else { throw LogFormatError.bad("pread \(path) at \(offset + Int64(done)): \(got < 0 ? "errno \(errno)" : "end of file")") }
            done += got
        }
        return bytes
    }

    private static func segmentNames(_ directory: String) throws -> [String] {
        guard let handle = opendir(directory) else { throw LogFormatError.bad("opendir \(directory): errno \(errno)") }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasPrefix("log-") && name.hasSuffix(".seg") { names.append(name) }
        }
        return names.sorted()  // 16 hex digits of the start position: sorted names are in log order
    }

    private static func load<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], _ offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
