import KeelCore

// Snapshots that failed verification at a restart. Left in the catalog, a broken snapshot would be
// tried (and fail) at every restart and count against retention, so a node keeping K snapshots
// would keep fewer than K it can load. Set aside, its file stays for inspection under a name no
// load or reconcile picks up, until K newer snapshots exist (as it would have been removed then).
extension SnapshotArchive {
    /// Takes `entry` out of the catalog and renames its file to `snapshot-<id>.rejected`: the file
    /// first (a crash before the catalog update leaves an entry without its file, which the next
    /// open drops), then the directory fsync, then the catalog. Returns the new file name.
    @discardableResult
    public func setAside(_ entry: SnapshotEntry) throws(ArchiveError) -> String {
        guard catalog.contents.snapshots.contains(entry) else { throw .invalidRequest("\(entry) is not in the catalog") }
        if let shipping = shippingFileID, shipping == entry.id { closeShippingFile() }
        let rejectedName = SnapshotFormat.rejectedName(id: entry.id)
        do { try storage.renameFile(entry.fileName, to: rejectedName) } catch where error.errno == Errno.noEntry {
            // The file is already gone: only the catalog entry remains to drop.
        } catch { throw .storage(error) }
        try storageCall { () throws(IOError) in try storage.syncDirectory() }
        var contents = catalog.contents
        contents.snapshots.removeAll { $0 == entry }
        try catalog.commit(contents)
        setAsideSnapshots.append(SetAsideSnapshot(entry: entry, fileName: rejectedName))
        return rejectedName
    }

    /// Deletes the files of set-aside snapshots with ids below `id` (no directory fsync: the caller's).
    func removeRejectedFiles(below id: Int64) throws(ArchiveError) {
        let names = try storageCall { () throws(IOError) in try storage.listFiles() }
        for name in names {
            guard let rejectedID = SnapshotFormat.snapshotID(fromRejectedName: name), rejectedID < id else { continue }
            do { try storage.deleteFile(name) } catch where error.errno == Errno.noEntry {
            } catch { throw .storage(error) }
        }
    }

    /// The set-aside snapshots' files in the directory, by id.
    public func rejectedFileNames() throws(ArchiveError) -> [String] {
        let names = try storageCall { () throws(IOError) in try storage.listFiles() }
        return names.filter { SnapshotFormat.snapshotID(fromRejectedName: $0) != nil }.sorted()
    }
}

/// A snapshot taken out of the catalog because it failed verification, and the name its file has now.
public struct SetAsideSnapshot: Sendable, Equatable, CustomStringConvertible {
    public var entry: SnapshotEntry
    public var fileName: String

    public var description: String { "snapshot \(entry.id) at position \(entry.position.rawValue), set aside as \(fileName)" }
}
