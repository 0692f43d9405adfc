import KeelCore

/// One directory of a simulated disk: its entries as the running system sees them and as stable
/// storage holds them, plus the changes made since the last directory sync, in order.
///
/// A power loss keeps a prefix of the unsynced changes (a journaling file system commits metadata
/// in order, so a later change never survives without the earlier ones) and forgets the rest.
final class SimulatedDirectory {
    enum Change {
        case create(name: String, file: SimulatedFile)
        case delete(name: String)
        case rename(from: String, to: String)
    }

    let name: String
    private(set) var entries: [String: SimulatedFile] = [:]
    private var stableEntries: [String: SimulatedFile] = [:]
    private var unsyncedChanges: [Change] = []

    init(name: String) { self.name = name }

    /// Entry names, sorted.
    var sortedNames: [String] { entries.keys.sorted() }

    /// Every file an entry refers to, now or after some power loss, without duplicates.
    var reachableFiles: [SimulatedFile] {
        var files = Array(entries.values) + Array(stableEntries.values)
        for change in unsyncedChanges {
            if case .create(_, let file) = change { files.append(file) }
        }
        return files
    }

    func apply(_ change: Change) {
        Self.apply(change, to: &entries)
        unsyncedChanges.append(change)
    }

    private static func apply(_ change: Change, to entries: inout [String: SimulatedFile]) {
        switch change {
        case .create(let name, let file):
            entries[name] = file
        case .delete(let name):
            entries[name] = nil
        case .rename(let from, let to):
            guard let file = entries.removeValue(forKey: from) else { return }
            entries[to] = file
        }
    }

    /// A directory fsync: every change so far becomes stable.
    func sync() {
        stableEntries = entries
        unsyncedChanges.removeAll()
    }

    /// True when a power loss could change the entries.
    var hasUnsyncedChanges: Bool { !unsyncedChanges.isEmpty }

    /// A power loss: the stable entries plus a random prefix of the unsynced changes remain; each
    /// change survives with `survivalChance` once the one before it has.
    func losePageCache(random: inout SeededRandom, survivalChance: Double) {
        var kept = 0
        while kept < unsyncedChanges.count && random.chance(survivalChance) { kept += 1 }
        var survivors = stableEntries
        for change in unsyncedChanges.prefix(kept) { Self.apply(change, to: &survivors) }
        entries = survivors
        sync()
    }
}
