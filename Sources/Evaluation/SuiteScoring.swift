// Scoring a model on prompt-suite cases: generate each (prompt, seed) image with fixed sampler
// settings, then CLIPScore it against its prompt (Japanese text unless the scorer is told to use
// the English one). Both `evomerge eval` (which stores every row) and the evolutionary search's
// fitness (which averages) go through `scoreCases`, so a candidate is measured exactly as a model is.

import Diffusion
import Foundation
import Imaging

/// Sampler settings of an evaluation; nil fields take the model's defaults.
public struct GenerationSettings: Codable, Equatable, Sendable {
    public var sampler: String?
    public var steps: Int?
    public var cfg: Float?
    public var width: Int?
    public var height: Int?

    public init(sampler: String? = nil, steps: Int? = nil, cfg: Float? = nil, width: Int? = nil, height: Int? = nil) {
        self.sampler = sampler
        self.steps = steps
        self.cfg = cfg
        self.width = width
        self.height = height
    }

    /// Every field filled from the model's defaults.
    public func resolved(for model: DiffusionModel) -> GenerationSettings {
        let d = model.samplingDefaults
        return GenerationSettings(sampler: sampler ?? d.sampler, steps: steps ?? d.steps, cfg: cfg ?? d.guidanceScale,
                                  width: width ?? model.defaultSize, height: height ?? model.defaultSize)
    }

    /// Sorted-key JSON, the `settings` column of the results store.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

/// One scored image.
public struct ScoredImage {
    public var promptId: String
    public var seed: UInt64
    public var image: RGB8Image
    /// CLIPScore = 2.5 * max(cos, 0) (Hessel et al. 2021).
    public var score: Double
    /// Generation seconds for this image (encode + denoise + decode).
    public var seconds: Double
}

/// Generates and scores `cases` in order, calling `each` after every image (for storing rows and progress).
/// `useEnglish`: score against the prompt's English text (when it has one) instead of the Japanese.
public func scoreCases(model: DiffusionModel, cases: [(prompt: PromptSuite.Prompt, seed: UInt64)],
                       settings: GenerationSettings, scorer: CLIPScorer, useEnglish: Bool = false,
                       each: (ScoredImage) throws -> Void = { _ in }) throws -> [ScoredImage] {
    let s = settings.resolved(for: model)
    var results: [ScoredImage] = []
    for (prompt, seed) in cases {
        let request = GenerationRequest(prompt: prompt.ja, sampler: s.sampler!, steps: s.steps!, guidanceScale: s.cfg!,
                                        seed: seed, width: s.width!, height: s.height!)
        let generated = try model.generate(request)
        let text = useEnglish ? (prompt.en ?? prompt.ja) : prompt.ja
        let score = try scorer.clipScores(images: generated.images, texts: [text])[0]
        let t = generated.times
        let scored = ScoredImage(promptId: prompt.id, seed: seed, image: generated.images[0], score: score,
                                 seconds: t.encode + t.denoise + t.decode)
        try each(scored)
        results.append(scored)
    }
    return results
}
