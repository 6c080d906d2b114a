// evomerge merge RECIPE.yaml: a streaming merge by a recipe (see Sources/Merging/Recipe.swift).
import ArgumentParser
import Foundation
import Merging

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge checkpoints by a YAML recipe (linear, add_difference, task_arithmetic, ties, dare_linear, dare_ties, slerp).")

    @Argument(help: "The recipe (YAML).")
    var recipe: String

    @Option(name: .shortAndLong, help: "Where to write the merge (overrides the recipe's output).")
    var output: String?

    @Flag(help: "Check the inputs and print the plan without writing anything.")
    var dryRun = false

    @Flag(help: "No progress line on stderr.")
    var quiet = false

    func run() throws {
        let staged = try StagedRecipe(contentsOf: URL(fileURLWithPath: recipe))
        if staged.isMultiStage {
            guard !dryRun else { throw ValidationError("--dry-run checks single-stage recipes only") }
            var lastPrint = Date.distantPast
            let files = try staged.run(output: output) { stage, p in
                guard !quiet, Date().timeIntervalSince(lastPrint) > 0.5 || p.tensorsDone == p.tensorsTotal else { return }
                lastPrint = Date()
                FileHandle.standardError.write(Data("\rstage \(stage): \(p.tensorsDone)/\(p.tensorsTotal) tensors".utf8))
            }
            if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
            for file in files { print("wrote \(file.path)") }
            return
        }
        let parsed = try Recipe(contentsOf: URL(fileURLWithPath: recipe))
        guard let destination = output ?? parsed.output else {
            throw ValidationError("no output: set 'output:' in \(recipe) or pass --output")
        }
        let plan = try MergeEngine.plan(parsed, outputPath: destination)
        let merged = plan.items.filter { $0.copyFrom == nil }.count
        if dryRun {
            print("method \(parsed.method.rawValue), \(parsed.inputs.count) inputs, \(plan.items.count) tensors (\(merged) merged, \(plan.items.count - merged) copied), dtype \(parsed.dtype.rawValue)")
            print("output \(destination)\(plan.outputIsFolder ? " (diffusers folder)" : "")")
            return
        }
        var lastPrint = Date.distantPast
        let files = try MergeEngine.run(plan, to: destination) { p in
            guard !quiet, Date().timeIntervalSince(lastPrint) > 0.5 || p.tensorsDone == p.tensorsTotal else { return }
            lastPrint = Date()
            let rate = Double(p.bytesRead) / max(p.seconds, 1e-6) / 1e6
            let eta = p.tensorsDone > 0 ? p.seconds / Double(p.tensorsDone) * Double(p.tensorsTotal - p.tensorsDone) : 0
            let filled = 30 * p.tensorsDone / max(p.tensorsTotal, 1)
            let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: 30 - filled)
            let line = "\r[\(bar)] \(p.tensorsDone)/\(p.tensorsTotal) tensors  " + String(format: "%.0f MB/s  ETA %.0f s", rate, eta)
            FileHandle.standardError.write(Data(line.utf8))
        }
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        for file in files { print("wrote \(file.path)") }
    }
}
