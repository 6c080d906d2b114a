// evomerge worker RECIPE.yaml (hidden): one evaluation worker of `evomerge evolve`. Loads the fitness
// pipeline and scorer once, then answers candidate requests read as JSON lines on stdin with results
// as JSON lines on stdout (Sources/Evolution/ProcessPoolEvaluator.swift), until stdin ends.
import ArgumentParser
import Evolution
import Foundation
import Kernels

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Evaluation worker of `evomerge evolve` (JSON lines on stdin/stdout).",
        shouldDisplay: false)

    @Argument(help: "The recipe being evolved (YAML with an 'evolve:' section).")
    var recipe: String

    @Option(help: "Threads for this worker's kernels (the user's --threads of evolve).")
    var threads: Int?

    @Option(help: "Threads when --threads is not given and the model states no preference (its share of the cores).")
    var defaultThreads: Int?

    func run() throws {
        let setup = try EvolveSetup(recipe: try EvolveRecipe(contentsOf: URL(fileURLWithPath: recipe)))
        let fitness = try MergeFitness(setup: setup)
        // One thread for tiny models such as the demo world's (DiffusionModel.preferredThreadCount), else
        // this worker's share of the cores, unless the user said otherwise.
        if let count = threads ?? fitness.pipeline.preferredThreadCount ?? defaultThreads { setThreadCount(count) }
        try WorkerLoop.run(evaluate: fitness.evaluate)
    }
}
