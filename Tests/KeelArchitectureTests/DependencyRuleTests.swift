import Foundation
import Testing

/// DESIGN.md decision 1: which module may import which. Anything not listed is forbidden.
/// Keep this table, docs/architecture.md and Package.swift in step.
private let allowedImports: [String: Set<String>] = [
    "KeelCore": ["Synchronization"],
    "CKeelChecksum": [],
    "CKeelShims": [],
    "CKeelCrypto": [],
    "KeelWire": ["KeelCore", "CKeelChecksum"],
    "KeelRaft": ["KeelCore"],
    "KeelLog": ["KeelCore", "KeelWire", "CKeelChecksum", "Synchronization"],
    "KeelArchive": ["KeelCore", "KeelWire", "CKeelChecksum", "KeelService"],
    "KeelService": ["KeelCore"],
    "KeelRuntime": ["KeelCore", "KeelWire", "KeelRaft", "KeelLog", "KeelArchive", "KeelService", "CKeelCrypto", "Synchronization"],
    "KeelIO": ["KeelCore", "CLiburing", "CKeelShims", "Glibc", "Synchronization"],
    "KeelPOSIX": ["KeelCore", "CKeelShims", "Glibc"],
    "KeelNode": ["KeelRuntime", "KeelService", "KeelIO", "KeelCore", "Synchronization"],
    "KeelClient": ["KeelCore", "KeelWire", "KeelPOSIX", "KeelIO"],
    "KeelExamples": ["KeelService", "KeelCore"],
    "KeelLocalCluster": ["KeelCore", "KeelIO", "KeelClient", "Glibc", "Synchronization"],
    "KeelSimulation": ["KeelCore", "KeelWire", "KeelRaft", "KeelLog", "KeelArchive", "KeelService", "KeelRuntime"],
    "Keel": ["KeelCore", "KeelService", "KeelNode", "KeelClient"],
]
/// The executable may use everything, plus its command-line and measurement packages.
private let executableExtras: Set<String> = ["ArgumentParser", "Histogram", "Foundation", "Glibc", "Synchronization", "CLiburing"]

private let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func swiftFiles(in directory: URL) -> [URL] {
    guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [] }
    return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
}

/// The modules a source file imports (`import X`, `@_exported import X`, `import struct X.Y`, …).
func importedModules(of source: String) -> Set<String> {
    var modules = Set<String>()
    for rawLine in source.split(separator: "\n") {
        var words = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        while let first = words.first, first.hasPrefix("@") || ["public", "internal", "package", "private", "fileprivate"].contains(first) {
            words.removeFirst()
        }
        guard words.first == "import", words.count >= 2 else { continue }
        let kinds: Set<String> = ["struct", "class", "enum", "protocol", "func", "var", "let", "typealias"]
        let path = kinds.contains(words[1]) && words.count >= 3 ? words[2] : words[1]
        modules.insert(String(path.split(separator: ".")[0]))
    }
    return modules
}

@Suite struct DependencyRuleTests {
    @Test func everySourceImportIsAnAllowedEdge() throws {
        let sources = packageRoot.appendingPathComponent("Sources")
        let modules = try FileManager.default.contentsOfDirectory(atPath: sources.path).sorted()
        #expect(modules.contains("KeelCore"), "Sources/ must be found at \(sources.path)")
        var violations: [String] = []
        for module in modules {
            let isExecutable = module == "keel"
            let allowed = isExecutable ? Set(allowedImports.keys).union(executableExtras) : allowedImports[module]
            guard let allowed else {
                if module.hasPrefix("C") { continue }  // C targets import nothing Swift.
                violations.append("\(module) is not in the allowed-imports table (DESIGN.md decision 1)")
                continue
            }
            for file in swiftFiles(in: sources.appendingPathComponent(module)) {
                let text = try String(contentsOf: file, encoding: .utf8)
                for imported in importedModules(of: text) where !allowed.contains(imported) && imported != "Swift" {
                    violations.append("\(module)/\(file.lastPathComponent) imports \(imported), which DESIGN.md forbids")
                }
            }
        }
        #expect(violations.isEmpty, "\(violations.joined(separator: "\n"))")
    }

    @Test func packageManifestDeclaresOnlyAllowedEdges() throws {
        let manifest = try String(contentsOf: packageRoot.appendingPathComponent("Package.swift"), encoding: .utf8)
        // Each `.target(name: "X", dependencies: [...]` declaration, on one line.
        let pattern = try NSRegularExpression(pattern: #"\.target\(name: "(\w+)", dependencies: \[([^\]]*)\]"#)
        let range = NSRange(manifest.startIndex..., in: manifest)
        var checked = 0
        for match in pattern.matches(in: manifest, range: range) {
            let name = String(manifest[Range(match.range(at: 1), in: manifest)!])
            let list = String(manifest[Range(match.range(at: 2), in: manifest)!])
            let dependencies = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            let allowed = allowedImports[name] ?? []
            for dependency in dependencies where !dependency.isEmpty {
                #expect(allowed.contains(dependency), "Package.swift: \(name) depends on \(dependency), which DESIGN.md forbids")
            }
            checked += 1
        }
        #expect(checked >= 5, "the manifest's target declarations must stay one line each so this test can read them")
    }

    @Test func noLibraryImportsTheSimulation() throws {
        let sources = packageRoot.appendingPathComponent("Sources")
        for module in try FileManager.default.contentsOfDirectory(atPath: sources.path) where module != "keel" && module != "KeelSimulation" {
            for file in swiftFiles(in: sources.appendingPathComponent(module)) {
                let text = try String(contentsOf: file, encoding: .utf8)
                #expect(!importedModules(of: text).contains("KeelSimulation"), "\(module)/\(file.lastPathComponent) imports KeelSimulation")
            }
        }
    }

    @Test func importParserSeesEveryForm() {
        let text = "import A\n@_exported import B\nimport struct C.D\n// import E\n  import F.G\n"
        #expect(importedModules(of: text) == ["A", "B", "C", "F"])
    }
}
