import Glibc
import KeelCore
import Testing
@testable import KeelIO

@Suite struct IOUringProbeTests {
    @Test func ioUringIsUsableOnThisMachine() throws {
        try IOUringProbe.check()
        #expect(IOUringProbe.readDisabledSysctl() == 0)
    }

    @Test func sysctlValueTwoIsReportedWithTheFix() {
        let diagnosis = IOUringProbe.diagnose(setupErrno: 1, disabledSysctl: 2)
        #expect(diagnosis.reason == .disabledBySysctl(value: 2))
        #expect(diagnosis.message.contains("kernel.io_uring_disabled is 2"))
        #expect(diagnosis.message.contains("sysctl kernel.io_uring_disabled=0"))
        #expect(!diagnosis.message.contains("\n"))
    }

    @Test func sysctlValueOneIsReportedAsARestrictionWithTheFix() {
        let diagnosis = IOUringProbe.diagnose(setupErrno: 1, disabledSysctl: 1)
        #expect(diagnosis.reason == .disabledBySysctl(value: 1))
        #expect(diagnosis.message.contains("kernel.io_uring_disabled is 1"))
        #expect(diagnosis.message.contains("io_uring_group"))
        #expect(diagnosis.message.contains("sysctl kernel.io_uring_disabled=0"))
    }

    @Test(arguments: [0, nil] as [Int?])
    func permissionDeniedWhileTheSysctlAllowsItBlamesSeccomp(sysctl: Int?) {
        let diagnosis = IOUringProbe.diagnose(setupErrno: 1, disabledSysctl: sysctl)
        #expect(diagnosis.reason == .blockedBySecurityPolicy)
        #expect(diagnosis.message.contains("seccomp"))
        #expect(diagnosis.message.contains("io_uring_setup, io_uring_enter and io_uring_register"))
    }

    @Test func notImplementedMeansTheKernelLacksIoUring() {
        let diagnosis = IOUringProbe.diagnose(setupErrno: 38, disabledSysctl: nil)
        #expect(diagnosis.reason == .notInKernel)
        #expect(diagnosis.message.contains("ENOSYS"))
        #expect(diagnosis.message.contains("kernel is too old"))
    }

    @Test func outOfMemoryPointsAtTheLockedMemoryLimit() {
        let diagnosis = IOUringProbe.diagnose(setupErrno: 12, disabledSysctl: 0)
        #expect(diagnosis.reason == .outOfMemory)
        #expect(diagnosis.message.contains("ulimit -l"))
    }

    @Test func anyOtherErrnoIsNamed() {
        let diagnosis = IOUringProbe.diagnose(setupErrno: 22, disabledSysctl: 0)
        #expect(diagnosis.reason == .setupFailed(errno: 22))
        #expect(diagnosis.message.contains("EINVAL"))
    }

    @Test func missingOperationsAreListed() {
        #expect(IOUringProbe.diagnose(missingOperations: []) == nil)
        let diagnosis = IOUringProbe.diagnose(missingOperations: ["SEND", "RECV"])
        #expect(diagnosis?.reason == .missingOperations(["SEND", "RECV"]))
        #expect(diagnosis?.message.contains("SEND, RECV") == true)
    }

    @Test func everyRequiredOperationIsChecked() {
        let names = Set(IOUringProbe.requiredOperations.map(\.name))
        #expect(names == ["READ", "WRITE", "FSYNC", "TIMEOUT", "ACCEPT", "CONNECT", "SEND", "RECV"])
    }
}

@Suite struct SystemClockTests {
    @Test func monotonicTimeNeverGoesBackAndAdvances() {
        let clock = SystemClock()
        var previous = clock.monotonicNanos()
        for _ in 0..<10_000 {
            let now = clock.monotonicNanos()
            #expect(now >= previous)
            previous = now
        }
        let start = clock.monotonicNanos()
        var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
        nanosleep(&pause, nil)
        #expect(clock.monotonicNanos() - start >= 2_000_000)
    }

    @Test func epochTimeIsAfter2024() {
        let january2024Nanos: Int64 = 1_704_067_200 * 1_000_000_000
        #expect(SystemClock().epochNanos() > january2024Nanos)
    }
}
