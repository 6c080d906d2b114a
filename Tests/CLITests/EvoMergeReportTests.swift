// `evomerge report` end to end through the built executable.

import Evaluation
import Foundation
import XCTest

/// Runs a built executable of this package (next to jpgen) with arguments.
func runTool(_ name: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = try jpgenExecutable().deletingLastPathComponent().appendingPathComponent(name)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

final class EvoMergeReportTests: XCTestCase {
    func testReportFromAStore() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let db = folder.appendingPathComponent("results.sqlite")
        let store = try ResultsStore(url: db)
        for (model, score) in [("base", 0.5), ("evolved", 0.7)] {
            for seed in [1, 2] as [UInt64] {
                try store.insert(ImageResult(model: model, modelHash: "h-\(model)", suite: "demo", promptId: "fuji",
                                             prompt: "富士山", tags: ["landscape"], seed: seed, settings: "{}", scorer: "s",
                                             score: score + Double(seed) / 100, seconds: 0.2,
                                             imagePath: folder.appendingPathComponent("\(model)-\(seed).png").path))
            }
        }
        let r = try runTool("evomerge", ["report", db.path, "--out", folder.appendingPathComponent("out").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let models = object["models"] as! [[String: Any]]
        XCTAssertEqual(models.map { $0["name"] as! String }, ["base", "evolved"])
        XCTAssertEqual(models[1]["mean"] as! Double, 0.715, accuracy: 1e-9)
        let html = try String(contentsOfFile: object["html"] as! String, encoding: .utf8)
        XCTAssertTrue(html.contains("src=\"../evolved-2.png\""))

        let table = try runTool("evomerge", ["report", db.path])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("evolved"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("report.html").path))
    }

    func testMissingStoreIsAnError() throws {
        let r = try runTool("evomerge", ["report", "/nonexistent/results.sqlite"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("/nonexistent/results.sqlite: no such results store"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/nonexistent/results.sqlite"))
    }
}
