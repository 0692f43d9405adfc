import CKeelShims
import Glibc
import KeelCore

// Shared file mappings. The log's readers read committed frames straight from a read-only mapping;
// the writer may copy appends into a writable one (DESIGN.md decision 4). Control path only: the
// dictionary of lengths is touched when mapping and unmapping, never per access.
extension IOUringStorage {
    public func mapForReading(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(try map(file, bytes: bytes, protection: PROT_READ, populate: false))
    }

    public func mapForWriting(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeMutableRawBufferPointer {
        try map(file, bytes: bytes, protection: PROT_READ | PROT_WRITE, populate: false)
    }

    /// Maps for writing with every page faulted in up front (MAP_POPULATE), so the first store to
    /// each page does not fault on the hot path.
    public func mapForWriting(_ file: FileID, bytes: Int, populate: Bool) throws(IOError) -> UnsafeMutableRawBufferPointer {
        try map(file, bytes: bytes, protection: PROT_READ | PROT_WRITE, populate: populate)
    }

    public func unmap(_ mapping: UnsafeRawBufferPointer) {
        guard let base = mapping.baseAddress else { return }  // an empty mapping has nothing to release
        guard let length = mappingLengths.removeValue(forKey: base) else {
            preconditionFailure("unmapping \(base), which this storage did not map")
        }
        precondition(munmap(UnsafeMutableRawPointer(mutating: base), length) == 0, "munmap failed: errno \(errno)")
    }

    /// Faults in the pages of `range` ahead of need (the log pre-faults the next segment), so that
    /// later accesses do not stall on page faults. `forWriting` prepares the pages for stores too
    /// (MADV_POPULATE_WRITE on a writable mapping); otherwise only for reading.
    /// Falls back to MADV_WILLNEED plus reading one byte per page on kernels before 5.14.
    public func prefault(_ range: UnsafeRawBufferPointer, forWriting: Bool) throws(IOError) {
        guard let base = range.baseAddress, range.count > 0 else { return }
        // madvise wants a page-aligned start.
        let page = UInt(systemPageSizeBytes)
        let start = UInt(bitPattern: base) & ~(page - 1)
        let length = Int(UInt(bitPattern: base) - start) + range.count
        let address = UnsafeMutableRawPointer(bitPattern: start)
        let advice = forWriting ? KEEL_MADV_POPULATE_WRITE : KEEL_MADV_POPULATE_READ
        var result: Int32
        repeat { result = madvise(address, length, advice) } while result != 0 && errno == EINTR
        if result == 0 { return }
        guard errno == EINVAL else { throw IOError(.map, errno: errno, subject: "\(location) (prefault)") }
        _ = madvise(address, length, MADV_WILLNEED)
        var checksum: UInt8 = 0
        var offset = 0
        while offset < range.count {
            checksum &+= range.load(fromByteOffset: offset, as: UInt8.self)
            offset += systemPageSizeBytes
        }
        keepAlive(checksum)
    }

    private func map(_ file: FileID, bytes: Int, protection: Int32, populate: Bool) throws(IOError) -> UnsafeMutableRawBufferPointer {
        precondition(bytes >= 0, "mapping size must not be negative")
        if bytes == 0 { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        // Touching a mapped page beyond the end of the file raises SIGBUS: refuse such a mapping.
        let size = try fileSize(file)
        guard Int64(bytes) <= size else { throw IOError(.map, errno: EINVAL, subject: "\(subject(file)) (\(bytes) bytes > size \(size))") }
        let flags = MAP_SHARED | (populate ? MAP_POPULATE : 0)
        guard let base = mmap(nil, bytes, protection, flags, file.rawValue, 0), base != MAP_FAILED else {
            throw IOError(.map, errno: errno, subject: subject(file))
        }
        mappingLengths[UnsafeRawPointer(base)] = bytes
        return UnsafeMutableRawBufferPointer(start: base, count: bytes)
    }
}

/// Consumes a value so the optimizer cannot drop the loads that produced it.
@inline(never) @_optimize(none)
private func keepAlive(_ value: UInt8) {
    _ = value
}
