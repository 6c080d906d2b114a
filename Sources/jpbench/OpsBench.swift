// `jpbench ops`: the non-GEMM kernels at SD1.5-like sizes (512x512 image, 64x64 latent), as JSON
// lines: seconds per call and the elements processed per second.

import ArgumentParser
import Kernels

struct OpsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "Time attention, norms, softmax and activations at SD-like shapes; one JSON line per op.")

    @OptionGroup var options: KernelBenchOptions

    @Option(help: "Attention score budget in floats (default: the library's).")
    var attentionBudget: Int?

    @Option(help: "Run only the ops whose name contains this text.")
    var only: String?

    func run() throws {
        let threads = options.applyThreads()
        if let attentionBudget { attentionScoreBudget = attentionBudget }
        let feature = benchTensor([1, 320, 64, 64], seed: 11)            // UNet level-0 feature map
        let tokens = benchTensor([1, 4096, 320], seed: 12)               // the same map as tokens
        let wide = benchTensor([1, 4096, 2560], seed: 13)                // GEGLU input (2 x 1280)
        let context = benchTensor([1, 77, 320], seed: 14)
        let xlTokens = benchTensor([1, 1024, 1280], seed: 18)            // SDXL's 32x32 level as tokens
        let xlContext = benchTensor([1, 77, 1280], seed: 19)             // its text keys and values
        let xlWide = benchTensor([1, 4096, 640], seed: 20)               // SDXL's 64x64 level as tokens
        let gamma = benchTensor([320], seed: 15), beta = benchTensor([320], seed: 16)
        let text = benchTensor([1, 77, 768], seed: 17)
        let cases: [(String, [Int], Double, () -> Void)] = [
            ("self_attention_4096x320_h8", tokens.shape, 4 * 4096 * 4096 * 320, {
                _ = attention(query: tokens, key: tokens, value: tokens, heads: 8) }),
            ("cross_attention_4096x77_h8", tokens.shape, 4 * 4096 * 77 * 320, {
                _ = attention(query: tokens, key: context, value: context, heads: 8) }),
            ("cross_attention_1024x77_h20", xlTokens.shape, 4 * 1024 * 77 * 1280, {
                _ = attention(query: xlTokens, key: xlContext, value: xlContext, heads: 20) }),
            ("self_attention_1024x1280_h20", xlTokens.shape, 4 * 1024 * 1024 * 1280, {
                _ = attention(query: xlTokens, key: xlTokens, value: xlTokens, heads: 20) }),
            ("self_attention_4096x640_h10", xlWide.shape, 4 * 4096 * 4096 * 640, {
                _ = attention(query: xlWide, key: xlWide, value: xlWide, heads: 10) }),
            ("clip_text_attention_77x768_h12", text.shape, 4 * 77 * 77 * 768, {
                _ = attention(query: text, key: text, value: text, heads: 12) }),
            ("group_norm_32", feature.shape, 0, { _ = groupNorm(feature, groups: 32, weight: gamma, bias: beta, eps: 1e-5) }),
            ("layer_norm", tokens.shape, 0, { _ = layerNorm(tokens, weight: gamma, bias: beta, eps: 1e-5) }),
            ("softmax_rows_4096", [2560, 4096], 0, { _ = softmax(wide.reshaped([2560, 4096])) }),
            ("silu", feature.shape, 0, { _ = silu(feature) }),
            ("gelu", wide.shape, 0, { _ = gelu(wide) }),
            ("geglu", wide.shape, 0, { _ = geglu(wide) }),
            ("add_broadcast_bias", feature.shape, 0, { _ = feature + gamma.reshaped([1, 320, 1, 1]) }),
            ("upsample_nearest_2x", feature.shape, 0, { _ = upsampleNearest2x(feature) }),
            ("permute_nchw_to_nhwc", feature.shape, 0, { _ = permute(feature, [0, 2, 3, 1]) }),
        ]
        for (name, shape, flops, body) in cases where only.map({ name.contains($0) }) ?? true {
            let t = timeInterleaved(options.repetitions, [body])[0]
            var fields: [(String, Any)] = [
                ("bench", "ops"), ("op", name), ("shape", shape), ("threads", threads),
                ("repetitions", options.repetitions), ("seconds", t.best), ("median_seconds", t.median), ("cpu_seconds", t.cpu),
                ("elements_per_second", Double(shape.reduce(1, *)) / t.best),
            ]
            if flops > 0 { fields.append(("gflops", flops / t.best / 1e9)) }
            printJSONLine(fields)
        }
    }
}
