// `jpbench text-encoder`: seconds per forward pass of full-size text encoders with random weights
// (CLIP-L text 123M, BERT-base, XLM-R-large) at 77 tokens, one JSON line per model.
// Tools/bench_text_encoder.py times transformers on the same configs and prints the ratios.

import ArgumentParser
import Dispatch
import Foundation
import Kernels
import Networks

struct TextEncoderBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "text-encoder",
        abstract: "Time full-size random-weight text encoders (CLIP-L, BERT-base, XLM-R-large) per forward pass.")

    @Option(name: .long, parsing: .upToNextOption, help: "Models: clip-l, bert-base, xlmr-large.")
    var models: [String] = ["clip-l", "bert-base", "xlmr-large"]

    @Option(help: "Tokens per sequence.")
    var tokens: Int = 77

    @Option(help: "Sequences per batch.")
    var batch: Int = 1

    @Option(name: .shortAndLong, help: "Timed forward passes per model (after one warm-up).")
    var repetitions: Int = 2

    @Option(name: .shortAndLong, help: "Threads for OpenBLAS and Kernels' parallel loops (default: all cores).")
    var threads: Int?

    static let known = ["clip-l", "bert-base", "xlmr-large"]

    func validate() throws {
        for m in models where !Self.known.contains(m) {
            throw ValidationError("unknown model '\(m)'; known: \(Self.known.joined(separator: ", "))")
        }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        guard tokens >= 1, tokens <= 77 else { throw ValidationError("--tokens must be in 1...77, got \(tokens)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func run() throws {
        if let threads { setThreadCount(threads) } else { setThreadCount(kernelThreadCount) }
        for name in models {
            let (encoder, parameters) = try Self.randomModel(name)
            // ids: [batch, tokens], away from special ids; no padding (every position is work).
            let ids = (0..<batch).map { b in (0..<tokens).map { 5 + (b * 31 + $0 * 17) % 1000 } }
            var failure: Error?
            let time = Self.bestAndMedian(repetitions) {
                do { _ = try encoder(ids: ids) } catch { failure = error }
            }
            if let failure { throw failure }
            printJSONLine([
                ("bench", "text-encoder"), ("model", name), ("parameters", parameters), ("tokens", tokens),
                ("batch", batch), ("threads", kernelThreadCount), ("repetitions", repetitions),
                ("seconds", time.best), ("median_seconds", time.median),
            ])
        }
    }

    /// Best and median wall-clock seconds of `repetitions` runs after one warm-up run.
    static func bestAndMedian(_ repetitions: Int, _ body: () -> Void) -> (best: Double, median: Double) {
        body()
        var times: [Double] = []
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        times.sort()
        return (times[0], times[times.count / 2])
    }

    /// The benchmark configurations (as in Tools/bench_text_encoder.py).
    static func randomModel(_ name: String) throws -> (TextEncoder, Int) {
        switch name {
        case "clip-l":   // openai/clip-vit-large-patch14 text tower (SD1's text encoder)
            let config = CLIPTextConfig.clipL
            let store = randomStore(config.parameterShapes())
            let model = try CLIPTextModel(config: config, weights: store)
            try store.finish()
            return (TextEncoder(architecture: "CLIPTextModel", body: .clip(model), head: nil), store.parameterCount)
        case "bert-base":   // bert-base-uncased sizes
            let config = BERTConfig(vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12,
                                    intermediateSize: 3072)
            return try bert(config)
        default:   // xlm-roberta-large sizes
            let config = BERTConfig(vocabSize: 250002, hiddenSize: 1024, numHiddenLayers: 24, numAttentionHeads: 16,
                                    intermediateSize: 4096, maxPositionEmbeddings: 514, typeVocabSize: 1,
                                    layerNormEps: 1e-5, padTokenId: 1, modelType: "xlm-roberta")
            return try bert(config)
        }
    }

    static func bert(_ config: BERTConfig) throws -> (TextEncoder, Int) {
        let store = randomStore(config.parameterShapes())
        let model = try BERTModel(config: config, weights: store)
        try store.finish()
        return (TextEncoder(architecture: "BertModel", body: .bert(model), head: nil), store.parameterCount)
    }

    /// Uniform weights of scale 0.02 (layer-norm scales 1), seeded by position in the sorted names.
    static func randomStore(_ shapes: [String: [Int]]) -> WeightStore {
        var tensors: [String: Tensor] = [:]
        for (i, name) in shapes.keys.sorted().enumerated() {
            let shape = shapes[name]!
            if name.hasSuffix("norm.weight") || name.hasSuffix("LayerNorm.weight")
                || name.contains("layer_norm") && name.hasSuffix(".weight") {
                tensors[name] = Tensor(shape: shape, repeating: 1)
            } else {
                tensors[name] = benchTensor(shape, seed: UInt64(i + 1)) * 0.02
            }
        }
        return WeightStore(tensors: tensors, origin: "random")
    }
}

extension WeightStore {
    /// Elements in all tensors of the store.
    var parameterCount: Int { names.reduce(0) { $0 + (shape(of: $1)?.reduce(1, *) ?? 0) } }
}
