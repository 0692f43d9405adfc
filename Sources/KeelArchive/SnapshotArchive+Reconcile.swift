import KeelCore

extension SnapshotArchive {
    /// Brings the directory and the catalog into agreement after a crash (see the type's documentation).
    func reconcile() throws(ArchiveError) {
        let names = try storageCall { () throws(IOError) in try storage.listFiles() }
        var contents = catalog.contents
        var deleted = false
        var highestID = contents.nextSnapshotID - 1

        for name in names where SnapshotFormat.isIncomingName(name) {
            try storageCall { () throws(IOError) in try storage.deleteFile(name) }
            deleted = true
            repairs.append("removed \(name): a snapshot transfer from another member that never finished")
        }
        for name in names {
            // A set-aside snapshot's id is never reused either.
            if let id = SnapshotFormat.snapshotID(fromRejectedName: name) { highestID = max(highestID, id) }
            guard let id = SnapshotFormat.snapshotID(fromTemporaryName: name) else { continue }
            highestID = max(highestID, id)
            try storageCall { () throws(IOError) in try storage.deleteFile(name) }
            deleted = true
            repairs.append("removed \(name): a snapshot whose writing never finished")
        }

        let listed = Set(contents.snapshots.map(\.fileName))
        let missing = contents.snapshots.filter { !names.contains($0.fileName) }
        if !missing.isEmpty {
            contents.snapshots.removeAll { !names.contains($0.fileName) }
            for entry in missing { repairs.append("dropped \(entry) from the catalog: its file is gone") }
        }

        for name in names where !listed.contains(name) {
            guard let id = SnapshotFormat.snapshotID(fromFileName: name) else { continue }
            highestID = max(highestID, id)
            switch try adopt(name, id: id) {
            case .success(let entry):
                let index = contents.snapshots.firstIndex { $0.isNewer(than: entry) } ?? contents.snapshots.count
                contents.snapshots.insert(entry, at: index)
                repairs.append("listed \(entry): complete, but missing from the catalog (a crash before the catalog update)")
            case .failure(let problem) where problem.kind != .corrupt:
                repairs.append("left \(name) alone, missing from the catalog: \(problem)")
            case .failure(let problem):
                try storageCall { () throws(IOError) in try storage.deleteFile(name) }
                deleted = true
                repairs.append("removed \(name), missing from the catalog and unusable: \(problem)")
            }
        }

        if deleted { try storageCall { () throws(IOError) in try storage.syncDirectory() } }
        contents.nextSnapshotID = max(contents.nextSnapshotID, highestID + 1)
        if contents != catalog.contents { try catalog.commit(contents) }
        nextSnapshotID = contents.nextSnapshotID
    }

    /// Verifies a snapshot file the catalog does not list; its entry when it is complete and sound.
    private func adopt(_ name: String, id: Int64) throws(ArchiveError) -> Result<SnapshotEntry, SnapshotProblem> {
        let file = try storageCall { () throws(IOError) in try storage.openFile(name, create: false) }
        defer { storage.closeFile(file) }
        let shown = "\(storage.location)/\(name)"
        let scan: SnapshotScan
        do { scan = try SnapshotScanner(storage: storage, file: file, fileName: shown).scan() } catch {
            if case .badSnapshot(let problem) = error { return .failure(problem) }
            throw error
        }
        let header = scan.fileHeader
        guard header.snapshotID == id else {
            return .failure(SnapshotProblem(file: shown, offsetBytes: 16, kind: .mismatch, reason: "the file holds snapshot \(header.snapshotID)"))
        }
        return .success(SnapshotEntry(
            id: id, position: header.header.position, term: header.header.term, timestamp: header.header.timestamp,
            serviceVersion: header.header.serviceVersion, memberID: header.header.memberID, fileName: name,
            lengthBytes: scan.fileLengthBytes, wholeCRC: scan.wholeCRC))
    }
}
