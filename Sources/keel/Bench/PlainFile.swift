import Glibc
import KeelCore

/// A file driven by plain blocking syscalls on the calling thread: the benchmarks' baseline, kept
/// independent of Keel's own I/O code so it measures the kernel, not us.
struct PlainFile {
    let descriptor: Int32
    let path: String

    /// `extraFlags`: more open flags (O_DSYNC for the write-through sync measurement).
    init(path: String, extraFlags: Int32 = 0) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | extraFlags, 0o644)
        guard fd >= 0 else { throw IOError(.open, errno: errno, subject: path) }
        descriptor = fd
        self.path = path
    }

    func close() { _ = Glibc.close(descriptor) }

    func writeFully(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw IOError(.write, errno: errno, subject: path)
            }
            done += n
        }
    }

    func datasync() throws {
        guard fdatasync(descriptor) == 0 else { throw IOError(.datasync, errno: errno, subject: path) }
    }

    func fallocate(bytes: Int64) throws {
        let result = posix_fallocate(descriptor, 0, off_t(bytes))  // returns the errno itself
        guard result == 0 else { throw IOError(.preallocate, errno: result, subject: path) }
    }

    /// Preallocates by writing zeros (1 MiB at a time) and syncing, so every block is allocated *and*
    /// written — no unwritten extents left for a later sync to convert.
    func zeroFill(bytes: Int64) throws {
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { chunk.deallocate() }
        chunk.initializeMemory(as: UInt8.self, repeating: 0)
        var offset: Int64 = 0
        while offset < bytes {
            let length = Int(min(Int64(chunk.count), bytes - offset))
            try writeFully(UnsafeRawBufferPointer(rebasing: chunk[..<length]), at: offset)
            offset += Int64(length)
        }
        try datasync()
    }
}

/// How a benchmark file gets its space before the measured writes.
enum Preallocation: String, Codable, CaseIterable {
    /// `fallocate`: blocks reserved as unwritten extents; the first sync after writing converts them.
    case fallocated
    /// Zeros written and synced: blocks allocated and written.
    case zeroFilled = "zero-filled"
    /// Nothing: each write grows the file.
    case growing

    func prepare(_ file: PlainFile, bytes: Int64) throws {
        switch self {
        case .fallocated: try file.fallocate(bytes: bytes); try file.datasync()
        case .zeroFilled: try file.zeroFill(bytes: bytes)
        case .growing: break
        }
    }
}
