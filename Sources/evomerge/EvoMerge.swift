// evomerge: recipe-driven checkpoint merging, evolutionary search over recipes, and evaluation.
import ArgumentParser
import Kernels

@main
struct EvoMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evomerge",
        abstract: "Merge checkpoints by a YAML recipe, evolve recipes with CMA-ES, evaluate on prompt suites.",
        version: jpgenVersion,
        subcommands: [MergeCommand.self, EvolveCommand.self, EvalCommand.self, ReportCommand.self, WorkerCommand.self]
    )
}
