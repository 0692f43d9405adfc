// swift-tools-version: 6.1
// Keel: a clustered-service runtime for Swift on Linux.
// The allowed dependency directions between modules are listed in docs/architecture.md and checked
// by Tests/KeelArchitectureTests; add a module there before adding it here.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "Keel",
    products: [
        .library(name: "Keel", targets: ["Keel"]),
        .library(name: "KeelCore", targets: ["KeelCore"]),
        .library(name: "KeelIO", targets: ["KeelIO"]),
        .library(name: "KeelWire", targets: ["KeelWire"]),
        .library(name: "KeelPOSIX", targets: ["KeelPOSIX"]),
        .library(name: "KeelLog", targets: ["KeelLog"]),
        .library(name: "KeelArchive", targets: ["KeelArchive"]),
        .library(name: "KeelRaft", targets: ["KeelRaft"]),
        .library(name: "KeelSimulation", targets: ["KeelSimulation"]),
        .library(name: "KeelService", targets: ["KeelService"]),
        .library(name: "KeelRuntime", targets: ["KeelRuntime"]),
        .library(name: "KeelNode", targets: ["KeelNode"]),
        .library(name: "KeelClient", targets: ["KeelClient"]),
        .library(name: "KeelExamples", targets: ["KeelExamples"]),
        .library(name: "KeelLocalCluster", targets: ["KeelLocalCluster"]),
        .executable(name: "keel", targets: ["keel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Vocabulary, bounded containers, seeded PRNG and the Storage / Transport / Clock protocols.
        .target(name: "KeelCore", swiftSettings: swiftSettings),
        // C: liburing (system library) and tiny OS shims Swift cannot reach directly.
        .systemLibrary(name: "CLiburing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .target(name: "CKeelShims"),
        // C: OpenSSL's libcrypto (system library): HMAC-SHA256 for member authentication.
        .systemLibrary(name: "CKeelCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // C: CRC32C with the SSE4.2 instruction and a portable fallback. Pure compute, no OS calls.
        .target(name: "CKeelChecksum"),
        // Fixed-layout frames and codecs over raw bytes.
        .target(name: "KeelWire", dependencies: ["KeelCore", "CKeelChecksum"], swiftSettings: swiftSettings),
        // The pure Raft state machine.
        .target(name: "KeelRaft", dependencies: ["KeelCore"], swiftSettings: swiftSettings),
        // The segmented replicated log over the Storage protocol.
        .target(name: "KeelLog", dependencies: ["KeelCore", "KeelWire", "CKeelChecksum"], swiftSettings: swiftSettings),
        // Snapshot files and the catalog (recording log) over the Storage protocol.
        .target(name: "KeelArchive", dependencies: ["KeelCore", "KeelWire", "KeelService"], swiftSettings: swiftSettings),
        // Plain-socket Transport for client programs (runs where io_uring is blocked).
        .target(name: "KeelPOSIX", dependencies: ["KeelCore", "CKeelShims"], swiftSettings: swiftSettings),
        // io_uring implementations of Storage / Clock (and later Transport); agent runners.
        .target(name: "KeelIO", dependencies: ["KeelCore", "CLiburing", "CKeelShims"], swiftSettings: swiftSettings),
        // The public service API: ClusteredService, Cluster, ClientSession.
        .target(name: "KeelService", dependencies: ["KeelCore"], swiftSettings: swiftSettings),
        // Consensus agent, service agent, timers, sessions; generic over Storage / Transport / Clock.
        .target(name: "KeelRuntime", dependencies: ["KeelCore", "KeelWire", "KeelRaft", "KeelLog", "KeelArchive", "KeelService", "CKeelCrypto"], swiftSettings: swiftSettings),
        // ClusterNode: the runtime wired to io_uring for production.
        .target(name: "KeelNode", dependencies: ["KeelRuntime", "KeelService", "KeelIO", "KeelCore"], swiftSettings: swiftSettings),
        // ClusterClient over plain sockets.
        .target(name: "KeelClient", dependencies: ["KeelCore", "KeelWire", "KeelPOSIX"], swiftSettings: swiftSettings),
        // Example services: echo (benchmarks), key-value, bank.
        .target(name: "KeelExamples", dependencies: ["KeelService", "KeelCore"], swiftSettings: swiftSettings),
        // Local clusters of `keel node` processes (demo, process tests, bench cluster): spawn, kill -9, reap, /proc figures.
        .target(name: "KeelLocalCluster", dependencies: ["KeelCore", "KeelIO", "KeelClient"], swiftSettings: swiftSettings),
        // Deterministic, fault-injecting implementations of the protocols; simulators and checkers.
        .target(name: "KeelSimulation", dependencies: ["KeelCore", "KeelWire", "KeelRaft", "KeelLog", "KeelService", "KeelRuntime"], swiftSettings: swiftSettings),
        // The umbrella module users import.
        .target(name: "Keel", dependencies: ["KeelCore", "KeelService", "KeelNode", "KeelClient"], swiftSettings: swiftSettings),
        // The `keel` command.
        .executableTarget(
            name: "keel",
            dependencies: [
                "Keel", "KeelCore", "KeelIO", "KeelPOSIX", "KeelWire", "KeelLog", "KeelArchive", "KeelRaft", "KeelSimulation", "CKeelChecksum", "CKeelShims",
                "KeelService", "KeelRuntime", "KeelNode", "KeelClient", "KeelExamples", "KeelLocalCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "KeelCoreTests", dependencies: ["KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelChecksumTests", dependencies: ["CKeelChecksum", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelIOTests", dependencies: ["KeelIO", "KeelCore", "CLiburing"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelStorageSpecTests", dependencies: ["KeelIO", "KeelSimulation", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelRaftTests", dependencies: ["KeelRaft", "KeelSimulation", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelLogTests", dependencies: ["KeelLog", "KeelIO", "KeelSimulation", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelArchiveTests", dependencies: ["KeelArchive", "KeelIO", "KeelSimulation", "KeelService", "KeelWire", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelWireTests", dependencies: ["KeelWire", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelPOSIXTests", dependencies: ["KeelPOSIX", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelRuntimeTests", dependencies: ["KeelRuntime", "KeelSimulation", "KeelExamples", "KeelService", "KeelLog", "KeelRaft", "KeelWire", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelClientTests", dependencies: ["KeelClient", "KeelWire", "KeelPOSIX", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelNodeTests", dependencies: ["KeelNode", "KeelClient", "KeelLocalCluster", "KeelRuntime", "KeelIO", "KeelPOSIX", "KeelExamples", "KeelWire", "KeelCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KeelBenchTests", dependencies: [
            "keel", "KeelLocalCluster", .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], swiftSettings: swiftSettings),
        .testTarget(name: "KeelArchitectureTests", dependencies: [], swiftSettings: swiftSettings),
    ]
)
