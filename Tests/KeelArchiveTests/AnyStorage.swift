import KeelCore

/// A `Storage` that forwards to any storage, so one test body runs the archive (generic over its
/// storage) on both the simulated and the real one.
final class AnyStorage: Storage {
    let inner: any Storage
    init(_ inner: any Storage) { self.inner = inner }

    var location: String { inner.location }
    func listFiles() throws(IOError) -> [String] { return try inner.listFiles() }
    func openFile(_ name: String, create: Bool) throws(IOError) -> FileID { return try inner.openFile(name, create: create) }
    func closeFile(_ file: FileID) { inner.closeFile(file) }
    func fileSize(_ file: FileID) throws(IOError) -> Int64 { return try inner.fileSize(file) }
    func preallocate(_ file: FileID, bytes: Int64) throws(IOError) { try inner.preallocate(file, bytes: bytes) }
    func deleteFile(_ name: String) throws(IOError) { try inner.deleteFile(name) }
    func renameFile(_ name: String, to newName: String) throws(IOError) { try inner.renameFile(name, to: newName) }
    func syncDirectory() throws(IOError) { try inner.syncDirectory() }
    func mapForReading(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeRawBufferPointer { return try inner.mapForReading(file, bytes: bytes) }
    func mapForWriting(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeMutableRawBufferPointer { return try inner.mapForWriting(file, bytes: bytes) }
    func unmap(_ mapping: UnsafeRawBufferPointer) { inner.unmap(mapping) }
    func read(_ file: FileID, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int {
        return try inner.read(file, at: offset, into: buffer)
    }
    func write(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws(IOError) { try inner.write(file, at: offset, bytes) }
    func write(_ file: FileID, at offset: Int64, gathering pieces: UnsafeBufferPointer<IOVector>) throws(IOError) {
        try inner.write(file, at: offset, gathering: pieces)
    }
    func zeroRange(_ file: FileID, at offset: Int64, bytes: Int64) throws(IOError) { try inner.zeroRange(file, at: offset, bytes: bytes) }
    func datasync(_ file: FileID) throws(IOError) { try inner.datasync(file) }
    func submitWrite(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer, token: IOToken, thenDatasync: Bool) throws(IOError) {
        try inner.submitWrite(file, at: offset, bytes, token: token, thenDatasync: thenDatasync)
    }
    func submitDatasync(_ file: FileID, token: IOToken) throws(IOError) { try inner.submitDatasync(file, token: token) }
    func submitSyncDirectory(token: IOToken) throws(IOError) { try inner.submitSyncDirectory(token: token) }
    func flushSubmissions() throws(IOError) { try inner.flushSubmissions() }
    func reapCompletions(into completions: inout IOCompletionBuffer) { inner.reapCompletions(into: &completions) }
    func waitForCompletions(timeoutNanos: Int64) throws(IOError) { try inner.waitForCompletions(timeoutNanos: timeoutNanos) }
}
