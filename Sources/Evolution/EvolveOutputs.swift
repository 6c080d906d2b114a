// What an evolve run leaves in its folder besides the trial store:
//   best-recipe.yaml   the best candidate as a plain recipe (`evomerge merge` accepts it; paths absolute)
//   best-merged/       that recipe's merged checkpoint, written by the streaming merge engine
//   results.sqlite     an evaluation store (Evaluation's ResultsStore) holding the images and scores of the
//                      best merge, every parent and the uniform average on one split of the suite, so that
//                      `evomerge report` draws the contact sheet of best vs parents
//   images/            those images, one folder per model
// Every file is written to a temporary name and renamed; rerunning skips the images already stored.

import Diffusion
import Evaluation
import Foundation
import Imaging
import Merging
import Yams

public enum EvolveOutputs {
    /// The concrete recipe of `values` as YAML, with input, LoRA and output paths made absolute (the
    /// file lives in the run folder, not beside the original recipe), under a comment saying where it
    /// came from.
    public static func bestRecipe(setup: EvolveSetup, values: [String: Double], output: String, comment: String) throws -> String {
        let resolved = try setup.concrete(values)
        guard let node = try Yams.compose(yaml: try setup.recipe.concreteRecipe(values)), case .mapping(var root) = node else {
            throw EvolutionError.recipe(path: setup.recipe.path, message: "the concrete recipe is not a mapping")
        }
        var inputs = Node.Mapping([])
        for (name, path) in resolved.inputs { inputs[Node(name)] = Node(URL(fileURLWithPath: path).standardizedFileURL.path) }
        root["inputs"] = .mapping(inputs)
        if !resolved.loras.isEmpty, case .sequence(var list)? = root["loras"] {
            for (i, lora) in resolved.loras.enumerated() where i < list.count {
                let path = Node(URL(fileURLWithPath: lora.path).standardizedFileURL.path)
                if case .mapping(var item) = list[i] {
                    item["path"] = path
                    list[i] = .mapping(item)
                } else {
                    list[i] = path
                }
            }
            root["loras"] = .sequence(list)
        }
        // The candidates were sampled with the scheduler of the text encoder's input: the merged folder
        // gets it too (else it would take the reference input's, and with it other sampling defaults).
        var components = root["components"]?.mapping ?? Node.Mapping([])
        if components["scheduler"] == nil {
            components["scheduler"] = Node("copy \(setup.pipelineInput)")
            root["components"] = .mapping(components)
        }
        root["output"] = Node(output)
        let text = try Yams.serialize(node: .mapping(root), allowUnicode: true)
        let header = comment.split(separator: "\n").map { "# " + $0 }.joined(separator: "\n")
        return header + "\n" + text
    }

    /// Writes `text` to a temporary file beside `url` and renames it onto `url` (POSIX rename replaces an
    /// existing file atomically; Foundation's replaceItemAt fails on Linux when the target exists).
    public static func write(_ text: String, to url: URL) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        do {
            try Data(text.utf8).write(to: temporary)
        } catch {
            throw EvolutionError.store(path: url.path, message: "cannot write: \(error.localizedDescription)")
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw EvolutionError.store(path: url.path, message: "cannot write: \(reason)")
        }
    }

    /// Merges a recipe file's checkpoint with the streaming engine; returns the output path.
    @discardableResult
    public static func merge(recipeAt url: URL) throws -> String {
        let recipe = try Recipe(contentsOf: url)
        guard let output = recipe.output else {
            throw EvolutionError.recipe(path: url.path, message: "the best recipe has no output")
        }
        let plan = try MergeEngine.plan(recipe, outputPath: output)
        // A merge left by an earlier (resumed) run is replaced: removed first, as Foundation cannot
        // replace a folder in place on Linux.
        if FileManager.default.fileExists(atPath: output) { try FileManager.default.removeItem(atPath: output) }
        try MergeEngine.run(plan, to: output)
        return output
    }

    /// One model of the comparison: its name in the report, its identity hash and the pipeline.
    public struct Contender {
        public var name: String
        public var hash: String
        public var model: DiffusionModel

        public init(name: String, hash: String, model: DiffusionModel) {
            self.name = name
            self.hash = hash
            self.model = model
        }
    }

    /// The best merge (from its written checkpoint's UNet), every input, and the uniform linear average
    /// of the inputs' UNets, all in the fitness pipeline.
    public static func contenders(fitness: MergeFitness, bestValues: [String: Double], mergedFolder: String) throws -> [Contender] {
        let setup = fitness.setup
        let bestUNet = URL(fileURLWithPath: mergedFolder).appendingPathComponent("unet")
        var out = [Contender(name: "evolved", hash: try ModelHash.full(files: try unetFiles(bestUNet)),
                             model: fitness.pipeline.replacingUNet(try fitness.mergedUNet(try setup.concrete(bestValues))))]
        for (name, path) in setup.initialRecipe.inputs {
            let files = try unetFiles(URL(fileURLWithPath: path).appendingPathComponent("unet"))
            out.append(Contender(name: name, hash: try ModelHash.full(files: files), model: try fitness.parentModel(name)))
        }
        // Uniform average: linear, weight 1/n each, in the recipe's dtype.
        guard setup.initialRecipe.inputs.count >= 2 else { return out }
        var lines = ["inputs:"] + setup.initialRecipe.inputs.map { "  \($0.name): \(quoted($0.path))" }
        lines += ["method: linear", "dtype: \(dtypeWord(setup.initialRecipe.dtype.rawValue))"]
        let uniformText = lines.joined(separator: "\n") + "\n"
        let uniform = try Recipe(yaml: uniformText, path: "<uniform average>")
        var hasher = SHA256Hasher()
        for path in setup.initialRecipe.inputs.map(\.path) {
            let files = try unetFiles(URL(fileURLWithPath: path).appendingPathComponent("unet"))
            Data(try ModelHash.full(files: files).utf8).withUnsafeBytes { hasher.update($0) }
        }
        Data(uniformText.utf8).withUnsafeBytes { hasher.update($0) }
        out.append(Contender(name: "uniform-average", hash: hasher.finalize(),
                             model: fitness.pipeline.replacingUNet(try fitness.mergedUNet(uniform))))
        return out
    }

    /// Generates and scores every contender on `cases` (skipping images already in the store), saving
    /// each image under `images/<model>/` and one row per image in `store`.
    public static func compare(_ contenders: [Contender], cases: [(prompt: PromptSuite.Prompt, seed: UInt64)],
                               fitness: MergeFitness, store: ResultsStore, imagesFolder: URL,
                               progress: (String, Int, Int) -> Void = { _, _, _ in }) throws {
        let setup = fitness.setup
        let known = try store.keys()
        let scorerName = try Evaluator.scorerIdentity(folder: URL(fileURLWithPath: setup.scorerPath))
        for contender in contenders {
            let settings = setup.settings.resolved(for: contender.model)
            let settingsJSON = settings.json
            let missing = cases.filter {
                !known.contains(ImageKey(modelHash: contender.hash, promptId: $0.prompt.id, seed: $0.seed,
                                         settings: settingsJSON, scorer: scorerName))
            }
            let folder = imagesFolder.appendingPathComponent(contender.name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            var done = 0
            let prompts = Dictionary(missing.map { ($0.prompt.id, $0.prompt) }, uniquingKeysWith: { a, _ in a })
            _ = try scoreCases(model: contender.model, cases: missing, settings: setup.settings, scorer: fitness.scorer) { image in
                let url = folder.appendingPathComponent("\(image.promptId)-\(image.seed).png")
                let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
                try writePNG(image.image, to: temporary)
                if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
                try FileManager.default.moveItem(at: temporary, to: url)
                let prompt = prompts[image.promptId]!
                try store.insert(ImageResult(
                    model: contender.name, modelHash: contender.hash, suite: setup.suite.name, promptId: image.promptId,
                    prompt: prompt.ja, tags: prompt.tags, seed: image.seed, settings: settingsJSON, scorer: scorerName,
                    score: image.score, seconds: image.seconds, imagePath: url.path))
                done += 1
                progress(contender.name, done, missing.count)
            }
        }
    }

    static func unetFiles(_ folder: URL) throws -> [URL] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".safetensors") && !$0.contains(".fp16.") && !$0.contains(".bf16.") }.sorted()
        guard !names.isEmpty else {
            throw EvolutionError.invalidParameter("\(folder.path) holds no .safetensors weights")
        }
        return names.map { folder.appendingPathComponent($0) }
    }

    static func quoted(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
    }

    static func dtypeWord(_ raw: String) -> String {
        switch raw {
        case "BF16": return "bf16"
        case "F32": return "fp32"
        default: return "fp16"
        }
    }
}
