// The evaluation run behind `evomerge eval`: a prompt suite (one split of it) for several models
// against one results store. For each model the (prompt, seed) cases whose row is already stored
// (same model hash, prompt id, seed, resolved sampler settings and scorer: `ImageKey`) are skipped,
// so an interrupted run resumes where it stopped; the rest go through `scoreCases` (the one
// generate + score loop, shared with the evolutionary search's fitness). Each image is written as a
// PNG carrying the AUTOMATIC1111 `parameters` chunk (temporary file + rename), then its row is
// stored in its own transaction, so a crash leaves at worst an image without a row (redone next time),
// never a row without its image.

import Diffusion
import Foundation
import Imaging

/// One model's part of an evaluation: what it is, the settings it ran with, and what the run did.
public struct ModelEvaluation {
    public var name: String
    public var path: String
    public var hash: String
    /// Resolved settings (every field filled), as stored in the `settings` column.
    public var settings: GenerationSettings
    /// (prompt, seed) cases of the suite split.
    public var cases: Int
    /// Cases already in the store when the model's turn came.
    public var alreadyStored: Int
    /// Images generated and stored by this run.
    public var generated: Int
}

/// Progress after each stored image.
public struct EvaluationProgress {
    public var model: String
    public var promptId: String
    public var seed: UInt64
    public var score: Double
    public var seconds: Double
    /// Images of this model stored so far (including earlier runs) and its case count.
    public var done: Int
    public var total: Int
}

public final class Evaluator {
    public let suite: PromptSuite
    public let split: PromptSuite.Split?
    public let store: ResultsStore
    public let scorer: CLIPScorer
    /// The scorer's identity in the store: folder name, weights hash, and "+en" when scoring English text.
    public let scorerID: String
    /// Images go to `imageFolder/<model>-<hash>/`.
    public let imageFolder: URL
    public let useEnglish: Bool
    /// Appended to each PNG's parameters (e.g. ("Version", "evomerge 0.1")).
    public var extraParameters: [(key: String, value: String)] = []

    public init(suite: PromptSuite, split: PromptSuite.Split?, store: ResultsStore, scorer: CLIPScorer,
                imageFolder: URL, useEnglish: Bool = false) throws {
        self.suite = suite
        self.split = split
        self.store = store
        self.scorer = scorer
        self.imageFolder = imageFolder.standardizedFileURL
        self.useEnglish = useEnglish
        self.scorerID = try Self.scorerIdentity(folder: scorer.folder) + (useEnglish ? "+en" : "")
    }

    /// "<folder name>@<short SHA-256 of its .safetensors files>", so another scorer's rows never mix in.
    public static func scorerIdentity(folder: URL) throws -> String {
        let files: [URL]
        do {
            files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
                .filter { $0.pathExtension == "safetensors" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        } catch {
            throw EvaluationError.unreadableFile(path: folder.path, reason: error.localizedDescription)
        }
        guard !files.isEmpty else {
            throw EvaluationError.unreadableFile(path: folder.path, reason: "the scorer folder has no .safetensors weights")
        }
        let name = folder.standardizedFileURL.lastPathComponent
        do {
            return "\(name)@\(try ModelHash.short(files: files))"
        } catch {
            throw EvaluationError.unreadableFile(path: folder.path, reason: error.localizedDescription)
        }
    }

    public var cases: [(prompt: PromptSuite.Prompt, seed: UInt64)] { suite.cases(in: split) }

    /// The key of one case for a model run.
    func key(hash: String, settings: GenerationSettings, promptId: String, seed: UInt64) -> ImageKey {
        ImageKey(modelHash: hash, promptId: promptId, seed: seed, settings: settings.json, scorer: scorerID)
    }

    /// Generates and stores the cases of `model` that are not stored yet, at most `limit` of them.
    /// `settings` are the caller's overrides; the model's defaults fill the rest. `name` and `hash` identify
    /// the model in the store (default: its folder name and the short hash of its UNet files); give them for
    /// a model whose weights are not its files' (a merge candidate built in memory with `replacingUNet`).
    public func evaluate(model: DiffusionModel, name: String? = nil, hash: String? = nil, settings: GenerationSettings,
                         limit: Int? = nil, progress: (EvaluationProgress) -> Void = { _ in }) throws -> ModelEvaluation {
        let resolved = settings.resolved(for: model)
        let hash = try hash ?? ModelHash.short(files: model.identityFiles)
        let name = name ?? model.name
        let all = cases
        let stored = try storedRows(hash: hash, settings: resolved)
        try checkPromptTexts(stored)
        let storedKeys = Set(stored.map { "\($0.promptId)\u{0}\($0.seed)" })
        let missing = all.filter { !storedKeys.contains("\($0.prompt.id)\u{0}\($0.seed)") }
        let todo = Array(missing.prefix(max(0, limit ?? missing.count)))
        var outcome = ModelEvaluation(name: name, path: model.path, hash: hash, settings: resolved, cases: all.count,
                                      alreadyStored: all.count - missing.count, generated: 0)
        guard !todo.isEmpty else { return outcome }

        let folder = imageFolder.appendingPathComponent(Self.fileSafe("\(name)-\(hash)"))
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw EvaluationError.unreadableFile(path: folder.path, reason: "cannot create the image folder: \(error.localizedDescription)")
        }
        let prompts = Dictionary(uniqueKeysWithValues: suite.prompts.map { ($0.id, $0) })
        _ = try scoreCases(model: model, cases: todo, settings: resolved, scorer: scorer, useEnglish: useEnglish) { scored in
            let prompt = prompts[scored.promptId]!
            let file = folder.appendingPathComponent(Self.imageFileName(promptId: scored.promptId, seed: scored.seed, settings: resolved))
            let parameters = GenerationParameters(
                prompt: prompt.ja, steps: resolved.steps!, sampler: Self.displayName(sampler: resolved.sampler!), cfgScale: resolved.cfg!,
                seed: scored.seed, width: resolved.width!, height: resolved.height!, modelHash: hash, model: name,
                extra: [("Prompt id", prompt.id), ("Suite", suite.name), ("Score", String(format: "%.6f", scored.score)),
                        ("Scorer", scorerID)] + extraParameters)
            try writePNG(scored.image, to: file, text: [parameters.pngText])
            let row = ImageResult(model: name, modelHash: hash, suite: suite.name, promptId: prompt.id, prompt: prompt.ja,
                                  tags: prompt.tags, seed: scored.seed, settings: resolved.json, scorer: scorerID,
                                  score: scored.score, seconds: scored.seconds, imagePath: file.path)
            try store.insert(row)
            outcome.generated += 1
            progress(EvaluationProgress(model: name, promptId: prompt.id, seed: scored.seed, score: scored.score,
                                        seconds: scored.seconds, done: outcome.alreadyStored + outcome.generated,
                                        total: all.count))
        }
        return outcome
    }

    /// The stored rows of this suite split for a model hash and resolved settings (scored by this scorer),
    /// in suite order.
    public func storedRows(hash: String, settings: GenerationSettings) throws -> [ImageResult] {
        let json = settings.json
        var byCase: [String: ImageResult] = [:]
        for row in try store.all() where row.modelHash == hash && row.settings == json && row.scorer == scorerID {
            byCase["\(row.promptId)\u{0}\(UInt64(bitPattern: row.seed))"] = row
        }
        return cases.compactMap { byCase["\($0.prompt.id)\u{0}\($0.seed)"] }
    }

    /// A stored row under a prompt id whose text differs from the suite's would be silently reused;
    /// refuse it instead (another suite used the same id in this store).
    func checkPromptTexts(_ rows: [ImageResult]) throws {
        let texts = Dictionary(uniqueKeysWithValues: suite.prompts.map { ($0.id, $0.ja) })
        for row in rows where !row.prompt.isEmpty && texts[row.promptId] != row.prompt {
            throw EvaluationError.store(
                path: store.url.path,
                message: "prompt id '\(row.promptId)' is stored with the text '\(row.prompt)' (suite '\(row.suite)') but suite "
                    + "'\(suite.name)' has '\(texts[row.promptId] ?? "")'; use another --db or rename the prompt id")
        }
    }

    /// "<prompt id>-<seed>-<sampler>-<steps>-cfg<cfg>-<W>x<H>.png": one file per image key (less the scorer).
    static func imageFileName(promptId: String, seed: UInt64, settings s: GenerationSettings) -> String {
        let cfg = s.cfg.map { $0 == $0.rounded() ? String(Int($0)) : String($0) } ?? "-"
        return fileSafe("\(promptId)-\(seed)-\(s.sampler ?? "-")-\(s.steps ?? 0)-cfg\(cfg)-\(s.width ?? 0)x\(s.height ?? 0)") + ".png"
    }

    /// The web UI's sampler names, for the PNG text (as jpgen writes them).
    static func displayName(sampler: String) -> String {
        let names = ["lcm": "LCM", "tcd": "TCD", "euler": "Euler", "euler_a": "Euler a", "dpmpp_2m": "DPM++ 2M",
                     "dpmpp_2m_karras": "DPM++ 2M Karras", "ddim": "DDIM"]
        return names[sampler] ?? sampler
    }

    /// Letters, digits and `-_.` kept (any script); everything else, '/' included, becomes '_'.
    static func fileSafe(_ s: String) -> String {
        let kept = String(s.unicodeScalars.map { c -> Character in
            (CharacterSet.alphanumerics.contains(c) || "-_.".unicodeScalars.contains(c)) ? Character(c) : "_"
        })
        return kept.hasPrefix(".") ? "_" + kept.dropFirst() : kept
    }
}
