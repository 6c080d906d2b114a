// The fitness of a merge candidate, as a worker computes it: write the candidate's values into the
// recipe, merge the UNet in memory (no checkpoint per candidate; each tensor rounded to the recipe's
// dtype, so the candidate is exactly the model `evomerge merge` would write), put it into the pipeline
// loaded once per worker, generate the suite's cases at the fitness settings and CLIPScore them through
// Evaluation's `scoreCases` (the same path as `evomerge eval`); fitness = mean over prompts and seeds,
// less the penalties. The unprompted penalty asks the same scorer, for every image and every labelled
// element its prompt leaves out, how much better the prompt with that element added describes the
// image (`CLIPScorer.preferences`): CLIPScore alone barely notices a sun nobody asked for, while
// prompts in the demo world (and users) mean such an element to be absent.

import Diffusion
import Evaluation
import Foundation
import Imaging
import Kernels
import Merging
import Networks

public final class MergeFitness {
    public let setup: EvolveSetup
    /// The pipeline every candidate shares (tokenizer, text encoder, VAE, scheduler).
    public let pipeline: DiffusionModel
    public let scorer: CLIPScorer
    let unetConfig: UNet2DConditionConfig

    /// Loads the shared pipeline and the scorer (once per worker).
    public init(setup: EvolveSetup) throws {
        self.setup = setup
        let vae = setup.vaeSource.map { URL(fileURLWithPath: $0).appendingPathComponent("vae") }
        pipeline = try DiffusionModel.load(setup.pipelineSource, options: ModelLoadOptions(vae: vae))
        do {
            scorer = try CLIPScorer(folder: URL(fileURLWithPath: setup.scorerPath))
        } catch {
            throw EvolutionError.recipe(path: setup.recipe.path, message: "evolve.fitness.scorer: \(setup.scorerPath): \(error.localizedDescription)")
        }
        unetConfig = try loadConfig(UNet2DConditionConfig.self, from: setup.unetConfigURL)
    }

    /// The UNet of a concrete recipe, merged in memory.
    public func mergedUNet(_ recipe: Recipe) throws -> UNet2DConditionModel {
        let plan = try MergeEngine.plan(recipe, outputPath: nil)
        var tensors: [String: Tensor] = [:]
        let prefix = "unet/"
        for item in plan.items where item.component == "unet" && item.floating {
            var values = try MergeEngine.merged(item, plan: plan)
            roundToStorage(&values, dtype: "\(recipe.dtype)")
            tensors[String(item.name.dropFirst(prefix.count))] = Tensor(shape: item.shape, data: values)
        }
        let store = WeightStore(tensors: tensors, origin: "merge candidate of \(setup.recipe.path)")
        let unet = try UNet2DConditionModel(config: unetConfig, weights: store, configFile: setup.unetConfigURL.path)
        try store.finish()
        return unet
    }

    /// The shared pipeline with a candidate's merged UNet.
    public func candidateModel(_ values: [String: Double]) throws -> DiffusionModel {
        pipeline.replacingUNet(try mergedUNet(try setup.concrete(values)))
    }

    /// The shared pipeline with one input's own UNet (a parent, for comparisons).
    public func parentModel(_ input: String) throws -> DiffusionModel {
        guard let path = setup.initialRecipe.inputs.first(where: { $0.name == input })?.path else {
            throw EvolutionError.invalidParameter("'\(input)' is not an input of \(setup.recipe.path)")
        }
        return pipeline.replacingUNet(try UNet2DConditionModel(folder: URL(fileURLWithPath: path).appendingPathComponent("unet")))
    }

    /// Scores a model on the fitness cases: (fitness, score per "prompt-id/seed").
    public func score(_ model: DiffusionModel,
                      cases: [(prompt: PromptSuite.Prompt, seed: UInt64)]? = nil,
                      each: (ScoredImage) throws -> Void = { _ in }) throws -> (fitness: Double, scores: [String: Double]) {
        let cases = cases ?? setup.cases
        let scored = try scoreCases(model: model, cases: cases, settings: setup.settings, scorer: scorer, each: each)
        var scores: [String: Double] = [:]
        for s in scored { scores["\(s.promptId)/\(s.seed)"] = s.score }
        let mean = scored.map(\.score).reduce(0, +) / Double(max(scored.count, 1))
        let steps = setup.settings.resolved(for: model).steps ?? 0
        var unprompted = 0.0
        if setup.unpromptedPenalty != 0 {
            for (s, c) in zip(scored, cases) { unprompted += try unpromptedBelief(s.image, prompt: c.prompt) }
            unprompted /= Double(max(scored.count, 1))
        }
        return (setup.fitness(meanScore: mean, steps: steps, meanUnprompted: unprompted), scores)
    }

    /// The scorer's mean belief, over the labelled elements the prompt leaves out, that the image shows
    /// the element (0 when the prompt names every labelled element).
    public func unpromptedBelief(_ image: RGB8Image, prompt: PromptSuite.Prompt) throws -> Double {
        let beliefs = try scorer.preferences(image: image, caption: prompt.ja, alternatives: setup.unpromptedCaptions(prompt))
        return beliefs.isEmpty ? 0 : beliefs.reduce(0, +) / Double(beliefs.count)
    }

    /// Evaluates one candidate (what a worker does per request).
    public func evaluate(_ request: CandidateRequest) throws -> CandidateResult {
        let started = Date()
        let (fitness, scores) = try score(try candidateModel(request.parameters))
        return CandidateResult(generation: request.generation, candidate: request.candidate, fitness: fitness,
                               scores: scores, seconds: Date().timeIntervalSince(started))
    }
}

/// Rounds Float32 values to what the recipe's output dtype stores ("F16", "BF16"; anything else: unchanged).
func roundToStorage(_ values: inout [Float], dtype: String) {
    switch dtype {
    case "F16":
        for i in values.indices { values[i] = Float(Float16(values[i])) }
    case "BF16":
        // Round to nearest even on the upper 16 bits (NaN kept as NaN).
        for i in values.indices where values[i].isFinite {
            let bits = values[i].bitPattern
            let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
            values[i] = Float(bitPattern: rounded & 0xFFFF_0000)
        }
    default:
        break
    }
}
