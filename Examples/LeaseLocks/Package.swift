// swift-tools-version: 6.1
// An example clustered service built on Keel (docs/writing-a-service.md): named locks held under
// leases that expire by cluster timer. Depends on Keel by path, as a user's package would by URL.
import PackageDescription

let package = Package(
    name: "LeaseLocks",
    dependencies: [
        .package(name: "Keel", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "LeaseLocks",
            dependencies: [.product(name: "Keel", package: "Keel")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
