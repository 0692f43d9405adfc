import KeelCore

/// The catalog (recording log) of an archive: the snapshots and the log's term history, kept in two
/// alternately written slot files (layout in CatalogFormat.swift). Every change is durable before the
/// call returns.
final class SnapshotCatalog<S: Storage> {
    private let storage: S
    private var slotFiles: [FileID] = []
    private(set) var contents = CatalogContents()
    /// What loading found wrong but could work around (a damaged slot, with file and offset).
    private(set) var loadProblems: [SnapshotProblem] = []

    /// Opens both slot files (creating them, durably, when missing) and loads the current catalog.
    /// Throws when both slots are damaged (one torn write cannot do that) or a slot has an unknown version.
    init(storage: S) throws(ArchiveError) {
        self.storage = storage
        let existing = try storageCall { () throws(IOError) in try storage.listFiles() }
        var created = false
        for name in CatalogFormat.slotNames {
            created = created || !existing.contains(name)
            slotFiles.append(try storageCall { () throws(IOError) in try storage.openFile(name, create: true) })
        }
        if created { try storageCall { () throws(IOError) in try storage.syncDirectory() } }
        try load()
    }

    deinit { for file in slotFiles { storage.closeFile(file) } }

    private func displayName(_ slot: Int) -> String { "\(storage.location)/\(CatalogFormat.slotNames[slot])" }

    private func load() throws(ArchiveError) {
        var valid: [(slot: Int, contents: CatalogContents)] = []
        var damaged: [SnapshotProblem] = []
        for slot in 0..<2 {
            let file = slotFiles[slot]
            let bytes = try storageCall { () throws(IOError) in
                try storage.read(file, at: 0, count: Int(try storage.fileSize(file)))
            }
            switch bytes.withUnsafeBytes({ CatalogFormat.decode($0) }) {
            case .empty: break
            case .valid(let contents): valid.append((slot, contents))
            case .damaged(let offset, let reason):
                damaged.append(SnapshotProblem(file: displayName(slot), offsetBytes: offset, kind: .corrupt, reason: reason))
            case .unsupportedVersion(let version):
                throw .badCatalog(.unsupported(file: displayName(slot), found: version, supported: CatalogFormat.version, what: "catalog"))
            }
        }
        if valid.isEmpty && damaged.count == 2 {
            let problem = SnapshotProblem(
                file: damaged[0].file, offsetBytes: damaged[0].offsetBytes, kind: .corrupt,
                reason: "\(damaged[0].reason); and \(damaged[1]): both catalog slots are damaged, which one torn write cannot do")
            throw .badCatalog(problem)
        }
        if let current = valid.max(by: { $0.contents.sequence < $1.contents.sequence }) {
            contents = current.contents
        }
        loadProblems = damaged.map { problem in
            var reported = problem
            reported.reason += valid.isEmpty
                ? " (the catalog's first write was torn: starting empty)"
                : " (using the other slot, sequence \(contents.sequence); a change made just before a crash may be missing)"
            return reported
        }
    }

    /// Writes `changed` (with the next sequence) into the slot not holding the current catalog,
    /// fdatasyncs it, and only then makes it current. On error nothing changes in memory.
    func commit(_ changed: CatalogContents) throws(ArchiveError) {
        guard changed.snapshots.count <= CatalogFormat.snapshotEntriesMax else {
            throw .catalogFull("at most \(CatalogFormat.snapshotEntriesMax) snapshots; remove old ones first")
        }
        guard changed.terms.count <= CatalogFormat.termEntriesMax else {
            throw .catalogFull("at most \(CatalogFormat.termEntriesMax) terms in the term history")
        }
        var next = changed
        next.sequence = contents.sequence + 1
        let file = slotFiles[Int(next.sequence % 2)]
        let bytes = CatalogFormat.encode(next)
        try storageCall { () throws(IOError) in
            try storage.write(file, at: 0, bytes: bytes)
            try storage.datasync(file)
        }
        contents = next
    }
}
