// `jpbench gemm`: matmul (Kernels) next to raw cblas_sgemm at the same shapes, as JSON lines.

import ArgumentParser
import Kernels

struct GemmBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "Time Kernels.matmul and raw cblas_sgemm on M x K by K x N products; one JSON line per shape.")

    @Option(name: .long, parsing: .upToNextOption,
            help: "Shapes as MxNxK, or N for a square N^3 product.")
    var shapes: [String] = ["2048", "4096x320x320", "4096x1280x320", "77x768x768", "1024x1024x64"]

    @Flag(help: "Time linear layers instead (x [M, K] times a weight [N, K], plus a bias): the weight packed once at load (GemmPackedWeight) next to `linear` on the plain weight.")
    var linear = false

    @Option(help: "With --linear: cycle through this many distinct packed weights, so that each product finds its weight in memory rather than in cache (as a UNet step does); seconds are per product.")
    var coldWeights: Int = 1

    @OptionGroup var options: KernelBenchOptions

    func validate() throws {
        guard coldWeights >= 1 else { throw ValidationError("--cold-weights must be at least 1, got \(coldWeights)") }
        for s in shapes where parsedShape(s) == nil {
            throw ValidationError("shape '\(s)' is not MxNxK or N")
        }
    }

    func parsedShape(_ s: String) -> (m: Int, n: Int, k: Int)? {
        guard let v = parseInts(s, separators: ["x", "X"]), v.allSatisfy({ $0 > 0 }) else { return nil }
        if v.count == 1 { return (v[0], v[0], v[0]) }
        return v.count == 3 ? (v[0], v[1], v[2]) : nil
    }

    func run() throws {
        let threads = options.applyThreads()
        for s in shapes {
            let (m, n, k) = parsedShape(s)!
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            if linear {
                try runLinear(m: m, n: n, k: k, threads: threads)
                continue
            }
            let a = benchTensor([m, k], seed: 3), b = benchTensor([k, n], seed: 4)
            let raw = SgemmProblem(m: m, n: n, k: k)
            let t = timeInterleaved(options.repetitions, [{ _ = matmul(a, b) }, { raw.run() }])
            let (ours, sgemmTime) = (t[0], t[1])
            printJSONLine([
                ("bench", "gemm"), ("m", m), ("n", n), ("k", k), ("threads", threads),
                ("repetitions", options.repetitions),
                ("seconds", ours.best), ("median_seconds", ours.median), ("gflops", flops / ours.best / 1e9),
                ("sgemm_seconds", sgemmTime.best), ("sgemm_median_seconds", sgemmTime.median),
                ("sgemm_gflops", flops / sgemmTime.best / 1e9),
                ("ratio_to_sgemm", sgemmTime.best / ours.best),
            ])
        }
    }

    func runLinear(m: Int, n: Int, k: Int, threads: Int) throws {
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        let x = benchTensor([m, k], seed: 3), weight = benchTensor([n, k], seed: 4), bias = benchTensor([n], seed: 5)
        var packs: [GemmPackedWeight] = []
        for i in 0..<coldWeights {
            let w = i == 0 ? weight : benchTensor([n, k], seed: UInt64(100 + i))
            guard let packed = GemmPackedWeight(w) else {
                throw ValidationError("--linear needs the AVX-512 sgemm (this CPU or JPGEN_GEMM rules it out)")
            }
            packs.append(packed)
        }
        let products = Double(coldWeights)
        var runs: [() -> Void] = [{ for p in packs { _ = Kernels.linear(x, gemmPacked: p, bias: bias) } },
                                  { _ = Kernels.linear(x, weight: weight, bias: bias) }]
        // The same weights as a feed-forward's GEGLU projection ([h | g], out = h * gelu(g)), fused.
        let geglu = n % 64 == 0
        if geglu {
            runs.append { for p in packs { linearGEGLUPacked(x, gemmPacked: p, bias: bias)!.release() } }
        }
        var t = timeInterleaved(options.repetitions, runs)
        t[0] = (t[0].best / products, t[0].median / products, t[0].cpu / products)
        var gegluFields: [(String, Any)] = []
        if geglu {
            let g = (best: t[2].best / products, median: t[2].median / products)
            gegluFields = [("geglu_seconds", g.best), ("geglu_median_seconds", g.median), ("geglu_gflops", flops / g.best / 1e9)]
        }
        printJSONLine([
            ("bench", "linear"), ("m", m), ("n", n), ("k", k), ("threads", threads),
            ("repetitions", options.repetitions), ("cold_weights", coldWeights),
            ("seconds", t[0].best), ("median_seconds", t[0].median), ("gflops", flops / t[0].best / 1e9),
            ("unpacked_seconds", t[1].best), ("unpacked_gflops", flops / t[1].best / 1e9),
        ] + gegluFields)
    }
}
