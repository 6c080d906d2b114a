// `evomerge evolve` end to end through the built executable, on the bundled demo models (tiny, 64x64):
// a 2-parameter TIES search, population 4, 2 generations, 2 prompts. The demo models may be replaced by
// a newer export at any time, so no fitness value is asserted: only the outputs' structure, determinism
// and resume behaviour.

import Evaluation
import Foundation
import XCTest

final class EvoMergeEvolveTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("cli-evolve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("""
            name: tiny
            seeds: [1, 2]
            prompts:
              - {id: fuji-day, ja: 青空の富士、写真風, tags: [fuji], split: search}
              - {id: pagoda-night, ja: 夜の五重塔と月、浮世絵風, tags: [pagoda], split: search}
              - {id: never-used, ja: 夕焼けの江ノ島, tags: [enoshima], split: held-out}
            """.utf8).write(to: folder.appendingPathComponent("suite.yaml"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func model(_ name: String) -> String { Self.root.appendingPathComponent("Models/\(name)").path }

    /// A recipe over the demo models; `evolve` replaces the default evolve section.
    func writeRecipe(_ name: String = "r.yaml", evolve: String? = nil, scorer: String? = nil) throws -> String {
        let section = evolve ?? """
            evolve:
              parameters:
                - {path: parameters.weight.ukiyoe, min: 0, max: 1, init: 0.3}
                - {path: parameters.density.ukiyoe, min: 0.1, max: 1, init: 0.5}
              population: 4
              generations: 2
              sigma0: 0.3
              seed: 7
              fitness: {suite: suite.yaml, split: search, scorer: \(scorer ?? model("demo-scorer")), sampler: lcm, steps: 2, seeds_per_prompt: 1}
            """
        let text = """
            inputs: {base: \(model("demo-base")), lcm: \(model("demo-lcm")), ukiyoe: \(model("demo-ukiyoe"))}
            method: ties
            base: base
            parameters:
              weight: {lcm: 1.0, ukiyoe: 0.3}
              density: {lcm: 0.9, ukiyoe: 0.5}
            components: {text_encoder: copy lcm, vae: copy lcm}
            dtype: fp16
            output: never-written
            \(section)
            """
        let url = folder.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func testEvolveWritesItsOutputsAndResumesAfterSIGKILLOnTheSameTrajectory() throws {
        let recipe = try writeRecipe()
        // 1. An uninterrupted run.
        let runA = folder.appendingPathComponent("a").path
        let started = Date()
        let a = try runTool("evomerge", ["evolve", recipe, "--run-dir", runA, "--json", "--report-split", "search",
                                         "--report-seeds", "5,6,7"])
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(a.status, 0, a.stderr)
        let outA = try json(a.stdout)
        XCTAssertEqual(outA["evaluations"] as? Int, 8)
        XCTAssertEqual(outA["new_evaluations"] as? Int, 8)
        XCTAssertEqual(outA["generations"] as? Int, 2)
        XCTAssertTrue(a.stderr.contains("generation 2/2  best "), a.stderr)
        XCTAssertTrue(a.stderr.contains("ETA"), a.stderr)
        let best = try XCTUnwrap(outA["best_parameters"] as? [String: Double])
        XCTAssertTrue((0...1).contains(best["parameters.weight.ukiyoe"]!))
        XCTAssertTrue((0.1...1).contains(best["parameters.density.ukiyoe"]!))
        XCTAssertNotNil(outA["best_fitness"] as? Double)
        for file in ["evolve.sqlite", "best-recipe.yaml", "best-merged/unet/diffusion_pytorch_model.safetensors",
                     "best-merged/model_index.json", "results.sqlite", "report.html", "report.md", "evolution.md", "evolution.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: runA + "/" + file), "missing \(file)")
        }
        XCTAssertEqual(outA["merged_checkpoint"] as? String, runA + "/best-merged")
        XCTAssertEqual(outA["best_recipe"] as? String, runA + "/best-recipe.yaml")

        // The best recipe is a plain recipe that `evomerge merge` accepts, holding the best values.
        let bestRecipe = try String(contentsOfFile: runA + "/best-recipe.yaml", encoding: .utf8)
        XCTAssertFalse(bestRecipe.contains("evolve:"), bestRecipe)
        let dry = try runTool("evomerge", ["merge", runA + "/best-recipe.yaml", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("method ties, 3 inputs"), dry.stdout)
        let weightLine = try XCTUnwrap(bestRecipe.split(separator: "\n").first { $0.hasPrefix("    ukiyoe: ") }, bestRecipe)
        XCTAssertEqual(Double(weightLine.dropFirst("    ukiyoe: ".count))!, best["parameters.weight.ukiyoe"]!, accuracy: 1e-12)

        // `evomerge report` renders the comparison store: the best merge, each parent, the uniform average.
        let report = try runTool("evomerge", ["report", runA + "/results.sqlite", "--json", "--out", folder.appendingPathComponent("report").path])
        XCTAssertEqual(report.status, 0, report.stderr)
        let models = try XCTUnwrap(try json(report.stdout)["models"] as? [[String: Any]])
        XCTAssertEqual(Set(models.compactMap { $0["name"] as? String }), ["evolved", "base", "lcm", "ukiyoe", "uniform-average"])
        XCTAssertTrue(models.allSatisfy { $0["n"] as? Int == 6 }, "every prompt of the split x the 3 report seeds: \(models)")
        let seeds = try ResultsStore(url: URL(fileURLWithPath: runA + "/results.sqlite")).all().map(\.seed)
        XCTAssertEqual(Set(seeds), [5, 6, 7])
        let comparison = try XCTUnwrap(outA["comparison"] as? [[String: Any]])
        XCTAssertEqual(comparison.map { $0["model"] as? String }, ["evolved", "base", "lcm", "ukiyoe", "uniform-average"])
        XCTAssertNil(comparison[0]["difference"] as? Double)
        XCTAssertTrue(comparison.dropFirst().allSatisfy { $0["difference"] is Double && $0["difference_ci95"] is Double }, "\(comparison)")
        let evolution = try String(contentsOfFile: runA + "/evolution.md", encoding: .utf8)
        XCTAssertTrue(evolution.contains("evolved - model (paired)"), evolution)
        XCTAssertTrue(evolution.contains("| 2 |"), evolution)

        // A finished run is not silently reused.
        let again = try runTool("evomerge", ["evolve", recipe, "--run-dir", runA])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already holds a run: pass --resume"), again.stderr)
        // ... but a finished run can be resumed with a larger budget.
        let more = try runTool("evomerge", ["evolve", recipe, "--run-dir", runA, "--resume", "--generations", "3",
                                            "--json", "--report-split", "search"])
        XCTAssertEqual(more.status, 0, more.stderr)
        let outMore = try json(more.stdout)
        XCTAssertEqual(outMore["generations"] as? Int, 3)
        XCTAssertEqual(outMore["evaluations"] as? Int, 12)
        XCTAssertEqual(outMore["new_evaluations"] as? Int, 4)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(outMore["best_fitness"] as? Double), try XCTUnwrap(outA["best_fitness"] as? Double))
        XCTAssertTrue(FileManager.default.fileExists(atPath: runA + "/report.md"), "outputs of the earlier run are replaced")
        XCTAssertTrue(try String(contentsOfFile: runA + "/best-recipe.yaml", encoding: .utf8).contains("fitness \(String(format: "%.6f", outMore["best_fitness"] as! Double))"))

        // 2. The same run, killed with SIGKILL in the middle of generation 2, then resumed.
        let runB = folder.appendingPathComponent("b").path
        let killed = try runUntil("evomerge", ["evolve", recipe, "--run-dir", runB, "--report-split", "none"],
                                  killWhenStderrContains: "generation 2 candidate")
        XCTAssertTrue(killed.killed, "the run finished before it could be killed: \(killed.stderr)")
        let finishedBeforeKill = killed.stderr.components(separatedBy: "  generation ").count - 1
        XCTAssertGreaterThanOrEqual(finishedBeforeKill, 5, killed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runB + "/best-recipe.yaml"))

        let b = try runTool("evomerge", ["evolve", recipe, "--run-dir", runB, "--resume", "--json", "--report-split", "none"])
        XCTAssertEqual(b.status, 0, b.stderr)
        let outB = try json(b.stdout)
        let reused = try XCTUnwrap(outB["reused_evaluations"] as? Int), fresh = try XCTUnwrap(outB["new_evaluations"] as? Int)
        XCTAssertGreaterThanOrEqual(reused, finishedBeforeKill - 4, "generation 2's finished evaluations are kept")
        XCTAssertEqual(reused + fresh, 4, "generation 2 is completed, nothing evaluated twice (generation 1 was done)")
        XCTAssertEqual(outB["evaluations"] as? Int, 8)
        XCTAssertEqual(outB["best_parameters"] as? [String: Double], best, "same trajectory as the uninterrupted run")
        XCTAssertEqual(outB["best_fitness"] as? Double, outA["best_fitness"] as? Double)
        XCTAssertNil(outB["report"] as? String)
        print("evolve: 8 candidates x 2 images + 5 models x 4 comparison images in \(String(format: "%.1f", seconds)) s")
    }

    func testBadInputGivesClearErrors() throws {
        func failure(_ arguments: [String]) throws -> String {
            let r = try runTool("evomerge", arguments)
            XCTAssertNotEqual(r.status, 0, "\(arguments) should fail")
            return r.stderr
        }
        let plain = folder.appendingPathComponent("plain.yaml").path
        try Data("inputs: {a: \(model("demo-base")), b: \(model("demo-lcm"))}\nmethod: linear\n".utf8).write(to: URL(fileURLWithPath: plain))
        XCTAssertTrue(try failure(["evolve", plain]).contains("plain.yaml: no 'evolve:' section"))

        let fitness = "fitness: {suite: suite.yaml, scorer: \(model("demo-scorer"))}"
        let badPath = try writeRecipe("path.yaml", evolve: "evolve: {parameters: [{path: parameters.weight.nope, min: 0, max: 1}], generations: 1, \(fitness)}")
        XCTAssertTrue(try failure(["evolve", badPath]).contains("evolve parameter 'parameters.weight.nope': the recipe has nothing at 'parameters.weight.nope'"))

        let badBounds = try writeRecipe("bounds.yaml", evolve: "evolve: {parameters: [{path: parameters.weight.ukiyoe, min: 1, max: 0.5}], generations: 1, \(fitness)}")
        XCTAssertTrue(try failure(["evolve", badBounds]).contains("lower bound 1.0 is not below upper bound 0.5"))

        let missingScorer = folder.appendingPathComponent("no-such-scorer").path
        let badScorer = try writeRecipe("scorer.yaml", scorer: missingScorer)
        let message = try failure(["evolve", badScorer, "--run-dir", folder.appendingPathComponent("x").path])
        XCTAssertTrue(message.contains("evolve.fitness.scorer: \(missingScorer) is not a folder"), message)

        let badSuite = try writeRecipe("suite.yaml.recipe", evolve: "evolve: {parameters: [{path: parameters.weight.ukiyoe, min: 0, max: 1}], generations: 1, fitness: {suite: none.yaml, scorer: \(model("demo-scorer"))}}")
        XCTAssertTrue(try failure(["evolve", badSuite]).contains("evolve.fitness.suite:"))

        XCTAssertTrue(try failure(["evolve", badScorer, "--workers", "0"]).contains("--workers must be at least 1"))
        XCTAssertTrue(try failure(["evolve", badScorer, "--report-seeds", "1,-2"]).contains("--report-seeds: \"-2\" is not a non-negative integer"))
    }

    /// Runs a tool, sends SIGKILL as soon as its stderr contains `marker`, and waits for it.
    func runUntil(_ name: String, _ arguments: [String], killWhenStderrContains marker: String) throws
        -> (killed: Bool, stderr: String) {
        let process = Process()
        process.executableURL = try jpgenExecutable().deletingLastPathComponent().appendingPathComponent(name)
        process.arguments = arguments
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        var text = ""
        var killed = false
        while true {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if !killed && text.contains(marker) {
                kill(process.processIdentifier, SIGKILL)
                killed = true
            }
        }
        process.waitUntilExit()
        return (killed && process.terminationReason == .uncaughtSignal, text)
    }
}
