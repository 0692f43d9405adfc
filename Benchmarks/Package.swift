// swift-tools-version: 6.1
// Microbenchmarks with allocation counts (ordo-one/benchmark). A package of its own, depending on Keel
// by path, so that `swift test` in the root never builds the benchmark framework.
// Run: `cd Benchmarks && swift package benchmark` (release build; see docs/benchmarks.md).
import PackageDescription

let package = Package(
    name: "KeelBenchmarks",
    dependencies: [
        .package(name: "Keel", path: ".."),
        // Only the malloc interposer trait: the default traits pull a package not available here.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "KeelBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "KeelCore", package: "Keel"),
                .product(name: "KeelWire", package: "Keel"),
                .product(name: "KeelLog", package: "Keel"),
                .product(name: "KeelRaft", package: "Keel"),
                .product(name: "KeelSimulation", package: "Keel"),
                .product(name: "KeelRuntime", package: "Keel"),
                .product(name: "KeelClient", package: "Keel"),
            ],
            path: "Benchmarks/KeelBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
