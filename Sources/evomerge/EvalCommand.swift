// evomerge eval --model M [--model M2 ...] --suite S.yaml [--db results.sqlite] [--out DIR]: generates every
// (prompt, seed) image of a prompt suite for each model with the model's default (or the given) sampler
// settings, CLIPScores it, and stores one row per image (Evaluation's Evaluator over a ResultsStore).
// Rows already stored are not redone, so an interrupted evaluation resumes where it stopped. Prints a
// table (per model: mean score with its 95% confidence interval, per tag, seconds per image) or, with
// --json, one object. The scorer defaults to the bundled demo scorer when every model is a demo model.

import ArgumentParser
import Diffusion
import Evaluation
import Foundation
import Kernels

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Generate and CLIP-score a prompt suite for one or more models; one row per image in a results store.")

    @Option(help: "A diffusers pipeline folder (repeatable: each model is evaluated on the same cases).")
    var model: [String] = []

    @Option(help: "A prompt suite (YAML, e.g. Examples/prompts/demo-world.yaml).")
    var suite: String

    @Option(help: "The results store (SQLite); rows already there are not redone.")
    var db: String = "results.sqlite"

    @Option(help: "Folder for the images (default: images/ beside the store).")
    var out: String?

    @Option(help: "Only the prompts of this split: search or held-out (default: every prompt).")
    var split: String?

    @Option(help: "Seeds for every prompt, comma-separated (e.g. 1,2,3,4; default: the suite's and prompts' own).")
    var seeds: String?

    @Option(help: "A CLIP-style scorer folder (default for demo models: $JPGEN_SCORER, else the bundled Models/demo-scorer).")
    var scorer: String?

    @Flag(help: "Score against the prompts' English text (when they have one) instead of the Japanese.")
    var english = false

    @Option(help: "Sampler: \(samplerNames.joined(separator: ", ")) (default: each model's scheduler).")
    var sampler: String?

    @Option(help: "Denoising steps (default: each model's).")
    var steps: Int?

    @Option(help: "Classifier-free guidance scale (default: each model's).")
    var cfg: Float?

    @Option(help: "Image width in pixels (default: each model's).")
    var width: Int?

    @Option(help: "Image height in pixels (default: each model's).")
    var height: Int?

    @Option(help: "Generate at most this many new images in this run, then stop (run again to go on).")
    var limit: Int?

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    func validate() throws {
        if model.isEmpty { throw ValidationError("give at least one --model") }
        if let duplicate = Dictionary(grouping: model, by: { URL(fileURLWithPath: $0).standardizedFileURL.path })
            .first(where: { $0.value.count > 1 }) {
            throw ValidationError("--model \(duplicate.value[0]) is given \(duplicate.value.count) times")
        }
        if let split, PromptSuite.Split(rawValue: split) == nil {
            throw ValidationError("unknown --split \"\(split)\"; valid: search, held-out")
        }
        if let sampler, !samplerNames.contains(sampler) {
            throw ValidationError("unknown sampler \"\(sampler)\"; valid: \(samplerNames.joined(separator: ", "))")
        }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        if let cfg, !(cfg.isFinite && cfg >= 0) { throw ValidationError("--cfg must be a number >= 0 (got \(cfg))") }
        if let width, width <= 0 { throw ValidationError("--width must be positive") }
        if let height, height <= 0 { throw ValidationError("--height must be positive") }
        if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        _ = try seedList()
    }

    /// --seeds as numbers.
    func seedList() throws -> [UInt64]? {
        try seeds.map { try parseSeedList($0, option: "--seeds") }
    }

    func run() throws {
        if let threads { setThreadCount(threads) }
        // Everything that can be checked is checked before the store is created or opened.
        var promptSuite = try PromptSuite(contentsOf: URL(fileURLWithPath: suite))
        if let seeds = try seedList() {
            for i in promptSuite.prompts.indices { promptSuite.prompts[i].seeds = seeds }
        }
        for path in model { try checkModelFolder(path) }
        let scorerPath = try scorer ?? defaultScorerPath(models: model)
        let clip: CLIPScorer
        do {
            clip = try CLIPScorer(folder: URL(fileURLWithPath: scorerPath))
        } catch {
            throw EvaluationError.unreadableFile(path: scorerPath, reason: "not a usable scorer: \(error.localizedDescription)")
        }
        let dbURL = URL(fileURLWithPath: db).standardizedFileURL
        let imageFolder = out.map { URL(fileURLWithPath: $0) } ?? dbURL.deletingLastPathComponent().appendingPathComponent("images")
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: imageFolder.path, isDirectory: &isDir), !isDir.boolValue {
            throw ValidationError("--out \(imageFolder.path) is a file, not a folder")
        }
        let store = try ResultsStore(url: dbURL)
        let evaluator = try Evaluator(suite: promptSuite, split: split.flatMap(PromptSuite.Split.init(rawValue:)), store: store,
                                      scorer: clip, imageFolder: imageFolder, useEnglish: english)
        evaluator.extraParameters = [("Version", "evomerge \(jpgenVersion)")]
        let overrides = GenerationSettings(sampler: sampler, steps: steps, cfg: cfg, width: width, height: height)

        var budget = limit
        var outcomes: [ModelEvaluation] = []
        for path in model {
            let diffusion = try DiffusionModel.load(path)
            if threads == nil { setThreadCount(diffusion.preferredThreadCount ?? ProcessInfo.processInfo.activeProcessorCount) }
            let outcome = try evaluator.evaluate(model: diffusion, settings: overrides, limit: budget) { p in
                guard !quiet else { return }
                let line = "[\(p.model) \(p.done)/\(p.total)] \(p.promptId) seed \(p.seed)  score "
                    + String(format: "%.4f  %.2f s\n", p.score, p.seconds)
                FileHandle.standardError.write(Data(line.utf8))
            }
            budget = budget.map { $0 - outcome.generated }
            outcomes.append(outcome)
        }

        let results = try outcomes.map { outcome -> EvalModelResult in
            let rows = try evaluator.storedRows(hash: outcome.hash, settings: outcome.settings).map { row -> ImageResult in
                var row = row
                row.model = outcome.name
                return row
            }
            return EvalModelResult(outcome: outcome, summary: summarize(rows).first)
        }
        let report = EvalReport(suite: promptSuite.name, split: split, db: dbURL.path, images: imageFolder.standardizedFileURL.path,
                                scorer: evaluator.scorerID, cases: evaluator.cases.count,
                                generated: outcomes.map(\.generated).reduce(0, +),
                                complete: results.allSatisfy { $0.n == $0.cases }, models: results)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.table)
        }
    }

    /// A missing model fails before anything is written.
    func checkModelFolder(_ path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw PipelineError.modelNotFound(path: path) }
        guard isDir.boolValue, FileManager.default.fileExists(atPath: path + "/model_index.json") else {
            throw PipelineError.missingPart(model: path, part: "model_index.json", reason: "not a diffusers pipeline folder")
        }
    }
}

/// One model's line of the output.
struct EvalModelResult: Encodable {
    let name: String
    let path: String
    let hash: String
    let settings: GenerationSettings
    let cases: Int
    let n: Int
    let generated: Int
    let mean: Double?
    let ci95: Double?
    let secondsPerImage: Double?
    let perTag: [String: ScoreSummary]
    /// For the table; nil when no image of the model is stored yet.
    let summary: ModelSummary?

    init(outcome: ModelEvaluation, summary: ModelSummary?) {
        name = outcome.name
        path = outcome.path
        hash = outcome.hash
        settings = outcome.settings
        cases = outcome.cases
        generated = outcome.generated
        n = summary?.n ?? 0
        mean = summary?.mean
        ci95 = summary?.ci95
        secondsPerImage = summary?.secondsPerImage
        perTag = summary?.perTag ?? [:]
        self.summary = summary
    }

    enum CodingKeys: String, CodingKey {
        case name, path, hash, settings, cases, n, generated, mean, ci95
        case secondsPerImage = "seconds_per_image"
        case perTag = "per_tag"
    }

    /// Absent values (a model with no stored image yet) are written as null, not left out.
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(path, forKey: .path)
        try c.encode(hash, forKey: .hash)
        try c.encode(settings, forKey: .settings)
        try c.encode(cases, forKey: .cases)
        try c.encode(n, forKey: .n)
        try c.encode(generated, forKey: .generated)
        try c.encode(mean, forKey: .mean)
        try c.encode(ci95, forKey: .ci95)
        try c.encode(secondsPerImage, forKey: .secondsPerImage)
        try c.encode(perTag, forKey: .perTag)
    }
}

struct EvalReport: Encodable {
    let suite: String
    let split: String?
    let db: String
    let images: String
    let scorer: String
    /// (prompt, seed) cases per model.
    let cases: Int
    /// Images generated by this run.
    let generated: Int
    /// Every model has every case stored.
    let complete: Bool
    let models: [EvalModelResult]

    func encode(to encoder: Encoder) throws {
        enum Keys: String, CodingKey { case suite, split, db, images, scorer, cases, generated, complete, models }
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(suite, forKey: .suite)
        try c.encode(split, forKey: .split)
        try c.encode(db, forKey: .db)
        try c.encode(images, forKey: .images)
        try c.encode(scorer, forKey: .scorer)
        try c.encode(cases, forKey: .cases)
        try c.encode(generated, forKey: .generated)
        try c.encode(complete, forKey: .complete)
        try c.encode(models, forKey: .models)
    }

    var table: String {
        var lines = ["suite \(suite)\(split.map { " (split \($0))" } ?? ""): \(cases) images per model, \(models.count) model(s), "
                     + "scorer \(scorer); \(generated) generated in this run; store \(db)", ""]
        lines.append(formatSummaryTable(models.compactMap(\.summary)))
        lines.append("")
        for m in models {
            let s = m.settings
            var line = "\(m.name): \(s.sampler ?? "?"), \(s.steps ?? 0) steps, cfg \(s.cfg.map { $0 == $0.rounded() ? String(Int($0)) : String($0) } ?? "?"), "
                + "\(s.width ?? 0)x\(s.height ?? 0); \(m.n)/\(m.cases) images stored"
            if m.n < m.cases { line += " (run again to finish)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

/// The bundled demo scorer when every model is a demo model: $JPGEN_SCORER, else `demo-scorer` beside the
/// first model, else Models/demo-scorer found from the executable's folder upwards or the working directory upwards.
func defaultScorerPath(models: [String]) throws -> String {
    let notDemo = models.filter { !isDemoModel($0) }
    guard notDemo.isEmpty else {
        throw ValidationError("--scorer is required: \(notDemo.joined(separator: ", ")) is not a demo model "
                              + "(the bundled demo scorer only knows the demo world)")
    }
    if let env = ProcessInfo.processInfo.environment["JPGEN_SCORER"], !env.isEmpty { return env }
    func isScorer(_ url: URL) -> Bool { FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) }
    let sibling = URL(fileURLWithPath: models[0]).standardizedFileURL.deletingLastPathComponent().appendingPathComponent("demo-scorer")
    if isScorer(sibling) { return sibling.path }
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for start in [executable, URL(fileURLWithPath: FileManager.default.currentDirectoryPath)] {
        var dir = start.standardizedFileURL
        for _ in 0..<8 {
            let candidate = dir.appendingPathComponent("Models/demo-scorer")
            if isScorer(candidate) { return candidate.path }
            dir.deleteLastPathComponent()
        }
    }
    throw ValidationError("no --scorer given and the bundled demo scorer (Models/demo-scorer) was not found; "
                          + "run from the repository, set JPGEN_SCORER or give --scorer")
}

/// A model of the demo world: its folder is named demo-*, or its text encoder is the demo world's own
/// class (model_index.json `text_encoder: ["jpgen", ...]`, kept by merges of demo models).
func isDemoModel(_ path: String) -> Bool {
    let folder = URL(fileURLWithPath: path).standardizedFileURL
    if folder.lastPathComponent.hasPrefix("demo-") { return true }
    guard let data = try? Data(contentsOf: folder.appendingPathComponent("model_index.json")),
          let index = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let encoder = index["text_encoder"] as? [Any] else { return false }
    return encoder.first as? String == "jpgen"
}
