import KeelCore

/// The shape of a simulated disk: its name, sizes and the faults it injects.
public struct SimulatedDiskConfiguration: Sendable {
    /// Shown in `Storage.location` and in messages.
    public var name: String
    /// Total space for file data; growth beyond it fails with ENOSPC.
    public var capacityBytes: Int64
    /// The most bytes one file may hold. Each file's memory is reserved once at this size so that
    /// mappings never move; growth beyond it fails with EFBIG. Untouched capacity costs no resident memory.
    public var fileCapacityBytes: Int
    /// The unit a power loss keeps or loses independently.
    public var sectorSizeBytes: Int
    /// What goes wrong, and how often.
    public var faults: SimulatedFaultModel

    /// A disk of `capacityBytes` (default 1 GiB) whose files hold up to `fileCapacityBytes` (default 64 MiB).
    public init(
        name: String = "simdisk",
        capacityBytes: Int64 = 1 << 30,
        fileCapacityBytes: Int = 64 << 20,
        sectorSizeBytes: Int = 512,
        faults: SimulatedFaultModel = .adversarial
    ) {
        precondition(sectorSizeBytes > 0, "sector size must be positive")
        precondition(fileCapacityBytes > 0, "file capacity must be positive")
        precondition(capacityBytes >= 0, "disk capacity must not be negative")
        self.name = name
        self.capacityBytes = capacityBytes
        self.fileCapacityBytes = fileCapacityBytes
        self.sectorSizeBytes = sectorSizeBytes
        self.faults = faults
    }
}

/// Probabilities that drive a simulated disk's faults. Every draw comes from the disk's seeded
/// generator, so the same seed and the same calls give the same faults.
public struct SimulatedFaultModel: Sendable {
    /// At a power loss, the chance that one sector changed since the file's last datasync keeps its
    /// new bytes (else it reverts to its synced bytes). Each sector is decided on its own, so a later
    /// sector may survive while an earlier one is lost.
    public var unsyncedSectorSurvivalChance: Double
    /// At a power loss, the chance that a changed sector is torn inside: a prefix of its new bytes
    /// followed by its old ones. Decided before `unsyncedSectorSurvivalChance`.
    public var tornSectorChance: Double
    /// At a power loss, the chance that an unsynced change of a file's length survives.
    public var unsyncedLengthSurvivalChance: Double
    /// At a power loss, the chance that each directory change made since the directory's last sync
    /// survives, given that the change before it did (changes survive as a prefix, in order).
    public var unsyncedDirectoryChangeSurvivalChance: Double
    /// At a power loss, the chance that each stored sector comes back with one bit flipped.
    public var bitFlipChancePerSector: Double
    /// In each reap, the chance that one more ready asynchronous operation completes; the rounds
    /// stop at the first miss. (A wait always completes at least one.)
    public var completionChance: Double
    /// At a process crash, the chance that an operation still queued or in flight had happened.
    /// A write that happened may have happened only in part (a prefix of its sectors).
    public var pendingOperationHappenedChance: Double

    /// Every probability spelled out.
    public init(
        unsyncedSectorSurvivalChance: Double,
        tornSectorChance: Double,
        unsyncedLengthSurvivalChance: Double,
        unsyncedDirectoryChangeSurvivalChance: Double,
        bitFlipChancePerSector: Double,
        completionChance: Double,
        pendingOperationHappenedChance: Double
    ) {
        self.unsyncedSectorSurvivalChance = unsyncedSectorSurvivalChance
        self.tornSectorChance = tornSectorChance
        self.unsyncedLengthSurvivalChance = unsyncedLengthSurvivalChance
        self.unsyncedDirectoryChangeSurvivalChance = unsyncedDirectoryChangeSurvivalChance
        self.bitFlipChancePerSector = bitFlipChancePerSector
        self.completionChance = completionChance
        self.pendingOperationHappenedChance = pendingOperationHappenedChance
    }

    /// Loses half of the unsynced sectors, tears a few, completes operations out of order; no bit flips.
    public static let adversarial = SimulatedFaultModel(
        unsyncedSectorSurvivalChance: 0.5,
        tornSectorChance: 0.05,
        unsyncedLengthSurvivalChance: 0.5,
        unsyncedDirectoryChangeSurvivalChance: 0.5,
        bitFlipChancePerSector: 0,
        completionChance: 0.5,
        pendingOperationHappenedChance: 0.5
    )

    /// A power loss loses every unsynced byte and nothing else; operations complete promptly.
    /// For tests that want an exact outcome.
    public static let loseAllUnsynced = SimulatedFaultModel(
        unsyncedSectorSurvivalChance: 0,
        tornSectorChance: 0,
        unsyncedLengthSurvivalChance: 0,
        unsyncedDirectoryChangeSurvivalChance: 0,
        bitFlipChancePerSector: 0,
        completionChance: 1,
        pendingOperationHappenedChance: 0
    )

    /// A power loss keeps every unsynced byte (as if the disk had flushed just in time).
    public static let keepAllUnsynced = SimulatedFaultModel(
        unsyncedSectorSurvivalChance: 1,
        tornSectorChance: 0,
        unsyncedLengthSurvivalChance: 1,
        unsyncedDirectoryChangeSurvivalChance: 1,
        bitFlipChancePerSector: 0,
        completionChance: 1,
        pendingOperationHappenedChance: 1
    )
}
