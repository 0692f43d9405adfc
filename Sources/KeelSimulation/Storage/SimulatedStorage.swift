import KeelCore

/// `Storage` over a `SimulatedDisk`: one simulated process's view of one directory of the disk.
///
/// It behaves like `IOUringStorage` (both pass Tests/KeelStorageSpecTests) and adds what the disk
/// injects: lost unsynced sectors and directory changes at a power loss, bit flips, a full disk,
/// failing operations. Asynchronous writes and datasyncs complete in a seeded order when reaped
/// or waited for; a write's bytes reach the page cache when it completes.
///
/// After `disk.crashProcess()` or `disk.powerLoss()` this storage is dead: its operations fail with
/// EIO and it reaps nothing. Make a new storage on the same disk to "restart the process".
/// A dead process must not touch the mappings it was handed: the crash releases them (unmapping
/// them afterwards is a no-op), and a file's memory is freed once no directory, open file or live
/// mapping refers to it.
public final class SimulatedStorage: Storage {
    /// The disk this storage works on.
    public let disk: SimulatedDisk
    /// The directory of the disk this storage is rooted in ("" for the top one).
    public let directoryName: String
    /// "disk:/directory".
    public let location: String
    private let directory: SimulatedDirectory
    private var openFiles: [Int32: OpenFile] = [:]
    private var nextFileNumber: Int32 = 3
    private var mappings: [Mapping] = []
    private var operations = SimulatedOperationQueue()
    /// True once the disk crashed the process this storage belonged to.
    public private(set) var isCrashed = false

    private struct OpenFile {
        let name: String
        let file: SimulatedFile
    }

    private struct Mapping {
        let base: UnsafeRawPointer
        let bytes: Int
        let writable: Bool
        let file: SimulatedFile
    }

    /// A storage rooted in `directory` of `disk` (the directory exists from the start).
    public init(disk: SimulatedDisk, directory: String = "") {
        self.disk = disk
        directoryName = directory
        location = "\(disk.name):/\(directory)"
        self.directory = disk.directory(named: directory)
        disk.attach(self)
    }

    private func subject(_ name: String) -> String {
        directoryName.isEmpty ? "\(disk.name):\(name)" : "\(location)/\(name)"
    }

    private func checkAlive(_ operation: IOOperation, _ name: String) throws(IOError) {
        if isCrashed { throw IOError(operation, errno: Errno.io, subject: subject(name) + " (process crashed)") }
    }

    private func openFile(_ file: FileID, for operation: IOOperation) throws(IOError) -> OpenFile {
        try checkAlive(operation, file.description)
        guard let open = openFiles[file.rawValue] else {
            throw IOError(operation, errno: Errno.badFile, subject: "\(location) \(file)")
        }
        return open
    }

    private func throwInjectedFailure(_ operation: IOOperation, _ name: String, orElse errno: Int32? = nil) throws(IOError) {
        if let injected = disk.takeInjectedFailure(for: operation) {
            throw IOError(operation, errno: injected, subject: subject(name))
        }
        if let errno { throw IOError(operation, errno: errno, subject: subject(name)) }
    }

    // MARK: Directory

    public func listFiles() throws(IOError) -> [String] {
        try checkAlive(.list, "")
        try throwInjectedFailure(.list, "")
        return directory.sortedNames
    }

    public func openFile(_ name: String, create: Bool) throws(IOError) -> FileID {
        try checkAlive(.open, name)
        try throwInjectedFailure(.open, name)
        let file: SimulatedFile
        if let existing = directory.entries[name] {
            file = existing
        } else if create {
            file = disk.makeFile()
            directory.apply(.create(name: name, file: file))
        } else {
            throw IOError(.open, errno: Errno.noEntry, subject: subject(name))
        }
        let id = FileID(rawValue: nextFileNumber)
        nextFileNumber += 1
        openFiles[id.rawValue] = OpenFile(name: name, file: file)
        return id
    }

    /// Closing a file this storage did not open (or closed already) is a bug, as with real descriptors;
    /// after a crash every file counts as closed and closing is a no-op.
    public func closeFile(_ file: FileID) {
        let wasOpen = openFiles.removeValue(forKey: file.rawValue) != nil
        precondition(wasOpen || isCrashed, "closing \(file), which \(location) did not open")
    }

    public func deleteFile(_ name: String) throws(IOError) {
        try checkAlive(.delete, name)
        try throwInjectedFailure(.delete, name, orElse: directory.entries[name] == nil ? Errno.noEntry : nil)
        directory.apply(.delete(name: name))
    }

    public func renameFile(_ name: String, to newName: String) throws(IOError) {
        try checkAlive(.rename, name)
        try throwInjectedFailure(.rename, name, orElse: directory.entries[name] == nil ? Errno.noEntry : nil)
        guard name != newName else { return }
        directory.apply(.rename(from: name, to: newName))
    }

    public func syncDirectory() throws(IOError) {
        try checkAlive(.syncDirectory, "")
        try throwInjectedFailure(.syncDirectory, "")
        directory.sync()
    }

    // MARK: Files

    public func fileSize(_ file: FileID) throws(IOError) -> Int64 {
        Int64(try openFile(file, for: .stat).file.cacheLengthBytes)
    }

    public func preallocate(_ file: FileID, bytes: Int64) throws(IOError) {
        let open = try openFile(file, for: .preallocate)
        guard bytes >= 0 else { throw IOError(.preallocate, errno: Errno.invalid, subject: subject(open.name)) }
        let length = Int(clamping: bytes)
        try throwInjectedFailure(.preallocate, open.name, orElse: disk.growthError(open.file, toLength: length))
        open.file.extend(toLength: length)
    }

    public func read(_ file: FileID, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int {
        let open = try openFile(file, for: .read)
        guard offset >= 0 else { throw IOError(.read, errno: Errno.invalid, subject: subject(open.name)) }
        try throwInjectedFailure(.read, open.name)
        return open.file.read(at: Int(clamping: offset), into: buffer)
    }

    public func write(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws(IOError) {
        let open = try openFile(file, for: .write)
        if let errno = disk.performWrite(open.file, at: offset, bytes) {
            throw IOError(.write, errno: errno, subject: subject(open.name))
        }
    }

    public func zeroRange(_ file: FileID, at offset: Int64, bytes: Int64) throws(IOError) {
        let open = try openFile(file, for: .zeroRange)
        guard offset >= 0, bytes >= 0 else { throw IOError(.zeroRange, errno: Errno.invalid, subject: subject(open.name)) }
        try throwInjectedFailure(.zeroRange, open.name)
        open.file.zero(at: Int(clamping: offset), count: Int(clamping: bytes))
    }

    public func datasync(_ file: FileID) throws(IOError) {
        let open = try openFile(file, for: .datasync)
        if let errno = disk.performDatasync(open.file) {
            throw IOError(.datasync, errno: errno, subject: subject(open.name))
        }
    }

    // MARK: Mappings

    public func mapForReading(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(try map(file, bytes: bytes, writable: false))
    }

    public func mapForWriting(_ file: FileID, bytes: Int) throws(IOError) -> UnsafeMutableRawBufferPointer {
        try map(file, bytes: bytes, writable: true)
    }

    private func map(_ file: FileID, bytes: Int, writable: Bool) throws(IOError) -> UnsafeMutableRawBufferPointer {
        let open = try openFile(file, for: .map)
        precondition(bytes >= 0, "mapping size must not be negative")
        if bytes == 0 { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        guard bytes <= open.file.cacheLengthBytes else {
            throw IOError(.map, errno: Errno.invalid, subject: subject(open.name))
        }
        try throwInjectedFailure(.map, open.name)
        let mapping = open.file.mapping(bytes: bytes, writable: writable)
        mappings.append(Mapping(base: UnsafeRawPointer(mapping.baseAddress!), bytes: bytes, writable: writable, file: open.file))
        return mapping
    }

    public func unmap(_ mapping: UnsafeRawBufferPointer) {
        guard let base = mapping.baseAddress else { return }  // an empty mapping holds nothing
        if isCrashed { return }  // the crash released every mapping of the dead process
        guard let index = mappings.lastIndex(where: { $0.base == base && $0.bytes == mapping.count }) else {
            preconditionFailure("unmap of \(mapping.count) bytes at \(base): not a live mapping of \(location)")
        }
        let released = mappings.remove(at: index)
        released.file.mappingReleased(bytes: released.bytes, writable: released.writable)
    }

    // MARK: Asynchronous operations

    public func submitWrite(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer, token: IOToken, thenDatasync: Bool) throws(IOError) {
        let open = try openFile(file, for: .write)
        operations.submitWrite(open.file, at: offset, bytes, token: token, thenDatasync: thenDatasync)
    }

    public func submitDatasync(_ file: FileID, token: IOToken) throws(IOError) {
        let open = try openFile(file, for: .datasync)
        operations.submitDatasync(open.file, token: token)
    }

    public func submitSyncDirectory(token: IOToken) throws(IOError) {
        try checkAlive(.syncDirectory, "")
        operations.submitSyncDirectory(directory, token: token)
    }

    public func flushSubmissions() throws(IOError) {
        try checkAlive(.write, "")
        operations.flush()
    }

    public func reapCompletions(into completions: inout IOCompletionBuffer) {
        guard !isCrashed else { return }
        operations.completeReady(on: disk, atLeastOne: false)
        operations.moveArrived(into: &completions)
    }

    /// Virtual time does not pass here: when nothing is in flight this returns at once, as if
    /// `timeoutNanos` had passed; otherwise at least one operation completes.
    public func waitForCompletions(timeoutNanos: Int64) throws(IOError) {
        try checkAlive(.timeout, "")
        operations.flush()
        operations.completeReady(on: disk, atLeastOne: !operations.hasArrived)
    }

    /// Operations submitted and not yet completed (queued or in flight).
    public var pendingOperationCount: Int { operations.pendingCount }

    // MARK: Crash

    func processCrashed(random: inout SeededRandom, faults: SimulatedFaultModel) {
        isCrashed = true
        operations.abandon(on: disk, random: &random, faults: faults)
        openFiles.removeAll()
        // The dead process's mappings no longer count as live writable ones (what they stored stays
        // in the page cache, unsynced). The records go too, so that the files' memory is released
        // with the last reference.
        for mapping in mappings { mapping.file.mappingReleased(bytes: mapping.bytes, writable: mapping.writable) }
        mappings.removeAll()
    }
}
