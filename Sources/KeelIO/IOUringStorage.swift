import CKeelShims
import Glibc
import KeelCore

/// `KeelCore.Storage` on real files in one directory: control-path calls are plain system calls on
/// the calling thread; `submitWrite` / `submitDatasync` go through a shared `Ring`.
///
/// A `FileID` is the file's descriptor, so the data path needs no lookup. Owned by one thread.
public final class IOUringStorage: Storage {
    /// How `preallocate` makes room.
    public enum PreallocationMethod: String, Sendable, CaseIterable {
        /// fallocate(2): blocks are reserved as unwritten extents (cheap; the first write to each
        /// block still converts its extent).
        case fallocate
        /// Writes zeros: slower to prepare, but later overwrites touch already-written blocks.
        case zeroFill
    }

    /// The directory's path.
    public let location: String
    /// The ring this storage submits to (shared with other owners on the same thread).
    public let ring: Ring
    /// This storage's identity on the ring.
    public let ringOwner: RingOwner
    /// How `preallocate(_:bytes:)` makes room; the IO benchmark compares the two.
    public var preallocationMethod: PreallocationMethod

    let directoryDescriptor: Int32
    /// Names of open files, by descriptor: only for error messages.
    private var openFileNames: [Int32: String] = [:]
    /// Lengths of live mappings, by base address: munmap needs the length back.
    var mappingLengths: [UnsafeRawPointer: Int] = [:]

    /// Opens (creating it when `createDirectory` and missing) the directory `path`, and registers on
    /// `ring` with room for `completionCapacity` unreaped completions (at least the most operations
    /// this storage will have in flight; a linked write+datasync counts two).
    public init(
        directory path: String, ring: Ring, createDirectory: Bool = true, completionCapacity: Int = 4096,
        preallocationMethod: PreallocationMethod = .fallocate
    ) throws(IOError) {
        if createDirectory, mkdir(path, 0o755) != 0, errno != EEXIST {
            throw IOError(.open, errno: errno, subject: path)
        }
        directoryDescriptor = try retryingOnInterrupt(.open, subject: path) {
            open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        location = path
        self.ring = ring
        self.preallocationMethod = preallocationMethod
        ringOwner = ring.registerOwner(completionCapacity: completionCapacity)
    }

    deinit {
        for (base, length) in mappingLengths { munmap(UnsafeMutableRawPointer(mutating: base), length) }
        for descriptor in openFileNames.keys { closeDescriptor(descriptor) }
        closeDescriptor(directoryDescriptor)
        ring.unregisterOwner(ringOwner)
    }

    /// "directory/name" of an open file, for messages.
    func subject(_ file: FileID) -> String {
        "\(location)/\(openFileNames[file.rawValue] ?? "fd \(file.rawValue)")"
    }

    func subject(_ name: String) -> String { "\(location)/\(name)" }

    // MARK: Files and directory

    public func listFiles() throws(IOError) -> [String] {
        // A fresh descriptor: readdir moves the descriptor's position, and the kept one is for fsync.
        guard let directory = opendir(location) else { throw IOError(.list, errno: errno, subject: location) }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw IOError(.list, errno: errno, subject: location) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let type = entry.pointee.d_type
            if type == UInt8(DT_REG) || (type == UInt8(DT_UNKNOWN) && isRegularFile(name)) { names.append(name) }
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    private func isRegularFile(_ name: String) -> Bool {
        var status = stat()
        return fstatat(directoryDescriptor, name, &status, AT_SYMLINK_NOFOLLOW) == 0 && status.st_mode & S_IFMT == S_IFREG
    }

    public func openFile(_ name: String, create: Bool) throws(IOError) -> FileID {
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        let descriptor = try retryingOnInterrupt(.open, subject: subject(name)) { openat(directoryDescriptor, name, flags, 0o644) }
        openFileNames[descriptor] = name
        return FileID(rawValue: descriptor)
    }

    public func closeFile(_ file: FileID) {
        precondition(openFileNames.removeValue(forKey: file.rawValue) != nil, "closing \(file), which this storage did not open")
        closeDescriptor(file.rawValue)
    }

    public func fileSize(_ file: FileID) throws(IOError) -> Int64 {
        var status = stat()
        _ = try retryingOnInterrupt(.stat, subject: subject(file)) { fstat(file.rawValue, &status) }
        return Int64(status.st_size)
    }

    public func deleteFile(_ name: String) throws(IOError) {
        _ = try retryingOnInterrupt(.delete, subject: subject(name)) { unlinkat(directoryDescriptor, name, 0) }
    }

    public func renameFile(_ name: String, to newName: String) throws(IOError) {
        _ = try retryingOnInterrupt(.rename, subject: "\(subject(name)) → \(newName)") {
            renameat(directoryDescriptor, name, directoryDescriptor, newName)
        }
    }

    public func syncDirectory() throws(IOError) {
        _ = try retryingOnInterrupt(.syncDirectory, subject: location) { fsync(directoryDescriptor) }
    }

    // MARK: Synchronous data path

    public func read(_ file: FileID, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int {
        var total = 0
        while total < buffer.count {
            let remaining = UnsafeMutableRawBufferPointer(rebasing: buffer[total...])
            let count = try retryingOnInterrupt(.read, subject: subject(file)) {
                pread(file.rawValue, remaining.baseAddress, remaining.count, off_t(offset) + off_t(total))
            }
            if count == 0 { break }
            total += count
        }
        return total
    }

    public func write(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws(IOError) {
        var total = 0
        while total < bytes.count {
            let remaining = UnsafeRawBufferPointer(rebasing: bytes[total...])
            let count = try retryingOnInterrupt(.write, subject: subject(file)) {
                pwrite(file.rawValue, remaining.baseAddress, remaining.count, off_t(offset) + off_t(total))
            }
            // pwrite returning 0 for a non-empty request would loop forever; the kernel reports ENOSPC instead.
            precondition(count > 0, "pwrite made no progress")
            total += count
        }
    }

    public func write(_ file: FileID, at offset: Int64, gathering pieces: UnsafeBufferPointer<IOVector>) throws(IOError) {
        precondition(pieces.count <= IOVector.maximumPieces, "at most \(IOVector.maximumPieces) pieces per gather write")
        guard let first = pieces.baseAddress else { return }
        var total = 0
        for piece in pieces { total += piece.count }
        // Safe because: IOVector has iovec's layout (checked below), and pwritev only reads the pieces.
        precondition(MemoryLayout<IOVector>.size == MemoryLayout<iovec>.size && MemoryLayout<IOVector>.stride == MemoryLayout<iovec>.stride)
        let written = try retryingOnInterrupt(.write, subject: subject(file)) {
            UnsafeRawPointer(first).withMemoryRebound(to: iovec.self, capacity: pieces.count) { vectors in
                pwritev(file.rawValue, vectors, Int32(pieces.count), off_t(offset))
            }
        }
        guard written < total else { return }
        // A short write (rare: a signal, or the disk filling): write the rest piece by piece.
        var skip = written
        var position = offset + Int64(written)
        for piece in pieces {
            if skip >= piece.count { skip -= piece.count; continue }
            let rest = UnsafeRawBufferPointer(start: piece.base! + skip, count: piece.count - skip)
            try write(file, at: position, rest)
            position += Int64(rest.count)
            skip = 0
        }
    }

    public func datasync(_ file: FileID) throws(IOError) {
        _ = try retryingOnInterrupt(.datasync, subject: subject(file)) { fdatasync(file.rawValue) }
    }

    public func preallocate(_ file: FileID, bytes: Int64) throws(IOError) {
        try preallocate(file, bytes: bytes, method: preallocationMethod)
    }

    /// Makes the file at least `bytes` long with its blocks allocated, by the given method. Never
    /// shrinks the file. Falls back to zero-filling where the file system lacks fallocate.
    public func preallocate(_ file: FileID, bytes: Int64, method: PreallocationMethod) throws(IOError) {
        precondition(bytes >= 0, "preallocation size must not be negative")
        if method == .fallocate {
            var result: Int32
            repeat { result = keel_fallocate_allocate(file.rawValue, 0, bytes) } while result == EINTR
            if result == 0 { return }
            if result != EOPNOTSUPP { throw IOError(.preallocate, errno: result, subject: subject(file)) }
        }
        let size = try fileSize(file)
        if size < bytes { try writeZeros(file, from: size, bytes: bytes - size, operation: .preallocate) }
    }

    public func zeroRange(_ file: FileID, at offset: Int64, bytes: Int64) throws(IOError) {
        precondition(offset >= 0 && bytes >= 0, "zero range must not be negative")
        // Bytes past the end read as nothing already; zeroing them would only allocate blocks.
        let end = min(offset + bytes, try fileSize(file))
        guard end > offset else { return }
        var result: Int32
        repeat { result = keel_fallocate_zero_range(file.rawValue, offset, end - offset) } while result == EINTR
        if result == 0 { return }
        guard result == EOPNOTSUPP || result == EINVAL else { throw IOError(.zeroRange, errno: result, subject: subject(file)) }
        // No FALLOC_FL_ZERO_RANGE on this file system: write the zeros.
        try writeZeros(file, from: offset, bytes: end - offset, operation: .zeroRange)
    }

    /// Writes `bytes` zeros at `offset` with pwrite, in chunks, from one page-aligned zero buffer.
    private func writeZeros(_ file: FileID, from offset: Int64, bytes: Int64, operation: IOOperation) throws(IOError) {
        let chunkBytes = 1 << 20
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: systemPageSizeBytes)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        var written: Int64 = 0
        while written < bytes {
            let count = Int(min(Int64(chunkBytes), bytes - written))
            do {
                try write(file, at: offset + written, UnsafeRawBufferPointer(rebasing: zeros[..<count]))
            } catch {
                throw IOError(operation, errno: error.errno, subject: error.subject)
            }
            written += Int64(count)
        }
    }

    // MARK: Asynchronous data path (through the ring)

    public func submitWrite(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer, token: IOToken, thenDatasync: Bool) throws(IOError) {
        if thenDatasync {
            try ring.reserveSubmissions(2)
            try ring.queueWrite(owner: ringOwner, descriptor: file.rawValue, bytes, offset: offset, token: token, linkNext: true)
            try ring.queueDatasync(owner: ringOwner, descriptor: file.rawValue, token: token)
        } else {
            try ring.queueWrite(owner: ringOwner, descriptor: file.rawValue, bytes, offset: offset, token: token)
        }
    }

    public func submitDatasync(_ file: FileID, token: IOToken) throws(IOError) {
        try ring.queueDatasync(owner: ringOwner, descriptor: file.rawValue, token: token)
    }

    public func submitSyncDirectory(token: IOToken) throws(IOError) {
        try ring.queueFullSync(owner: ringOwner, descriptor: directoryDescriptor, operation: .syncDirectory, token: token)
    }

    /// Queues a read of up to `buffer.count` bytes at `offset`, completing with the count read.
    public func submitRead(_ file: FileID, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer, token: IOToken) throws(IOError) {
        try ring.queueRead(owner: ringOwner, descriptor: file.rawValue, into: buffer, offset: offset, token: token)
    }

    public func flushSubmissions() throws(IOError) {
        try ring.submit()
    }

    public func reapCompletions(into completions: inout IOCompletionBuffer) {
        ring.reap()
        while !completions.isFull, let completion = ring.nextCompletion(for: ringOwner) {
            completions.append(completion.ioCompletion)
        }
    }

    /// Returns early on any completion or wake-up of the shared ring, not only this storage's.
    public func waitForCompletions(timeoutNanos: Int64) throws(IOError) {
        try ring.wait(timeoutNanos: timeoutNanos)
    }
}
