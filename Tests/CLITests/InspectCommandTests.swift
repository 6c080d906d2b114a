// `jpgen inspect` end to end: the built jpgen executable is run through its real entry point on
// good and bad safetensors fixtures; stdout, stderr and the exit status are checked.

import Foundation
import XCTest

/// Runs the built `jpgen` with arguments; returns (exit status, stdout, stderr).
func runJPGen(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = try jpgenExecutable()
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read before waiting so a full pipe cannot block the child.
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// The jpgen executable SwiftPM built next to the test bundle (override with JPGEN_BIN).
func jpgenExecutable() throws -> URL {
    if let path = ProcessInfo.processInfo.environment["JPGEN_BIN"] { return URL(fileURLWithPath: path) }
    var candidates: [URL] = [Bundle.main.bundleURL, Bundle(for: InspectCommandTests.self).bundleURL.deletingLastPathComponent()]
    if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent()) }
    candidates += CommandLine.arguments.prefix(1).map { URL(fileURLWithPath: $0).deletingLastPathComponent() }
    for dir in candidates {
        // On Linux the bundle URL is the products directory itself or the .xctest inside it.
        for base in [dir, dir.deletingLastPathComponent()] {
            let url = base.appendingPathComponent("jpgen")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
    }
    throw CLITestError.executableNotFound(candidates.map(\.path))
}

enum CLITestError: Error {
    /// Build it first (`swift build --build-tests` builds every product) or set JPGEN_BIN.
    case executableNotFound([String])
}

let cliFixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/SafeTensors")

final class InspectCommandTests: XCTestCase {
    func testTextSummary() throws {
        let file = cliFixtures.appendingPathComponent("good/all_dtypes.safetensors").path
        let r = try runJPGen(["inspect", file])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("tensors: 19"), r.stdout)
        XCTAssertTrue(r.stdout.contains("parameters: 118"), r.stdout)
        XCTAssertTrue(r.stdout.contains("dtypes: F32 4, BF16 2, F16 2, BOOL 1"), r.stdout)
        XCTAssertTrue(r.stdout.contains("largest tensors:\n  f16.random "), r.stdout)
        XCTAssertTrue(r.stdout.contains("  title: 富士山と江ノ島"), r.stdout)
        XCTAssertEqual(r.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("  ") && $0.contains(" [") }.count, 10,
                       "the 10 largest tensors")
    }

    func testJSONSummary() throws {
        let file = cliFixtures.appendingPathComponent("good/all_dtypes.safetensors").path
        let r = try runJPGen(["inspect", "--json", file])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["tensor_count"] as? Int, 19)
        XCTAssertEqual(json["parameter_count"] as? Int, 118)
        XCTAssertEqual(json["file_bytes"] as? Int, 1677)
        XCTAssertEqual((json["dtypes"] as? [String: Int])?["F32"], 4)
        let largest = try XCTUnwrap(json["largest"] as? [[String: Any]])
        XCTAssertEqual(largest.count, 10)
        XCTAssertEqual(largest.first?["name"] as? String, "f16.random")
        XCTAssertEqual(largest.first?["shape"] as? [Int], [2, 3, 4])
        XCTAssertEqual((json["metadata"] as? [String: String])?["quote"], "a \"b\" \\ c\nd")

        let empty = try runJPGen(["inspect", "--json", cliFixtures.appendingPathComponent("good/no_tensors.safetensors").path])
        XCTAssertEqual(empty.status, 0, empty.stderr)
        let e = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(empty.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(e["tensor_count"] as? Int, 0)
        XCTAssertEqual((e["metadata"] as? [String: String])?["note"], "empty")
    }

    func testBadFilesExitNonZeroWithTheLibraryMessage() throws {
        let dir = cliFixtures.appendingPathComponent("bad")
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("bad.json"))) as! [String: String]
        // A representative subset (each run is a process start); the library tests cover every case.
        let phrases = [
            "truncated_data.safetensors": "truncated safetensors file",
            "header_past_end.safetensors": "runs past the end",
            "not_json.safetensors": "not a JSON object",
            "overlap.safetensors": "overlaps",
            "size_mismatch.safetensors": "needs 12 bytes but its data_offsets span 8",
            "unknown_dtype.safetensors": "unknown dtype 'F17'",
            "offsets_reversed.safetensors": "outside the",
        ]
        for (name, phrase) in phrases {
            XCTAssertNotNil(expected[name], name)
            let path = dir.appendingPathComponent(name).path
            let r = try runJPGen(["inspect", path])
            XCTAssertEqual(r.status, 1, "\(name): \(r.stdout)")
            XCTAssertEqual(r.stdout, "", name)
            XCTAssertTrue(r.stderr.hasPrefix("error: \(path): "), "\(name): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(phrase), "\(name): \(r.stderr)")
        }
        // PyTorch pickle checkpoints (their first bytes as torch.save writes them; no pickle file ships).
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pickle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let zip: [UInt8] = [0x50, 0x4B, 0x03, 0x04] + [UInt8](repeating: 0, count: 22) + [16, 0, 0, 0] + Array("archive/data.pkl".utf8)
        let legacy: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E, 0x80]
        for (name, bytes, phrase) in [("model.ckpt", zip, "convert it to .safetensors"), ("legacy.pt", legacy, "pickle protocol 2")] {
            let path = folder.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let r = try runJPGen(["inspect", path])
            XCTAssertEqual(r.status, 1, name)
            XCTAssertTrue(r.stderr.hasPrefix("error: \(path): ") && r.stderr.contains(phrase), "\(name): \(r.stderr)")
        }
        let missing = try runJPGen(["inspect", "/nonexistent/model.safetensors"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/model.safetensors: cannot open"), missing.stderr)
    }

    func testHelpAndUsageErrors() throws {
        let help = try runJPGen(["inspect", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--json"), help.stdout)
        let noFile = try runJPGen(["inspect"])
        XCTAssertNotEqual(noFile.status, 0)
        XCTAssertTrue(noFile.stderr.contains("Missing expected argument"), noFile.stderr)
    }
}
