import KeelCore
import KeelSimulation

/// A `SimulatedStorage` that cuts the power (or crashes the process) just before its n-th operation,
/// so a test can stop a snapshot write at any point: between any two writes, syncs, renames or
/// directory syncs. After the cut every operation fails, as the dead process's would.
final class CrashingStorage: Storage {
    let inner: SimulatedStorage
    /// The operation (counted from 1) before which the cut happens; nil never.
    var cutBeforeOperation: Int?
    /// A power loss (page cache lost) rather than a process crash.
    var powerLoss: Bool
    private(set) var operationCount = 0
    private(set) var didCut = false

    init(_ inner: SimulatedStorage, cutBeforeOperation: Int?, powerLoss: Bool) {
        self.inner = inner
        self.cutBeforeOperation = cutBeforeOperation
        self.powerLoss = powerLoss
    }

    private func step() {
        operationCount += 1
        if operationCount == cutBeforeOperation && !didCut {
            didCut = true
            if powerLoss { inner.disk.powerLoss() } else { inner.disk.crashProcess() }
        }
    }

    var location: String { inner.location }
    func listFiles() throws(IOError) -> [String] { step(); return try inner.listFiles() }
    func openFile(_ name: String, create: Bool) throws(IOError) -> FileID { step(); return try inner.openFile(name, create: create) }
    func closeFile(_ file: FileID) { inner.closeFile(file) }
    func fileSize(_ file: FileID) throws(IOError) -> Int64 { step(); return try inner.fileSize(file) }
    func preallocate(_ file: FileID, bytes: Int64) throws(IOError) { step(); try inner.preallocate(file, bytes: bytes) }
    func deleteFile(_ name: String) throws(IOError) { step(); try inner.deleteFile(name) }
    func renameFile(_ name: String, to newName: String) throws(IOError) { step(); try inner.renameFile(name, to: newName) }
    func syncDirectory() throws(IOError) { step(); try inner.syncDirectory() }
    func mapForReading(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeRawBufferPointer { step(); return try inner.mapForReading(file, bytes: bytes) }
    func mapForWriting(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeMutableRawBufferPointer { step(); return try inner.mapForWriting(file, bytes: bytes) }
    func unmap(_ mapping: UnsafeRawBufferPointer) { inner.unmap(mapping) }
    func read(_ file: FileID, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int {
        step(); return try inner.read(file, at: offset, into: buffer)
    }
    func write(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws(IOError) { step(); try inner.write(file, at: offset, bytes) }
    func write(_ file: FileID, at offset: Int64, gathering pieces: UnsafeBufferPointer<IOVector>) throws(IOError) {
        step(); try inner.write(file, at: offset, gathering: pieces)
    }
    func zeroRange(_ file: FileID, at offset: Int64, bytes: Int64) throws(IOError) { step(); try inner.zeroRange(file, at: offset, bytes: bytes) }
    func datasync(_ file: FileID) throws(IOError) { step(); try inner.datasync(file) }
    func submitWrite(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer, token: IOToken, thenDatasync: Bool) throws(IOError) {
        step(); try inner.submitWrite(file, at: offset, bytes, token: token, thenDatasync: thenDatasync)
    }
    func submitDatasync(_ file: FileID, token: IOToken) throws(IOError) { step(); try inner.submitDatasync(file, token: token) }
    func submitSyncDirectory(token: IOToken) throws(IOError) { step(); try inner.submitSyncDirectory(token: token) }
    func flushSubmissions() throws(IOError) { step(); try inner.flushSubmissions() }
    func reapCompletions(into completions: inout IOCompletionBuffer) { inner.reapCompletions(into: &completions) }
    func waitForCompletions(timeoutNanos: Int64) throws(IOError) { step(); try inner.waitForCompletions(timeoutNanos: timeoutNanos) }
}
