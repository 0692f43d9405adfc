import KeelCore

/// How an archive writes snapshots.
public struct ArchiveConfiguration: Sendable, Equatable {
    /// The most payload bytes one chunk (one CRC) covers, and the size of the writer's and each
    /// reader's one buffer. 4 KiB ... 64 MiB.
    public var chunkPayloadBytes: Int

    public init(chunkPayloadBytes: Int = 1 << 20) {
        self.chunkPayloadBytes = chunkPayloadBytes
    }
}

/// A node's snapshot archive (DESIGN.md decision 11): snapshot files and the catalog that lists them
/// with the log's term history, in one directory reached through `storage` (docs/snapshot-format.md).
///
/// - Taking a snapshot: `beginSnapshot(_:)`, then the sections through the returned `SnapshotWriting`,
///   then `finish()`. Only a finished snapshot is in the catalog; nothing else is ever loaded.
/// - Restarting: `newestValidSnapshot()` verifies the newest snapshot fully and falls back to older
///   ones, reporting each rejected file with the offset of its first bad byte region.
/// - Retention and shipping: `snapshots()`, `removeSnapshots(keepingNewest:)`,
///   `readChunks(of:from:into:)` (raw file bytes by offset, so a transfer can resume).
///
/// Opening reconciles the directory with the catalog: temporary files of abandoned writes are removed,
/// entries whose file is gone are dropped, and a complete snapshot file the catalog lacks (a crash
/// between the rename and the catalog update) is verified and listed, or removed if it fails.
/// `repairs` says what was done. Owned by one thread, like its storage.
public final class SnapshotArchive<S: Storage> {
    public let storage: S
    public let configuration: ArchiveConfiguration
    let catalog: SnapshotCatalog<S>
    var nextSnapshotID: Int64
    private var writingID: Int64?
    private var shippingFile: (id: Int64, file: FileID)?
    /// What opening found and did about it (damaged catalog slot, removed or adopted files), for the log.
    public internal(set) var repairs: [String] = []
    /// The snapshots the last `newestValidSnapshot()` rejected, newest first.
    public private(set) var rejectedSnapshots: [SnapshotProblem] = []
    /// Snapshots set aside (out of the catalog, file renamed) since the archive was opened.
    public internal(set) var setAsideSnapshots: [SetAsideSnapshot] = []

    /// Opens the archive in `storage`'s directory, creating the catalog when missing.
    public init(storage: S, configuration: ArchiveConfiguration = ArchiveConfiguration()) throws(ArchiveError) {
        let chunk = configuration.chunkPayloadBytes
        guard chunk >= SnapshotFormat.chunkPayloadBytesMinimum && chunk <= SnapshotFormat.chunkPayloadBytesLimit else {
            throw .invalidRequest("chunk payload of \(chunk) bytes; it must be within \(SnapshotFormat.chunkPayloadBytesMinimum)...\(SnapshotFormat.chunkPayloadBytesLimit)")
        }
        self.storage = storage
        self.configuration = configuration
        catalog = try SnapshotCatalog(storage: storage)
        nextSnapshotID = catalog.contents.nextSnapshotID
        repairs = catalog.loadProblems.map { "catalog slot damaged: \($0)" }
        try reconcile()
    }

    deinit { if let shippingFile { storage.closeFile(shippingFile.file) } }

    // MARK: Catalog

    /// The snapshots in the catalog, oldest first (by position, then id).
    public func snapshots() -> [SnapshotEntry] { catalog.contents.snapshots }

    /// The log's term history: each term and the position it starts at, in order.
    public var termHistory: [TermHistoryEntry] { catalog.contents.terms }

    /// Records that `term` starts at `startPosition`, durably. Entries starting at or after that position
    /// are dropped first (their entries were truncated away); `term` must then exceed every kept term.
    public func recordTerm(_ term: Term, startPosition: LogPosition, timestamp: ClusterTime) throws(ArchiveError) {
        guard startPosition.rawValue >= 0 else { throw .invalidRequest("term \(term) starts at a negative position") }
        var contents = catalog.contents
        contents.terms.removeAll { $0.startPosition >= startPosition }
        if let last = contents.terms.last, last.term >= term {
            throw .invalidRequest("term \(term) from \(startPosition) does not follow \(last)")
        }
        contents.terms.append(TermHistoryEntry(term: term, startPosition: startPosition, timestamp: timestamp))
        if contents.terms == catalog.contents.terms { return }
        try catalog.commit(contents)
    }

    func catalogAdd(_ entry: SnapshotEntry) throws(ArchiveError) {
        var contents = catalog.contents
        let index = contents.snapshots.firstIndex { $0.isNewer(than: entry) } ?? contents.snapshots.count
        contents.snapshots.insert(entry, at: index)
        contents.nextSnapshotID = max(contents.nextSnapshotID, entry.id + 1)
        try catalog.commit(contents)
    }

    // MARK: Writing

    /// Starts writing a snapshot of `header`'s state under a temporary name. One at a time.
    public func beginSnapshot(_ header: SnapshotHeader) throws(ArchiveError) -> SnapshotWriting<S> {
        if let writingID { throw .snapshotInProgress(id: writingID) }
        guard header.position.rawValue >= 0, header.term.rawValue >= 0 else {
            throw .invalidRequest("snapshot at \(header.position) in \(header.term): position and term must not be negative")
        }
        let id = nextSnapshotID
        let writing = try SnapshotWriting(
            archive: self, storage: storage, id: id, header: header, chunkPayloadBytes: configuration.chunkPayloadBytes)
        nextSnapshotID += 1
        writingID = id
        return writing
    }

    func writingEnded(id: Int64) {
        if writingID == id { writingID = nil }
    }

    // MARK: Loading and verifying

    /// The newest snapshot that passes full verification (every chunk CRC, the whole-file CRC, and
    /// agreement with the catalog), opened for reading; nil when none does. Each newer snapshot that
    /// failed is reported in the load's `rejected` (and in `rejectedSnapshots`) with file and offset.
    /// With `atOrBelow`, snapshots past that log position are skipped unread (a node whose log lost
    /// its tail in a power loss cannot replay on from them).
    ///
    /// With `settingAside`, each rejected snapshot whose bytes were read and found wrong (not one that
    /// failed to open or read: that may pass) is also set aside (`setAside(_:)`): out of the catalog, so
    /// retention keeps K snapshots that load, not K that include a broken one. What was set aside is
    /// in `setAsideSnapshots`; a failure to set one aside is in `repairs` and changes nothing else.
    public func newestValidSnapshot(atOrBelow limit: LogPosition? = nil, settingAside: Bool = false) -> SnapshotLoad<S>? {
        var rejected: [SnapshotProblem] = []
        defer { rejectedSnapshots = rejected }
        for entry in catalog.contents.snapshots.reversed() where limit.map({ entry.position <= $0 }) ?? true {
            switch open(entry) {
            case .success(let (file, scan)):
                return SnapshotLoad(entry: entry, scan: scan, storage: storage, file: file, displayName: displayName(entry.fileName), rejected: rejected)
            case .failure(let failure):
                rejected.append(failure.problem)
                guard settingAside && failure.bytesAreBad else { continue }
                do { try setAside(entry) } catch {
                    repairs.append("could not set aside rejected \(entry.fileName) (it stays in the catalog): \(error)")
                }
            }
        }
        return nil
    }

    /// Verifies `entry`'s file fully; nil when it is sound, else the first problem (file and offset).
    public func verify(_ entry: SnapshotEntry) -> SnapshotProblem? {
        switch open(entry) {
        case .success(let (file, _)):
            storage.closeFile(file)
            return nil
        case .failure(let failure):
            return failure.problem
        }
    }

    private func displayName(_ name: String) -> String { "\(storage.location)/\(name)" }

    /// Why `open` failed, and whether the file's bytes were read and found wrong (not an open or read error).
    private struct OpenFailure: Error {
        var problem: SnapshotProblem
        var bytesAreBad: Bool
    }

    /// Opens and scans `entry`'s file; the file stays open on success.
    private func open(_ entry: SnapshotEntry) -> Result<(FileID, SnapshotScan), OpenFailure> {
        let name = displayName(entry.fileName)
        let file: FileID
        do { file = try storage.openFile(entry.fileName, create: false) } catch {
            return .failure(OpenFailure(problem: SnapshotProblem(file: name, offsetBytes: 0, kind: .mismatch, reason: "cannot open: \(error)"), bytesAreBad: false))
        }
        do {
            let scan = try SnapshotScanner(storage: storage, file: file, fileName: name).scan()
            if let mismatch = Self.mismatch(entry, scan) {
                storage.closeFile(file)
                return .failure(OpenFailure(problem: SnapshotProblem(file: name, offsetBytes: 0, kind: .mismatch, reason: mismatch), bytesAreBad: true))
            }
            return .success((file, scan))
        } catch {
            storage.closeFile(file)
            switch error {
            case .badSnapshot(let problem): return .failure(OpenFailure(problem: problem, bytesAreBad: true))
            // A read error says nothing about the bytes: the snapshot may load next time.
            default: return .failure(OpenFailure(problem: SnapshotProblem(file: name, offsetBytes: 0, kind: .corrupt, reason: "\(error)"), bytesAreBad: false))
            }
        }
    }

    /// How a verified file disagrees with its catalog entry, if it does.
    private static func mismatch(_ entry: SnapshotEntry, _ scan: SnapshotScan) -> String? {
        let header = scan.fileHeader
        if header.snapshotID != entry.id { return "the file holds snapshot \(header.snapshotID); the catalog lists \(entry.id)" }
        if header.header.position != entry.position || header.header.term != entry.term {
            return "the file is at \(header.header.position) in \(header.header.term); the catalog says \(entry.position) in \(entry.term)"
        }
        if scan.fileLengthBytes != entry.lengthBytes || scan.wholeCRC != entry.wholeCRC {
            return "the file has \(scan.fileLengthBytes) bytes with CRC 0x\(String(scan.wholeCRC, radix: 16)); the catalog recorded \(entry.lengthBytes) bytes with 0x\(String(entry.wholeCRC, radix: 16))"
        }
        return nil
    }

    // MARK: Retention and shipping

    var shippingFileID: Int64? { shippingFile?.id }

    func closeShippingFile() {
        if let shippingFile { storage.closeFile(shippingFile.file) }
        shippingFile = nil
    }

    /// Removes every snapshot but the newest `count` (by position, then id): files first, then the
    /// catalog entries, so a crash in between leaves entries without files, which the next open drops.
    /// Returns the removed entries, oldest first.
    @discardableResult
    public func removeSnapshots(keepingNewest count: Int) throws(ArchiveError) -> [SnapshotEntry] {
        guard count >= 0 else { throw .invalidRequest("keep a non-negative number of snapshots, not \(count)") }
        let all = catalog.contents.snapshots
        let removed = Array(all.prefix(max(0, all.count - count)))
        guard !removed.isEmpty else { return [] }
        for entry in removed {
            if let shipping = shippingFile, shipping.id == entry.id {
                storage.closeFile(shipping.file)
                shippingFile = nil
            }
            do { try storage.deleteFile(entry.fileName) } catch where error.errno == Errno.noEntry {
                // Already gone (a crash after an earlier delete): nothing to do.
            } catch { throw .storage(error) }
        }
        // Rejected files go once K newer snapshots exist, as the snapshot would have (bounded disk).
        let oldestKeptID = all.dropFirst(removed.count).map(\.id).min() ?? nextSnapshotID
        try removeRejectedFiles(below: oldestKeptID)
        try storageCall { () throws(IOError) in try storage.syncDirectory() }
        var contents = catalog.contents
        contents.snapshots.removeFirst(removed.count)
        try catalog.commit(contents)
        return removed
    }

    /// Reads `entry`'s file bytes from `offset` into `buffer` (raw: header, records and trailer as
    /// stored), for shipping a snapshot in pieces; returns the count, 0 at the end. The receiver
    /// verifies the whole file. The file stays open between calls for the same snapshot.
    public func readChunks(of entry: SnapshotEntry, from offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int {
        guard catalog.contents.snapshots.contains(entry) else { throw .invalidRequest("\(entry) is not in the catalog") }
        guard offset >= 0 && offset <= entry.lengthBytes else {
            throw .invalidRequest("offset \(offset) outside snapshot \(entry.id) of \(entry.lengthBytes) bytes")
        }
        let file = try shippingFile(for: entry)
        let wanted = Int(min(Int64(buffer.count), entry.lengthBytes - offset))
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<wanted])
        do { return try readFully(storage, file, at: offset, into: target) } catch { throw .storage(error) }
    }

    /// The open file of the snapshot being shipped, opening it (and closing another) when needed.
    private func shippingFile(for entry: SnapshotEntry) throws(ArchiveError) -> FileID {
        if let shippingFile, shippingFile.id == entry.id { return shippingFile.file }
        if let shippingFile { storage.closeFile(shippingFile.file) }
        shippingFile = nil
        let file: FileID
        do { file = try storage.openFile(entry.fileName, create: false) } catch { throw .storage(error) }
        shippingFile = (entry.id, file)
        return file
    }
}
