/// File-level storage: the only way the log and the archive touch a disk (DESIGN.md decision 3).
///
/// Two implementations exist and both must pass the same behaviour spec (Tests/KeelStorageSpecTests):
/// `IOUringStorage` in KeelIO (real files, io_uring for the asynchronous path) and `SimulatedStorage`
/// in KeelSimulation (an in-memory disk that tears writes, loses unsynced sectors at a power loss,
/// flips bits and fills up, all driven by a seed).
///
/// A storage is rooted in one directory and names files relative to it. Implementations are
/// reference types owned by one thread (the agent that does the I/O); they are not thread-safe.
///
/// ## Durability contract
/// Bytes reach stable storage only when a datasync of their file completes after they were written.
/// That holds for bytes written through a writable mapping too: dirty mapped pages count as unsynced
/// until a datasync of the file covers them. A directory entry (create, rename, delete) is durable
/// only after `syncDirectory()`.
///
/// ## Synchronous and asynchronous operations
/// Control-path operations (open, preallocate, map, rename, …) are synchronous and throw.
/// The data path is completion-based: `submitWrite` / `submitDatasync` queue an operation tagged
/// with an `IOToken`; `flushSubmissions()` hands queued operations to the device; completions are
/// collected with `reapCompletions(into:)` (never blocks) or after `waitForCompletions(timeoutNanos:)`.
/// Synchronous `write`, `zeroRange` and `datasync` exist for paths where the caller must not go on
/// until the bytes are down (hard state, truncation) and for the append method the IO benchmark
/// found fastest.
public protocol Storage: AnyObject {
    /// Where the files live, for messages (a directory path, or a simulated disk's name).
    var location: String { get }

    /// Names of the regular files in the directory, sorted by name.
    func listFiles() throws(IOError) -> [String]
    /// Opens a file for reading and writing, creating it (empty) when `create` is true and it is missing.
    func openFile(_ name: String, create: Bool) throws(IOError) -> FileID
    /// Closes a file. Mappings of it stay valid until unmapped.
    func closeFile(_ file: FileID)
    /// The file's current length in bytes.
    func fileSize(_ file: FileID) throws(IOError) -> Int64
    /// Makes the file at least `bytes` long with its blocks allocated, so that later writes inside
    /// that length neither grow the file nor fail for lack of space. New bytes read as zero.
    func preallocate(_ file: FileID, bytes: Int64) throws(IOError)
    /// Removes a file from the directory.
    func deleteFile(_ name: String) throws(IOError)
    /// Renames a file atomically, replacing any file of the new name.
    func renameFile(_ name: String, to newName: String) throws(IOError)
    /// Makes creations, renames and deletions in the directory durable.
    func syncDirectory() throws(IOError)

    /// Maps the first `bytes` of the file for reading. The mapping sees every byte written to the
    /// file by any means, at once. `bytes` must not exceed the file's size (map again after growth).
    func mapForReading(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeRawBufferPointer
    /// Maps the first `bytes` of the file for reading and writing; stores into it change the file.
    func mapForWriting(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeMutableRawBufferPointer
    /// Releases a mapping made by this storage.
    func unmap(_ mapping: UnsafeRawBufferPointer)

    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (0 at end of file).
    func read(_ file: FileID, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int
    /// Writes all of `bytes` at `offset` on the calling thread (a plain `pwrite`), growing the file if needed.
    func write(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws(IOError)
    /// Writes `pieces` one after another from `offset` on the calling thread, as one gather write
    /// where the system has one (`pwritev`), growing the file if needed. At most
    /// `IOVector.maximumPieces` pieces per call.
    func write(_ file: FileID, at offset: Int64, gathering pieces: UnsafeBufferPointer<IOVector>) throws(IOError)
    /// Sets `bytes` bytes at `offset` to zero without changing the file's length or allocation.
    func zeroRange(_ file: FileID, at offset: Int64, bytes: Int64) throws(IOError)
    /// Makes every byte written to the file so far durable, on the calling thread.
    func datasync(_ file: FileID) throws(IOError)

    /// Queues a write of `bytes` at `offset`. The bytes must stay valid and unchanged until the
    /// write's completion is reaped. With `thenDatasync`, a datasync of the file is linked after
    /// the write (it starts only once the write has completed) and completes with the same token.
    func submitWrite(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer, token: IOToken, thenDatasync: Bool) throws(IOError)
    /// Queues a datasync of the file.
    func submitDatasync(_ file: FileID, token: IOToken) throws(IOError)
    /// Queues what `syncDirectory()` does (creations, renames and deletions made durable), completing
    /// as an `IOOperation.syncDirectory` with `token`.
    func submitSyncDirectory(token: IOToken) throws(IOError)
    /// Hands queued operations to the device without waiting for them.
    func flushSubmissions() throws(IOError)
    /// Moves the completions that have arrived into `completions`, without blocking, as many as fit.
    func reapCompletions(into completions: inout IOCompletionBuffer)
    /// Submits queued operations and blocks until at least one completion is ready to reap or
    /// `timeoutNanos` has passed.
    func waitForCompletions(timeoutNanos: Int64) throws(IOError)
}

extension Storage {
    /// One `write` per piece (for storages without a gather write; the bytes and the durability
    /// contract are the same, a crash may only tear between pieces as well as inside them).
    public func write(_ file: FileID, at offset: Int64, gathering pieces: UnsafeBufferPointer<IOVector>) throws(IOError) {
        precondition(pieces.count <= IOVector.maximumPieces, "at most \(IOVector.maximumPieces) pieces per gather write")
        var position = offset
        for piece in pieces where piece.count > 0 {
            try write(file, at: position, UnsafeRawBufferPointer(start: piece.base, count: piece.count))
            position += Int64(piece.count)
        }
    }

    /// Writes a whole buffer synchronously (convenience for arrays and tests).
    public func write(_ file: FileID, at offset: Int64, bytes: [UInt8]) throws(IOError) {
        let result: Result<Void, IOError> = bytes.withUnsafeBytes { buffer in
            do throws(IOError) { try write(file, at: offset, buffer); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    /// Reads `count` bytes at `offset` into a new array (convenience for tests and control paths).
    public func read(_ file: FileID, at offset: Int64, count: Int) throws(IOError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var readCount = 0
        let outcome: Result<Void, IOError> = result.withUnsafeMutableBytes { buffer in
            do throws(IOError) {
                while readCount < count {
                    let n = try read(file, at: offset + Int64(readCount), into: UnsafeMutableRawBufferPointer(rebasing: buffer[readCount...]))
                    if n == 0 { break }
                    readCount += n
                }
                return .success(())
            } catch { return .failure(error) }
        }
        try outcome.get()
        result.removeLast(count - readCount)
        return result
    }
}
