import KeelCore

/// A member's archive storage in the whole-node simulation: the simulated disk's, plus a cut armed
/// at the n-th storage operation from now — a process crash or a power loss striking in the middle
/// of writing a snapshot (or of the catalog update or retention that follow it). Once cut, the disk
/// refuses every operation, so the snapshot fails and the simulation stops the member after the cycle.
public final class SnapshotFaultStorage: Storage {
    let inner: SimulatedStorage
    /// Operations left before the cut (nil: not armed), and whether the cut is a power loss.
    var cutAfterOperations: Int?
    var cutIsPowerLoss = false
    /// Set when the cut struck; the simulation then takes the member down.
    public private(set) var didCut = false

    init(_ inner: SimulatedStorage) { self.inner = inner }

    private func step() {
        guard let left = cutAfterOperations else { return }
        if left > 0 {
            cutAfterOperations = left - 1
            return
        }
        cutAfterOperations = nil
        didCut = true
        // The process dies here; a power loss's page-cache loss waits until the simulation takes the
        // member down after its duty cycle (`WholeNodeCluster.snapshotCutStruck`), since the rest of
        // this cycle still runs and may read the log's mapping, which a dead process never would.
        inner.disk.crashProcess()
    }

    public var location: String { inner.location }
    public func listFiles() throws(IOError) -> [String] { step(); return try inner.listFiles() }
    public func openFile(_ name: String, create: Bool) throws(IOError) -> FileID { step(); return try inner.openFile(name, create: create) }
    public func closeFile(_ file: FileID) { inner.closeFile(file) }
    public func fileSize(_ file: FileID) throws(IOError) -> Int64 { step(); return try inner.fileSize(file) }
    public func preallocate(_ file: FileID, bytes: Int64) throws(IOError) { step(); try inner.preallocate(file, bytes: bytes) }
    public func deleteFile(_ name: String) throws(IOError) { step(); try inner.deleteFile(name) }
    public func renameFile(_ name: String, to newName: String) throws(IOError) { step(); try inner.renameFile(name, to: newName) }
    public func syncDirectory() throws(IOError) { step(); try inner.syncDirectory() }
    public func mapForReading(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeRawBufferPointer {
        step(); return try inner.mapForReading(file, bytes: bytes)
    }
    public func mapForWriting(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeMutableRawBufferPointer {
        step(); return try inner.mapForWriting(file, bytes: bytes)
    }
    public func unmap(_ mapping: UnsafeRawBufferPointer) { inner.unmap(mapping) }
    public func read(_ file: FileID, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int {
        step(); return try inner.read(file, at: offset, into: buffer)
    }
    public func write(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws(IOError) { step(); try inner.write(file, at: offset, bytes) }
    public func write(_ file: FileID, at offset: Int64, gathering pieces: UnsafeBufferPointer<IOVector>) throws(IOError) {
        step(); try inner.write(file, at: offset, gathering: pieces)
    }
    public func zeroRange(_ file: FileID, at offset: Int64, bytes: Int64) throws(IOError) { step(); try inner.zeroRange(file, at: offset, bytes: bytes) }
    public func datasync(_ file: FileID) throws(IOError) { step(); try inner.datasync(file) }
    public func submitWrite(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer, token: IOToken, thenDatasync: Bool) throws(IOError) {
        step(); try inner.submitWrite(file, at: offset, bytes, token: token, thenDatasync: thenDatasync)
    }
    public func submitDatasync(_ file: FileID, token: IOToken) throws(IOError) { step(); try inner.submitDatasync(file, token: token) }
    public func submitSyncDirectory(token: IOToken) throws(IOError) { step(); try inner.submitSyncDirectory(token: token) }
    public func flushSubmissions() throws(IOError) { step(); try inner.flushSubmissions() }
    public func reapCompletions(into completions: inout IOCompletionBuffer) { inner.reapCompletions(into: &completions) }
    public func waitForCompletions(timeoutNanos: Int64) throws(IOError) { step(); try inner.waitForCompletions(timeoutNanos: timeoutNanos) }
}
