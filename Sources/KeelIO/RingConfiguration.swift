import CLiburing

extension Ring {
    /// How the ring is set up in the kernel. The faster modes bind the ring to one thread.
    public enum SetupMode: String, Sendable, CaseIterable, CustomStringConvertible {
        /// `deferTaskRun`, else `cooperativeTaskRun`, else `basic`: the best the kernel accepts.
        case automatic
        /// IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL, created disabled and
        /// enabled by the first thread that submits or reaps (so a ring can be built on one thread
        /// and used on an agent's). Completion work runs only when that thread asks for events,
        /// never interrupting it. Only that thread may use the ring afterwards.
        case deferTaskRun
        /// IORING_SETUP_COOP_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL: no inter-processor interrupt to run
        /// completion work; any one thread at a time may use the ring.
        case cooperativeTaskRun
        /// No setup flags (kernels before 5.19).
        case basic

        public var description: String { rawValue }

        /// The IORING_SETUP_* flags of a concrete mode.
        var setupFlags: UInt32 {
            switch self {
            case .automatic:
                preconditionFailure("automatic is resolved to a concrete mode before setup")
            case .deferTaskRun:
                IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG
                    | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED
            case .cooperativeTaskRun:
                IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL
            case .basic:
                0
            }
        }

        /// The concrete modes to try, best first.
        var candidates: [SetupMode] {
            self == .automatic ? [.deferTaskRun, .cooperativeTaskRun, .basic] : [self]
        }
    }

    /// Sizes and mode of a ring.
    public struct Configuration: Sendable {
        /// Submission queue entries (a power of two; the kernel rounds up). Operations queued beyond
        /// this are not refused: the ring submits what it holds and continues.
        public var submissionQueueEntries: UInt32
        /// Completion queue entries; at least `submissionQueueEntries`.
        public var completionQueueEntries: UInt32
        /// How the ring is set up in the kernel.
        public var setupMode: SetupMode

        public init(submissionQueueEntries: UInt32 = 256, completionQueueEntries: UInt32? = nil, setupMode: SetupMode = .automatic) {
            self.submissionQueueEntries = submissionQueueEntries
            self.completionQueueEntries = completionQueueEntries ?? submissionQueueEntries * 4
            self.setupMode = setupMode
        }
    }
}
