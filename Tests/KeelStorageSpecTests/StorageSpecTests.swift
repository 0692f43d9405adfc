import KeelCore
import KeelIO
import KeelSimulation
import Testing

/// The implementations the spec runs against.
enum StorageUnderTest: String, CaseIterable, CustomStringConvertible, Sendable {
    case simulated
    case ioUring

    var description: String { rawValue }

    /// Runs `body` with a fresh, empty storage of this kind, then cleans up.
    func withStorage(_ body: (any Storage) throws -> Void) throws {
        switch self {
        case .simulated:
            let disk = SimulatedDisk(seed: 42)
            try body(SimulatedStorage(disk: disk, directory: "spec"))
        case .ioUring:
            let directory = TemporaryDirectory()
            let path = directory.path
            do {
                let ring = try Ring()
                try body(IOUringStorage(directory: path, ring: ring))
            }
            withExtendedLifetime(directory) {}
        }
    }
}

/// `StorageSpec` against every implementation: they must behave the same.
@Suite struct StorageSpecTests {
    @Test(arguments: StorageUnderTest.allCases)
    func createOpenListDeleteRename(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.createOpenListDeleteRename($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func writeReadRoundTripWithGrowth(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.writeReadRoundTripWithGrowth($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func gatherWriteLaysPiecesEndToEnd(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.gatherWriteLaysPiecesEndToEnd($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func submittedDirectorySyncCompletes(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.submittedDirectorySyncCompletes($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func preallocateGivesLengthAndZeros(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.preallocateGivesLengthAndZeros($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func readMappingSeesLaterWrites(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.readMappingSeesLaterWrites($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func writeMappingStoresAreVisibleToRead(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.writeMappingStoresAreVisibleToRead($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func zeroRangeKeepsLength(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.zeroRangeKeepsLength($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func asynchronousWritesCompleteWithTheirTokens(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.asynchronousWritesCompleteWithTheirTokens($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func reapNeverBlocksAndWaitReturns(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.reapNeverBlocksAndWaitReturns($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func emptyMappingHoldsNothing(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.emptyMappingHoldsNothing($0) }
    }

    @Test(arguments: StorageUnderTest.allCases)
    func errorsNameTheirOperation(_ kind: StorageUnderTest) throws {
        try kind.withStorage { try StorageSpec.errorsNameTheirOperation($0) }
    }
}
