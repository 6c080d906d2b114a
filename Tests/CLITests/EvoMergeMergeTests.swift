// `evomerge merge` end to end through the built executable.

import Foundation
import SafeTensors
import XCTest

final class EvoMergeMergeTests: XCTestCase {
    func testMergeDryRunAndErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cli-merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for (name, value) in [("a", Float(1)), ("b", Float(2))] {
            let writer = try SafeTensorsWriter(url: folder.appendingPathComponent("\(name).safetensors"),
                                               entries: [("model.diffusion_model.input_blocks.0.0.weight", .F16, [2, 2])], metadata: [:])
            try [value, value, value, value].withUnsafeBufferPointer { try writer.write("model.diffusion_model.input_blocks.0.0.weight", float32: $0) }
            try writer.finish()
        }
        let recipe = folder.appendingPathComponent("r.yaml")
        try Data("inputs: {a: a.safetensors, b: b.safetensors}\nmethod: linear\nparameters: {weight: {a: 0.5, b: 0.5}}\noutput: m.safetensors\n".utf8).write(to: recipe)
        let dry = try runTool("evomerge", ["merge", recipe.path, "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("method linear, 2 inputs, 1 tensors (1 merged, 0 copied), dtype F16"), dry.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("m.safetensors").path))
        let run = try runTool("evomerge", ["merge", recipe.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("1/1 tensors"), run.stderr)
        let merged = try SafeTensorsFile(url: folder.appendingPathComponent("m.safetensors"))
        XCTAssertEqual(try merged.tensor("model.diffusion_model.input_blocks.0.0.weight").scalars, [1.5, 1.5, 1.5, 1.5])
        let clash = try runTool("evomerge", ["merge", recipe.path, "--output", folder.appendingPathComponent("a.safetensors").path])
        XCTAssertNotEqual(clash.status, 0)
        XCTAssertTrue(clash.stderr.contains("the output would overwrite input 'a'"), clash.stderr)
        let missing = try runTool("evomerge", ["merge", folder.appendingPathComponent("none.yaml").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("none.yaml: cannot be read"), missing.stderr)
    }

    func testShippedRecipesParse() throws {
        let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MergeRecipes")
        for name in ["demo-ties.yaml", "demo-evolve.yaml", "evosdxl-jp-style.yaml"] {
            let r = try runTool("evomerge", ["merge", recipes.appendingPathComponent(name).path, "--dry-run"])
            // The demo models and the SDXL checkpoints are not on this machine; the recipe must parse and
            // fail on the first missing input, naming it.
            XCTAssertFalse(r.stderr.contains("unknown key") || r.stderr.contains("invalid YAML"), "\(name): \(r.stderr)")
            if r.status != 0 { XCTAssertTrue(r.stderr.contains("no such file or folder"), "\(name): \(r.stderr)") }
        }
    }
}
