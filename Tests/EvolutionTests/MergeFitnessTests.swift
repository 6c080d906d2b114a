// The evolve fitness and setup on the bundled demo models (tiny). The models may be replaced by a newer
// export, so no score is asserted, only structure and determinism.

import Diffusion
import Evaluation
import Foundation
import Imaging
import Merging
import XCTest

@testable import Evolution

final class MergeFitnessTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("evolve-fitness-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("""
            seeds: [3, 4]
            prompts:
              - {id: fuji, ja: 青空の富士、写真風, tags: [fuji, day, photo], split: search}
              - {id: pagoda, ja: 夜の五重塔と月、浮世絵風, tags: [pagoda, night, ukiyoe, moon], split: search}
              - {id: judge, ja: 夕焼けの江ノ島, tags: [enoshima, sunset], split: held-out}
            """.utf8).write(to: folder.appendingPathComponent("suite.yaml"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func model(_ name: String) -> String { Self.root.appendingPathComponent("Models/\(name)").path }

    func recipe(components: String = "components: {text_encoder: copy lcm, vae: copy lcm}", lcm: String? = nil,
                fitness: String = "sampler: lcm, steps: 2, seeds_per_prompt: 1") throws -> EvolveRecipe {
        let text = """
            inputs: {base: \(model("demo-base")), lcm: \(lcm ?? model("demo-lcm")), ukiyoe: \(model("demo-ukiyoe"))}
            method: ties
            base: base
            parameters:
              weight: {lcm: 1.0, ukiyoe: 0.3}
              density: {lcm: 0.9, ukiyoe: 0.5}
            \(components)
            dtype: fp16
            evolve:
              parameters:
                - {path: parameters.weight.ukiyoe, min: 0, max: 1, init: 0.3}
              generations: 1
              fitness: {suite: suite.yaml, scorer: \(model("demo-scorer")), \(fitness)}
            """
        let url = folder.appendingPathComponent("r.yaml")
        try Data(text.utf8).write(to: url)
        return try EvolveRecipe(contentsOf: url)
    }

    func testSetupResolvesPathsSplitAndPipelineSources() throws {
        let setup = try EvolveSetup(recipe: try recipe())
        XCTAssertEqual(setup.suitePath, folder.appendingPathComponent("suite.yaml").standardizedFileURL.path)
        XCTAssertEqual(setup.split, .search)
        XCTAssertEqual(setup.cases.map { "\($0.prompt.id)/\($0.seed)" }, ["fuji/3", "pagoda/3"], "seeds_per_prompt: 1 keeps the first seed")
        XCTAssertEqual(setup.allCases(in: .heldOut).map { "\($0.prompt.id)/\($0.seed)" }, ["judge/3", "judge/4"])
        XCTAssertEqual(setup.pipelineSource, model("demo-lcm"), "text_encoder: copy lcm")
        XCTAssertNil(setup.vaeSource)
        XCTAssertEqual(setup.unetConfigURL.path, model("demo-base") + "/unet/config.json", "the reference input's UNet config")
        XCTAssertEqual(setup.settings, GenerationSettings(sampler: "lcm", steps: 2))

        // Merged text encoder / VAE: accepted when identical in every input (the demo models share them).
        let merged = try EvolveSetup(recipe: try recipe(components: ""))
        XCTAssertEqual(merged.pipelineSource, model("demo-base"), "no copy: the base input")
    }

    func testMergedComponentThatDiffersIsRefused() throws {
        // A copy of demo-lcm whose text encoder differs in its last byte.
        let copy = folder.appendingPathComponent("lcm-copy")
        try FileManager.default.copyItem(atPath: model("demo-lcm"), toPath: copy.path)
        let weights = copy.appendingPathComponent("text_encoder/model.safetensors")
        var data = try Data(contentsOf: weights)
        data[data.count - 1] ^= 0x01
        try data.write(to: weights)
        XCTAssertThrowsError(try EvolveSetup(recipe: try recipe(components: "", lcm: copy.path))) {
            XCTAssertEqual(($0 as? EvolutionError)?.errorDescription,
                           "\(folder.appendingPathComponent("r.yaml").path): components.text_encoder is merged, but the inputs' text_encoder weights differ and evolve rebuilds only the UNet per candidate: set 'components: {text_encoder: copy INPUT}'")
        }
        XCTAssertNoThrow(try EvolveSetup(recipe: try recipe(lcm: copy.path)), "copying the text encoder is fine")
    }

    func testBadFitnessSettingsNameTheKey() throws {
        func message(_ fitness: String) -> String {
            do { _ = try EvolveSetup(recipe: try recipe(fitness: fitness)); return "no error" } catch {
                return (error as? LocalizedError)?.errorDescription ?? "\(error)"
            }
        }
        XCTAssertTrue(message("split: nope").hasSuffix("evolve.fitness.split: unknown split 'nope' (search or held-out)"))
        XCTAssertTrue(message("penalties: {size: 1}").hasSuffix("evolve.fitness.penalties: unknown penalty 'size' (known: steps, unprompted)"))
        XCTAssertTrue(message("penalties: {unprompted: 1}").hasSuffix("evolve.fitness.penalties.unprompted needs evolve.fitness.unprompted_labels (suite tag -> the element's name, e.g. {sun: 太陽})"))
        XCTAssertTrue(message("penalties: {unprompted: 1}, unprompted_labels: {sun: ' '}").hasSuffix("evolve.fitness.unprompted_labels.sun: the label is empty"))
        XCTAssertTrue(message("seeds_per_prompt: 0").hasSuffix("evolve.fitness.seeds_per_prompt must be at least 1, got 0"))
        XCTAssertTrue(message("seeds_per_prompt: 3").hasSuffix(
            "evolve.fitness.seeds_per_prompt is 3, but prompt 'fuji' of \(folder.appendingPathComponent("suite.yaml").standardizedFileURL.path) "
            + "has 2 seed(s) (list more in evolve.fitness.seeds, e.g. seeds: [1, 2, 3])"), message("seeds_per_prompt: 3"))
        XCTAssertTrue(message("seeds: []").hasSuffix("evolve.fitness.seeds is empty (leave it out to use the suite's seeds)"))
        XCTAssertTrue(message("seeds: [5, 6, 5]").hasSuffix("evolve.fitness.seeds: seed 5 is listed twice"))
    }

    func testFitnessSeedsReplaceTheSuitesSeeds() throws {
        let setup = try EvolveSetup(recipe: try recipe(fitness: "sampler: lcm, steps: 2, seeds: [7, 8, 9], seeds_per_prompt: 3"))
        XCTAssertEqual(setup.cases.map { "\($0.prompt.id)/\($0.seed)" }, ["fuji/7", "fuji/8", "fuji/9", "pagoda/7", "pagoda/8", "pagoda/9"])
        XCTAssertEqual(setup.allCases(in: .heldOut).map { "\($0.prompt.id)/\($0.seed)" }, ["judge/7", "judge/8", "judge/9"])
    }

    func testCandidateIsTheModelThatMergeWritesAndFitnessIsDeterministic() throws {
        let fitness = try MergeFitness(setup: try EvolveSetup(recipe: try recipe()))
        let request = CandidateRequest(generation: 1, candidate: 2, parameters: ["parameters.weight.ukiyoe": 0.6])
        let first = try fitness.evaluate(request)
        let second = try fitness.evaluate(request)
        XCTAssertEqual(first.generation, 1)
        XCTAssertEqual(first.candidate, 2)
        XCTAssertEqual(first.fitness, second.fitness, "bit-identical on a repeat")
        XCTAssertEqual(first.scores, second.scores)
        XCTAssertEqual(Set(first.scores.keys), ["fuji/3", "pagoda/3"])
        XCTAssertEqual(first.fitness, first.scores.values.reduce(0, +) / 2, accuracy: 1e-12, "mean over prompts and seeds")

        // The same values merged to disk by the engine and loaded back score the same (fp16 rounding included).
        let output = folder.appendingPathComponent("merged").path
        let text = try EvolveOutputs.bestRecipe(setup: fitness.setup, values: request.parameters, output: output, comment: "test")
        let recipeURL = folder.appendingPathComponent("best.yaml")
        try Data(text.utf8).write(to: recipeURL)
        XCTAssertEqual(try EvolveOutputs.merge(recipeAt: recipeURL), output)
        let loaded = try DiffusionModel.load(output)
        let written = fitness.pipeline.replacingUNet(loaded.unet)
        XCTAssertEqual(try fitness.score(written).scores, first.scores)
        // ... and the folder samples as the candidates did: demo-lcm's LCM scheduler, not demo-base's DDIM.
        XCTAssertEqual(loaded.scheduler.className, "LCMScheduler")
        XCTAssertEqual(loaded.samplingDefaults, fitness.pipeline.samplingDefaults)

        // A different candidate gives a different model.
        let other = try fitness.evaluate(CandidateRequest(generation: 1, candidate: 3, parameters: ["parameters.weight.ukiyoe": 0.0]))
        XCTAssertNotEqual(other.scores, first.scores)
    }

    func testUnpromptedPenaltyIsTheScorersBeliefInElementsThePromptLeavesOut() throws {
        // A label may name a tag that no prompt asks for (the suite never asks for the sun): always unprompted.
        let labels = "unprompted_labels: {moon: 月, fuji: 富士山, sun: 太陽}"
        let setup = try EvolveSetup(recipe: try recipe(fitness: "sampler: lcm, steps: 2, seeds_per_prompt: 1, penalties: {unprompted: 0.5}, \(labels)"))
        XCTAssertEqual(setup.unpromptedCaptions(setup.cases[0].prompt), ["青空の富士、写真風、月", "青空の富士、写真風、太陽"])
        XCTAssertEqual(setup.unpromptedCaptions(setup.cases[1].prompt), ["夜の五重塔と月、浮世絵風、富士山", "夜の五重塔と月、浮世絵風、太陽"])
        let fitness = try MergeFitness(setup: setup)
        var images: [RGB8Image] = []
        let (value, scores) = try fitness.score(try fitness.candidateModel(["parameters.weight.ukiyoe": 0.3])) { images.append($0.image) }
        XCTAssertEqual(images.count, 2)

        // The same belief through zero-shot classification between the prompt and each longer caption
        // (to 1e-6: the captions are embedded in batches of another size, so Float sums round differently).
        var beliefs: [Double] = []
        for (image, c) in zip(images, setup.cases) {
            let each = try setup.unpromptedCaptions(c.prompt).map { try fitness.scorer.classify(image, labels: [c.prompt.ja, $0]).probabilities[1] }
            beliefs.append(each.reduce(0, +) / Double(each.count))
            XCTAssertEqual(try fitness.unpromptedBelief(image, prompt: c.prompt), beliefs.last!, accuracy: 1e-6)
        }
        let meanScore = scores.values.reduce(0, +) / 2
        XCTAssertEqual(value, meanScore - 0.5 * (beliefs[0] + beliefs[1]) / 2, accuracy: 1e-6)
        XCTAssertTrue(beliefs.allSatisfy { $0 > 0 && $0 < 1 })

        // The penalty's weight scales it; without the penalty the fitness is the mean score.
        let plain = try MergeFitness(setup: try EvolveSetup(recipe: try recipe(fitness: "sampler: lcm, steps: 2, seeds_per_prompt: 1, \(labels)")))
        XCTAssertEqual(try plain.score(try plain.candidateModel(["parameters.weight.ukiyoe": 0.3])).fitness, meanScore, accuracy: 1e-12)
    }

    func testBestRecipeIsAPlainRecipeWithAbsolutePaths() throws {
        let setup = try EvolveSetup(recipe: try recipe())
        let text = try EvolveOutputs.bestRecipe(setup: setup, values: ["parameters.weight.ukiyoe": 0.25], output: "/tmp/out",
                                                comment: "line one\nline two")
        XCTAssertTrue(text.hasPrefix("# line one\n# line two\n"), text)
        let parsed = try Recipe(yaml: text, path: "best.yaml", relativeTo: URL(fileURLWithPath: "/nonexistent"))
        XCTAssertEqual(parsed.inputs.map(\.path), [model("demo-base"), model("demo-lcm"), model("demo-ukiyoe")])
        XCTAssertEqual(try parsed.parameter("weight", input: "ukiyoe", tensor: "unet/conv_in.weight", fallback: 0), 0.25)
        XCTAssertEqual(parsed.output, "/tmp/out")
        XCTAssertEqual(parsed.components["scheduler"], .copy("lcm"), "the candidates' scheduler")
        XCTAssertFalse(text.contains("evolve"))
    }

    func testTokenizerOrSchedulerFromAnotherInputThanTheTextEncoderIsRefused() throws {
        XCTAssertThrowsError(try EvolveSetup(recipe: try recipe(components: "components: {text_encoder: copy lcm, scheduler: copy base}"))) {
            XCTAssertEqual(($0 as? EvolutionError)?.errorDescription,
                           "\(folder.appendingPathComponent("r.yaml").path): components.scheduler is copied from 'base', but evolve's candidates take the tokenizer and scheduler with the text encoder, from 'lcm'")
        }
        XCTAssertNoThrow(try EvolveSetup(recipe: try recipe(components: "components: {text_encoder: copy lcm, scheduler: copy lcm}")))
    }

    func testWorkerLoopAnswersOneLinePerRequest() throws {
        var lines = [
            #"{"generation":1,"candidate":0,"parameters":{"w":0.25}}"#, "",
            #"{"generation":1,"candidate":1,"parameters":{"w":0.5}}"#,
        ]
        var written: [String] = []
        let answered = try WorkerLoop.run(readLine: { lines.isEmpty ? nil : lines.removeFirst() }, write: { written.append($0) }) {
            CandidateResult(generation: $0.generation, candidate: $0.candidate, fitness: $0.parameters["w"]!, scores: ["p/1": 1], seconds: 0)
        }
        XCTAssertEqual(answered, 2)
        let results = try written.map { try JSONDecoder().decode(CandidateResult.self, from: Data($0.utf8)) }
        XCTAssertEqual(results.map(\.fitness), [0.25, 0.5])
        XCTAssertFalse(written.contains { $0.contains("\n") })

        var bad = ["not json"]
        XCTAssertThrowsError(try WorkerLoop.run(readLine: { bad.isEmpty ? nil : bad.removeFirst() }, write: { _ in }) { _ in
            XCTFail("no request")
            throw EvolutionError.tellWithoutAsk
        }) {
            XCTAssertEqual($0 as? EvolutionError, .invalidParameter("worker: a request line is not a candidate request: not json"))
        }
    }

    func testPairedComparison() {
        func row(_ model: String, _ prompt: String, _ score: Double) -> ImageResult {
            ImageResult(model: model, modelHash: "h-" + model, suite: "s", promptId: prompt, prompt: prompt, tags: [], seed: 1,
                        settings: "{}", scorer: "c", score: score, seconds: 0, imagePath: "")
        }
        // "a" is 0.1 below "evolved" on every case (a sure win); "b" is above on one, below on another.
        let rows = [row("a", "p", 0.5), row("evolved", "p", 0.6), row("a", "q", 0.7), row("evolved", "q", 0.8),
                    row("a", "r", 0.2), row("evolved", "r", 0.3), row("b", "p", 0.9), row("b", "q", 0.1)]
        let c = PairedComparison.compare(rows)
        XCTAssertEqual(c.map(\.model), ["evolved", "a", "b"])
        XCTAssertEqual(c[0].n, 3)
        XCTAssertEqual(c[0].mean, (0.6 + 0.8 + 0.3) / 3, accuracy: 1e-12)
        XCTAssertNil(c[0].difference)
        XCTAssertEqual(c[1].difference!, 0.1, accuracy: 1e-12)
        XCTAssertEqual(c[1].differenceCI95!, 0, accuracy: 1e-9)
        XCTAssertEqual(c[1].evolvedBeats, true)
        XCTAssertEqual(c[2].difference!, ((0.6 - 0.9) + (0.8 - 0.1)) / 2, accuracy: 1e-12, "paired on p and q only")
        XCTAssertEqual(c[2].evolvedBeats, false)
        XCTAssertTrue(PairedComparison.markdown(c).contains("| a | 3 | 0.4667 | "), PairedComparison.markdown(c))
    }

    func testStorageRounding() {
        var values: [Float] = [1.0 / 3.0, 65504, 1e-8, -2.5, 70000]
        roundToStorage(&values, dtype: "F16")
        XCTAssertEqual(values[0], Float(Float16(1.0 / 3.0)))
        XCTAssertEqual(values[1], 65504)
        XCTAssertEqual(values[3], -2.5)
        XCTAssertEqual(values[4], .infinity, "beyond the f16 range")
        var bf: [Float] = [1.0 / 3.0, 1 + 1.0 / 256, 1 + 3.0 / 256]
        roundToStorage(&bf, dtype: "BF16")
        XCTAssertEqual(bf[0], Float(bitPattern: 0x3EAB_0000), "0x3EAAAAAB rounds up")
        XCTAssertEqual(bf[1], 1, "a tie rounds to even (down)")
        XCTAssertEqual(bf[2], 1 + 4.0 / 256, "a tie rounds to even (up)")
        var f32: [Float] = [1.0 / 3.0]
        roundToStorage(&f32, dtype: "F32")
        XCTAssertEqual(f32[0], 1.0 / 3.0)
    }
}
