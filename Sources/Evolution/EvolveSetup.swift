// What an evolve run checks and resolves before any worker starts, so that bad input fails at once with
// the recipe and the key named: the recipe is single-stage and merges at its initial values, every
// input is a diffusers folder, the suite and its split hold prompts, the scorer folder exists, the
// penalties are known (the unprompted penalty with its labels). It also decides where the fixed parts of the candidates' pipeline come from.
//
// Only the UNet changes from candidate to candidate (merged in memory, Sakana's EvoSDXL-JP also merges
// UNets only); the tokenizer, text encoder and scheduler come from one input (`components:
// {text_encoder: copy X}` names it, else the recipe's base, else the first input) and the VAE likewise
// (`vae: copy Y`); the best recipe names that scheduler (`scheduler: copy X`), so that its merged
// folder samples as the candidates did. A recipe that *merges* a text encoder or VAE is accepted only
// when that component is the same in every input (then merging leaves it as it is), because the
// fitness would not see it.

import Diffusion
import Evaluation
import Foundation
import Merging

public struct EvolveSetup {
    public let recipe: EvolveRecipe
    /// The recipe's folder: relative paths (inputs, suite, scorer) are taken from it first.
    public let folder: URL
    public let suitePath: String
    public let scorerPath: String
    public let suite: PromptSuite
    public let split: PromptSuite.Split
    /// The (prompt, seed) cases each candidate is scored on.
    public let cases: [(prompt: PromptSuite.Prompt, seed: UInt64)]
    public let settings: GenerationSettings
    /// The concrete recipe at the initial values (inputs resolved).
    public let initialRecipe: Recipe
    /// The input folder whose tokenizer, text encoder and scheduler every candidate uses.
    public let pipelineSource: String
    /// The name of that input in the recipe.
    public let pipelineInput: String
    /// The input folder whose VAE every candidate uses, when it is not `pipelineSource`.
    public let vaeSource: String?
    /// unet/config.json of the reference input (the merged folder gets the same).
    public let unetConfigURL: URL
    /// Subtracted from the mean score per sampler step.
    public let stepPenalty: Double
    /// Weight of the unprompted-element penalty (0: off).
    public let unpromptedPenalty: Double
    /// Suite tag -> the scorer-language name of the element, for the unprompted penalty.
    public let unpromptedLabels: [String: String]

    public init(recipe: EvolveRecipe, folder explicitFolder: URL? = nil) throws {
        self.recipe = recipe
        let folder = explicitFolder ?? (recipe.path.hasPrefix("<")
            ? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            : URL(fileURLWithPath: recipe.path).deletingLastPathComponent())
        self.folder = folder
        func fail(_ message: String) -> EvolutionError { .recipe(path: recipe.path, message: message) }

        if EvolveRecipe.lookup(recipe.template, ["stages"]) != nil {
            throw fail("evolve works on single-stage recipes (no 'stages:'); evolve one stage and chain the result")
        }
        let fitness = recipe.spec.fitness
        for name in (fitness.penalties ?? [:]).keys.sorted() where !["steps", "unprompted"].contains(name) {
            throw fail("evolve.fitness.penalties: unknown penalty '\(name)' (known: steps, unprompted)")
        }
        stepPenalty = fitness.penalties?["steps"] ?? 0
        unpromptedPenalty = fitness.penalties?["unprompted"] ?? 0
        unpromptedLabels = fitness.unpromptedLabels ?? [:]
        if unpromptedPenalty != 0 && unpromptedLabels.isEmpty {
            throw fail("evolve.fitness.penalties.unprompted needs evolve.fitness.unprompted_labels (suite tag -> the element's name, e.g. {sun: 太陽})")
        }
        if let empty = unpromptedLabels.sorted(by: { $0.key < $1.key }).first(where: { $0.value.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw fail("evolve.fitness.unprompted_labels.\(empty.key): the label is empty")
        }
        if let steps = fitness.steps, steps < 1 { throw fail("evolve.fitness.steps must be at least 1, got \(steps)") }
        if let n = fitness.seedsPerPrompt, n < 1 { throw fail("evolve.fitness.seeds_per_prompt must be at least 1, got \(n)") }
        if let n = fitness.maxPrompts, n < 1 { throw fail("evolve.fitness.max_prompts must be at least 1, got \(n)") }
        if let seeds = fitness.seeds {
            if seeds.isEmpty { throw fail("evolve.fitness.seeds is empty (leave it out to use the suite's seeds)") }
            if let twice = seeds.first(where: { s in seeds.filter { $0 == s }.count > 1 }) {
                throw fail("evolve.fitness.seeds: seed \(twice) is listed twice")
            }
        }

        // The suite and its split.
        suitePath = resolveRecipePath(fitness.suite, folder: folder)
        do {
            var loaded = try PromptSuite(contentsOf: URL(fileURLWithPath: suitePath))
            if let seeds = fitness.seeds {
                for i in loaded.prompts.indices { loaded.prompts[i].seeds = seeds }
            }
            suite = loaded
        } catch {
            throw fail("evolve.fitness.suite: \(error.localizedDescription)")
        }
        let splitName = fitness.split ?? "search"
        guard let split = PromptSuite.Split(rawValue: splitName) else {
            throw fail("evolve.fitness.split: unknown split '\(splitName)' (search or held-out)")
        }
        self.split = split
        if let n = fitness.seedsPerPrompt, let short = suite.prompts(in: split).first(where: { $0.seeds.count < n }) {
            throw fail("evolve.fitness.seeds_per_prompt is \(n), but prompt '\(short.id)' of \(suitePath) has \(short.seeds.count) seed(s) "
                       + "(list more in evolve.fitness.seeds, e.g. seeds: [\((1...n).map(String.init).joined(separator: ", "))])")
        }
        cases = selectCases(suite, split: split, maxPrompts: fitness.maxPrompts, seedsPerPrompt: fitness.seedsPerPrompt)
        guard !cases.isEmpty else { throw fail("evolve.fitness: the suite \(suitePath) has no prompts in the '\(splitName)' split") }

        // The scorer folder (loaded by the workers; checked here so that a typo fails before they start).
        scorerPath = resolveRecipePath(fitness.scorer, folder: folder)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: scorerPath, isDirectory: &isFolder), isFolder.boolValue else {
            throw fail("evolve.fitness.scorer: \(scorerPath) is not a folder (a CLIP-style model folder with config.json)")
        }
        guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: scorerPath).appendingPathComponent("config.json").path) else {
            throw fail("evolve.fitness.scorer: \(scorerPath) has no config.json (expected a CLIP-style model folder)")
        }
        settings = GenerationSettings(sampler: fitness.sampler, steps: fitness.steps, cfg: fitness.cfg.map(Float.init),
                                      width: fitness.width, height: fitness.height)

        // The recipe at its initial values must merge.
        let initialValues = Dictionary(uniqueKeysWithValues: recipe.spec.space.parameters.map { ($0.name, $0.initial) })
        let initialRecipe = try Recipe(yaml: try recipe.concreteRecipe(initialValues), path: recipe.path, relativeTo: folder)
        self.initialRecipe = initialRecipe
        let plan = try MergeEngine.plan(initialRecipe, outputPath: nil)
        for (name, path) in initialRecipe.inputs where !(plan.checkpoints[name]?.isFolder ?? false) {
            throw fail("input '\(name)' (\(path)) is a single file: evolve generates images, so it needs diffusers pipeline folders (tokenizer, text encoder, VAE, scheduler)")
        }
        guard plan.items.contains(where: { $0.component == "unet" && $0.copyFrom == nil }) else {
            throw fail("the recipe merges no UNet tensor (components: unet is copied or omitted), so there is nothing to evolve")
        }
        let reference = initialRecipe.base ?? initialRecipe.inputs[0].name
        let paths = Dictionary(uniqueKeysWithValues: initialRecipe.inputs.map { ($0.name, $0.path) })
        func source(_ component: String) throws -> String {
            switch initialRecipe.components[component] ?? .merge {
            case .copy(let input): return input
            case .omit: return reference
            case .merge:
                guard try componentIsUnchangedByMerge(component, plan: plan) else {
                    throw fail("components.\(component) is merged, but the inputs' \(component) weights differ and evolve rebuilds only the UNet per candidate: set 'components: {\(component): copy INPUT}'")
                }
                return reference
            }
        }
        let encoderSource = try source("text_encoder")
        for part in ["tokenizer", "scheduler"] {
            if case .copy(let input)? = initialRecipe.components[part], input != encoderSource {
                throw fail("components.\(part) is copied from '\(input)', but evolve's candidates take the tokenizer and scheduler with the text encoder, from '\(encoderSource)'")
            }
        }
        let vaeInput = try source("vae")
        pipelineInput = encoderSource
        pipelineSource = paths[encoderSource]!
        vaeSource = vaeInput == encoderSource ? nil : paths[vaeInput]!
        unetConfigURL = URL(fileURLWithPath: paths[reference]!).appendingPathComponent("unet/config.json")
    }

    /// The recipe with a candidate's values written in, parsed (inputs resolved from the recipe's folder).
    public func concrete(_ values: [String: Double]) throws -> Recipe {
        try Recipe(yaml: try recipe.concreteRecipe(values), path: recipe.path, relativeTo: folder)
    }

    /// The cases of another split (e.g. held-out, for judging the result), every prompt and seed.
    public func allCases(in split: PromptSuite.Split) -> [(prompt: PromptSuite.Prompt, seed: UInt64)] {
        selectCases(suite, split: split, maxPrompts: nil, seedsPerPrompt: nil)
    }

    /// Fitness = mean score - step penalty x steps - unprompted penalty x mean unprompted belief.
    public func fitness(meanScore: Double, steps: Int, meanUnprompted: Double = 0) -> Double {
        meanScore - stepPenalty * Double(steps) - unpromptedPenalty * meanUnprompted
    }

    /// The captions the unprompted penalty weighs against a prompt: the prompt with each labelled
    /// element it does not ask for ("夜の五重塔、太陽"), in tag order.
    public func unpromptedCaptions(_ prompt: PromptSuite.Prompt) -> [String] {
        let asked = Set(prompt.tags)
        return unpromptedLabels.keys.sorted().filter { !asked.contains($0) }.map { "\(prompt.ja)、\(unpromptedLabels[$0]!)" }
    }
}

/// The first `maxPrompts` prompts of a split, each with its first `seedsPerPrompt` seeds.
public func selectCases(_ suite: PromptSuite, split: PromptSuite.Split?, maxPrompts: Int?, seedsPerPrompt: Int?)
    -> [(prompt: PromptSuite.Prompt, seed: UInt64)] {
    let prompts = suite.prompts(in: split).prefix(maxPrompts ?? Int.max)
    return prompts.flatMap { prompt in prompt.seeds.prefix(seedsPerPrompt ?? Int.max).map { (prompt, $0) } }
}

/// A path from a recipe: absolute as it is; relative to the recipe's folder when something is there,
/// else to the working directory (the rule `Recipe` applies to its inputs).
public func resolveRecipePath(_ path: String, folder: URL) -> String {
    guard !path.hasPrefix("/") else { return path }
    let candidate = folder.appendingPathComponent(path).standardizedFileURL.path
    let fm = FileManager.default
    if fm.fileExists(atPath: candidate) || !fm.fileExists(atPath: path) { return candidate }
    return URL(fileURLWithPath: path).standardizedFileURL.path
}

/// True when merging leaves `component` as the reference input has it: every input holds the same bytes
/// for each of its tensors, and no LoRA of the recipe touches it.
func componentIsUnchangedByMerge(_ component: String, plan: MergePlan) throws -> Bool {
    let items = plan.items.filter { $0.component == component }
    if items.contains(where: { plan.loras[$0.name] != nil }) { return false }
    let checkpoints = plan.recipe.inputs.map { plan.checkpoints[$0.name]! }
    for item in items {
        var first: (dtype: String, bytes: UnsafeRawBufferPointer)?
        for checkpoint in checkpoints {
            guard let entry = checkpoint.entries[item.name] else { return false }
            let bytes = try entry.file.rawBytes(entry.storedName)
            let dtype = "\(entry.info.dtype)"
            if let reference = first {
                guard reference.dtype == dtype, reference.bytes.count == bytes.count else { return false }
                if bytes.count > 0, memcmp(reference.bytes.baseAddress!, bytes.baseAddress!, bytes.count) != 0 { return false }
            } else {
                first = (dtype, bytes)
            }
        }
    }
    return true
}
