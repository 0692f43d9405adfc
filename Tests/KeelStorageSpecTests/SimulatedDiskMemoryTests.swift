import Glibc
import KeelCore
import KeelSimulation
import Testing

/// Each simulated file reserves its full capacity up front (so mappings never move); that must
/// cost address space only, not resident memory.
@Suite struct SimulatedDiskMemoryTests {
    /// Resident bytes of this process, from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let file = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(file) }
        var sizePages = 0, residentPages = 0
        guard withUnsafeMutablePointer(to: &sizePages, { size in
            withUnsafeMutablePointer(to: &residentPages) { resident in
                withVaList([size, resident]) { vfscanf(file, "%ld %ld", $0) }
            }
        }) == 2 else { return 0 }
        return residentPages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test func untouchedCapacityIsNotResident() throws {
        let fileCount = 64
        let disk = SimulatedDisk(seed: 1, configuration: SimulatedDiskConfiguration(fileCapacityBytes: 64 << 20, faults: .loseAllUnsynced))
        let storage = SimulatedStorage(disk: disk)
        let before = Self.residentBytes()
        #expect(before > 0, "/proc/self/statm is readable")
        var mappings: [UnsafeMutableRawBufferPointer] = []
        for index in 0..<fileCount {
            let file = try storage.openFile("segment-\(index)", create: true)
            try storage.preallocate(file, bytes: 1 << 20)   // logically 1 MiB of zeros, not yet touched
            try storage.write(file, at: 0, bytes: [UInt8(index)])
            mappings.append(try storage.mapForWriting(file, bytes: 4096))
            try storage.datasync(file)
        }
        let grown = Self.residentBytes() - before
        // 64 files reserve 2 × 64 MiB each (8 GiB): far below that must be resident.
        #expect(grown < 256 << 20, "resident growth \(grown >> 20) MiB for \(fileCount) files of 64 MiB capacity")
        #expect(mappings[63][0] == 63)
        #expect(try storage.read(try storage.openFile("segment-5", create: false), at: 500_000, count: 4) == [0, 0, 0, 0])
        for mapping in mappings { storage.unmap(UnsafeRawBufferPointer(mapping)) }
    }
}
