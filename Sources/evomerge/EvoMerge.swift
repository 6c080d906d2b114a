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

/// A comma-separated seed list of an option (`--seeds`, `--report-seeds`): non-negative integers, at
/// least one, none twice.
func parseSeedList(_ text: String, option: String) throws -> [UInt64] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    let values = try parts.map { part -> UInt64 in
        guard let value = UInt64(part) else {
            throw ValidationError("\(option): \"\(part)\" is not a non-negative integer (in \"\(text)\")")
        }
        return value
    }
    if let repeated = Dictionary(grouping: values, by: { $0 }).first(where: { $0.value.count > 1 }) {
        throw ValidationError("\(option): \(repeated.key) is given \(repeated.value.count) times")
    }
    return values
}
