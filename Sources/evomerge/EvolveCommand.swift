// evomerge evolve RECIPE.yaml: CMA-ES over the parameters the recipe's `evolve:` section names, each
// candidate merged in memory and scored on the prompt suite by worker processes (`evomerge worker`),
// every trial in <run-dir>/evolve.sqlite; then the best recipe, its merged checkpoint and the
// comparison store for `evomerge report`. See Sources/Evolution/EvolveRecipe.swift for the section.
import ArgumentParser
import Evaluation
import Evolution
import Foundation
import Kernels

struct EvolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evolve",
        abstract: "Evolve a merge recipe's parameters with CMA-ES, scored by CLIPScore on a prompt suite.")

    @Argument(help: "A merge recipe (YAML) with an 'evolve:' section.")
    var recipe: String

    @Option(help: "The run's folder (trial store, best recipe, merged checkpoint, reports). Default: runs/<recipe name>.")
    var runDir: String?

    @Option(help: "Worker processes evaluating candidates in parallel.")
    var workers: Int = 1

    @Option(help: "Threads per worker (default: one for tiny models such as the demo's, else the cores divided among the workers).")
    var threads: Int?

    @Flag(help: "Continue the run in --run-dir (after an interruption) instead of refusing to touch it.")
    var resume = false

    @Option(help: "Generations (overrides the recipe's evolve.generations).")
    var generations: Int?

    @Option(help: "Candidates per generation (overrides the recipe's evolve.population).")
    var population: Int?

    @Option(help: "Suite split for the comparison of best, parents and uniform average: search, held-out or none (default: held-out when the suite has held-out prompts).")
    var reportSplit: String?

    @Option(help: "Seeds for the comparison images, comma-separated (default: the suite's; more seeds, narrower intervals).")
    var reportSeeds: String?

    @Flag(help: "Print one JSON object (best_fitness, best_recipe, merged_checkpoint, evaluations, ...) on stdout.")
    var json = false

    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1, got \(workers)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if let generations, generations < 1 { throw ValidationError("--generations must be at least 1, got \(generations)") }
        if let population, population < 2 { throw ValidationError("--population must be at least 2, got \(population)") }
        if let reportSplit, !["search", "held-out", "none"].contains(reportSplit) {
            throw ValidationError("--report-split must be search, held-out or none, got '\(reportSplit)'")
        }
        if let reportSeeds { _ = try parseSeedList(reportSeeds, option: "--report-seeds") }
    }

    func log(_ line: String) {
        if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    func run() throws {
        let recipeURL = URL(fileURLWithPath: recipe).standardizedFileURL
        let evolveRecipe = try EvolveRecipe(contentsOf: recipeURL)
        let setup = try EvolveSetup(recipe: evolveRecipe)
        var settings = evolveRecipe.spec.settings
        if let generations { settings.generations = generations }
        if let population { settings.populationSize = population }

        let runFolder = URL(fileURLWithPath: runDir ?? "runs/\(recipeURL.deletingPathExtension().lastPathComponent)").standardizedFileURL
        try FileManager.default.createDirectory(at: runFolder, withIntermediateDirectories: true)
        let store = try TrialStore(url: runFolder.appendingPathComponent("evolve.sqlite"))

        let cores = ProcessInfo.processInfo.activeProcessorCount
        let workerThreads = max(1, cores / workers)
        var command = [try executablePath(), "worker", recipeURL.path, "--default-threads", String(workerThreads)]
        if let threads { command += ["--threads", String(threads)] }
        let pool = try ProcessPoolEvaluator(command: command, workers: workers)
        defer { pool.shutdown() }
        var newEvaluations = 0
        var reusedEvaluations = 0
        let evaluator = ObservedEvaluator(pool) { result in
            newEvaluations += 1
            log(String(format: "  generation %d candidate %d: fitness %.4f (%.1f s)",
                       result.generation, result.candidate, result.fitness, result.seconds))
        }
        let search = try EvolutionSearch(space: evolveRecipe.spec.space, settings: settings, recipe: evolveRecipe.text,
                                         store: store, evaluator: evaluator, resume: resume)
        let lambda = settings.populationSize ?? 4 + Int(3 * Foundation.log(Double(evolveRecipe.spec.space.parameters.count)))
        log("evolving \(evolveRecipe.spec.space.parameters.count) parameters of \(recipe): population \(lambda), "
            + "\(settings.generations) generations, \(setup.cases.count) images per candidate, \(workers) worker(s) x \(threads.map(String.init) ?? "up to \(workerThreads)") thread(s)")
        let result = try search.run { s in
            reusedEvaluations += s.reusedEvaluations
            log(String(format: "generation %d/%d  best %.4f  mean %.4f  best so far %.4f  %.1f s",
                       s.generation, s.generations, s.bestFitness, s.meanFitness, s.bestSoFar, s.seconds)
                + "  ETA " + formatDuration(s.etaSeconds))
        }
        pool.shutdown()

        // Outputs: best recipe, merged checkpoint, comparison store, reports.
        guard let best = try store.bestTrial() else { throw ValidationError("the run evaluated no candidate") }
        let mergedPath = runFolder.appendingPathComponent("best-merged").path
        let recipeText = try EvolveOutputs.bestRecipe(
            setup: setup, values: result.bestParameters, output: mergedPath,
            comment: "Evolved by `evomerge evolve \(recipe)`: generation \(best.generation), candidate \(best.candidate), "
                + String(format: "fitness %.6f", best.fitness) + ".\nA plain recipe: `evomerge merge best-recipe.yaml` writes the same checkpoint.")
        let bestRecipeURL = runFolder.appendingPathComponent("best-recipe.yaml")
        try EvolveOutputs.write(recipeText, to: bestRecipeURL)
        log("merging the best recipe into \(mergedPath)")
        try EvolveOutputs.merge(recipeAt: bestRecipeURL)

        let split = try comparisonSplit(setup)
        var reportPath: String?
        var comparison: [PairedComparison]?
        var sections = ""
        let resultsURL = runFolder.appendingPathComponent("results.sqlite")
        if let split {
            var cases = setup.allCases(in: split)
            if let reportSeeds {
                let seeds = try parseSeedList(reportSeeds, option: "--report-seeds")
                var seen = Set<String>()
                let prompts = cases.map(\.prompt).filter { seen.insert($0.id).inserted }
                cases = prompts.flatMap { prompt in seeds.map { (prompt: prompt, seed: $0) } }
            }
            log("comparing the best merge with its parents and the uniform average on \(cases.count) \(split.rawValue) images each")
            let fitness = try MergeFitness(setup: setup)
            let contenders = try EvolveOutputs.contenders(fitness: fitness, bestValues: result.bestParameters, mergedFolder: mergedPath)
            let results = try ResultsStore(url: resultsURL)
            try EvolveOutputs.compare(contenders, cases: cases, fitness: fitness, store: results,
                                      imagesFolder: runFolder.appendingPathComponent("images")) { name, done, total in
                if done == total { log("  \(name): \(total) images") }
            }
            let title = "evomerge evolve \(recipeURL.lastPathComponent): best vs parents (\(split.rawValue) prompts)"
            // Evaluation's writeReport cannot replace existing files on Linux (Foundation's replaceItemAt):
            // the report of an earlier run is removed first.
            for name in ["report.md", "report.html"] { try? FileManager.default.removeItem(at: runFolder.appendingPathComponent(name)) }
            reportPath = try writeReport(rows: try results.all(), title: title, to: runFolder).html.path
            let hashes = Set(contenders.map(\.hash))
            comparison = PairedComparison.compare(try results.all().filter { hashes.contains($0.modelHash) })
            sections = "## Best vs parents and the uniform average (\(split.rawValue) prompts, \(cases.count) images each)\n\n"
                + PairedComparison.markdown(comparison!)
            log("\n" + PairedComparison.markdown(comparison!))
        }
        var links = [("best recipe", "best-recipe.yaml"), ("merged checkpoint", "best-merged")]
        if reportPath != nil { links.append(("comparison report", "report.html")) }
        let evolution = try EvolutionReport.write(store: store, space: evolveRecipe.spec.space,
                                                  title: "Evolution of \(recipeURL.lastPathComponent)", to: runFolder,
                                                  sections: sections, links: links)

        if json {
            struct Output: Encodable {
                let best_fitness: Double
                let best_parameters: [String: Double]
                let best_recipe: String
                let merged_checkpoint: String
                let evaluations: Int
                let new_evaluations: Int
                let reused_evaluations: Int
                let generations: Int
                let run_dir: String
                let trial_store: String
                let results_store: String?
                let report: String?
                let evolution_report: String
                let comparison: [PairedComparison]?
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let output = Output(
                best_fitness: result.bestFitness, best_parameters: result.bestParameters, best_recipe: bestRecipeURL.path,
                merged_checkpoint: mergedPath, evaluations: result.evaluations, new_evaluations: newEvaluations,
                reused_evaluations: reusedEvaluations, generations: result.generations, run_dir: runFolder.path,
                trial_store: store.url.path, results_store: split == nil ? nil : resultsURL.path, report: reportPath,
                evolution_report: evolution.path, comparison: comparison)
            print(String(decoding: try encoder.encode(output), as: UTF8.self))
        } else {
            print(String(format: "best fitness %.4f after %d evaluations (%d generations)", result.bestFitness,
                         result.evaluations, result.generations))
            for name in evolveRecipe.spec.space.parameters.map(\.name) {
                print("  \(name) = " + String(format: "%.4f", result.bestParameters[name] ?? .nan))
            }
            print("wrote \(bestRecipeURL.path)\nwrote \(mergedPath)\nwrote \(evolution.path)")
            if let reportPath { print("wrote \(reportPath)") }
        }
    }

    /// The split the comparison uses, or nil for none.
    func comparisonSplit(_ setup: EvolveSetup) throws -> PromptSuite.Split? {
        switch reportSplit {
        case "none": return nil
        case "search": return .search
        case "held-out": return .heldOut
        default:
            return setup.suite.prompts.contains { $0.split == .heldOut } ? .heldOut : .search
        }
    }
}

/// This executable's absolute path (the worker command runs it again).
func executablePath() throws -> String {
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    let argument = CommandLine.arguments[0]
    if argument.hasPrefix("/") { return argument }
    if argument.contains("/") {
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(argument).standardizedFileURL.path
    }
    throw ValidationError("cannot find this executable's path to start workers (run it by its path)")
}

/// "42 s", "3 min 20 s", "1 h 05 min".
func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s < 60 { return "\(s) s" }
    if s < 3600 { return "\(s / 60) min \(s % 60) s" }
    return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60)
}
