// `jpbench conv`: Kernels.conv2d at SD-like shapes next to raw cblas_sgemm, as JSON lines.
// Each line gives the convolution's GFLOP/s (2 * O * C * kh * kw * H' * W' per image), the
// GFLOP/s of cblas_sgemm on the same-sized product [O, C*kh*kw] x [C*kh*kw, H'*W'], and the
// percentage of the GFLOP/s of a large square cblas_sgemm (--reference-size); the three are timed
// round-robin (conv, same-shape sgemm, square sgemm, conv, ...) so they share the machine's load.
// With Winograd (3x3, stride 1, padding 1; --winograd) the GFLOP/s still count the direct
// convolution's multiply-adds, so they can exceed sgemm's.

import ArgumentParser
import Kernels

struct ConvBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Time Kernels.conv2d at SD-like shapes against cblas_sgemm; one JSON line per shape.")

    @Option(name: .long, parsing: .upToNextOption,
            help: "Convolutions as C:HxW (3x3, C->C, stride 1, pad 1) or Cin:Cout:HxW:k:stride:pad.")
    var shapes: [String] = ["320:64x64", "640:32x32", "1280:16x16", "128:256x256",
                            "640:1280:32x32:1:1:0", "320:320:64x64:3:2:1", "4:320:64x64:3:1:1"]

    @Option(help: "Batch size.")
    var batch: Int = 1

    @Option(help: "conv2d formulation: \(Conv2dAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")).")
    var algorithm: String = Conv2dAlgorithm.automatic.rawValue

    @Option(help: "conv2d's im2col buffer budget in floats per worker (default: the library's).")
    var budget: Int?

    @Option(help: "How conv2d spreads its row tiles: auto, workers (one sgemm per thread) or sequential.")
    var tiles: String = "auto"

    @Option(help: "Winograd for 3x3 stride-1 padding-1: \(Conv2dWinogradMode.allCases.map(\.rawValue).joined(separator: ", ")) (the filter transform is timed with each call unless --cache-filter).")
    var winograd: String = Conv2dWinogradMode.automatic.rawValue

    @Option(help: "Winograd tiles per block (default: the library's).")
    var winogradBlock: Int?

    @Flag(help: "Keep the Winograd filter between calls, as the networks' conv weights do.")
    var cacheFilter = false

    @OptionGroup var options: KernelBenchOptions

    struct Shape { let cin, cout, h, w, k, stride, pad: Int }

    func parsedShape(_ s: String) -> Shape? {
        let parts = s.split(separator: ":").map(String.init)
        guard parts.count == 2 || parts.count == 6,
              let hw = parseInts(parts[parts.count == 2 ? 1 : 2], separators: ["x", "X"]), hw.count == 2 else { return nil }
        if parts.count == 2 {
            guard let c = Int(parts[0]), c > 0 else { return nil }
            return Shape(cin: c, cout: c, h: hw[0], w: hw[1], k: 3, stride: 1, pad: 1)
        }
        guard let cin = Int(parts[0]), let cout = Int(parts[1]), let k = Int(parts[3]),
              let st = Int(parts[4]), let pad = Int(parts[5]), cin > 0, cout > 0, k > 0, st > 0, pad >= 0,
              hw[0] + 2 * pad >= k, hw[1] + 2 * pad >= k else { return nil }
        return Shape(cin: cin, cout: cout, h: hw[0], w: hw[1], k: k, stride: st, pad: pad)
    }

    func validate() throws {
        guard Conv2dAlgorithm(rawValue: algorithm) != nil else {
            throw ValidationError("--algorithm must be one of \(Conv2dAlgorithm.allCases.map(\.rawValue)), got '\(algorithm)'")
        }
        guard ["auto", "workers", "sequential"].contains(tiles) else {
            throw ValidationError("--tiles must be auto, workers or sequential, got '\(tiles)'")
        }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard Conv2dWinogradMode(rawValue: winograd) != nil else {
            throw ValidationError("--winograd must be one of \(Conv2dWinogradMode.allCases.map(\.rawValue)), got '\(winograd)'")
        }
        for s in shapes where parsedShape(s) == nil {
            throw ValidationError("shape '\(s)' is not C:HxW or Cin:Cout:HxW:k:stride:pad")
        }
    }

    func run() throws {
        let threads = options.applyThreads()
        conv2dAlgorithm = Conv2dAlgorithm(rawValue: algorithm)!
        conv2dWorkerTiles = tiles == "auto" ? nil : tiles == "workers"
        if let budget { convBufferBudget = budget }
        conv2dWinograd = Conv2dWinogradMode(rawValue: winograd)!
        if let winogradBlock { winogradBlockTiles = winogradBlock }
        let r = options.referenceSize
        let square = SgemmProblem(m: r, n: r, k: r)
        for s in shapes {
            let sh = parsedShape(s)!
            let ho = (sh.h + 2 * sh.pad - sh.k) / sh.stride + 1, wo = (sh.w + 2 * sh.pad - sh.k) / sh.stride + 1
            let kdim = sh.cin * sh.k * sh.k
            let flops = 2.0 * Double(batch) * Double(sh.cout) * Double(kdim) * Double(ho * wo)
            let x = benchTensor([batch, sh.cin, sh.h, sh.w], seed: 5)
            let w = benchTensor([sh.cout, sh.cin, sh.k, sh.k], seed: 6)
            let b = benchTensor([sh.cout], seed: 7)
            winogradKeepsFilters = cacheFilter
            let cache = cacheFilter ? WinogradFilterCache() : nil
            let tile = conv2dWinogradTile(n: batch, c: sh.cin, h: sh.h, w: sh.w, o: sh.cout, kh: sh.k, kw: sh.k,
                                          stride: sh.stride, padding: sh.pad)
            let same = SgemmProblem(m: sh.cout, n: ho * wo * batch, k: kdim)
            let t = timeInterleaved(options.repetitions, [
                { _ = conv2d(x, weight: w, bias: b, stride: sh.stride, padding: sh.pad, winograd: cache) },
                { same.run() },
                { square.run() },
            ])
            let (ours, sameTime) = (t[0], t[1])
            let gflops = flops / ours.best / 1e9
            let sameGflops = flops / sameTime.best / 1e9
            let squareGflops = square.flops / t[2].best / 1e9
            printJSONLine([
                ("bench", "conv"), ("batch", batch), ("cin", sh.cin), ("cout", sh.cout), ("h", sh.h), ("w", sh.w),
                ("kernel", sh.k), ("stride", sh.stride), ("padding", sh.pad), ("algorithm", algorithm), ("winograd_tile", tile ?? 0), ("cached_filter", cacheFilter), ("tiles", tiles), ("buffer_budget", convBufferBudget),
                ("threads", threads),
                ("repetitions", options.repetitions),
                ("seconds", ours.best), ("median_seconds", ours.median), ("cpu_seconds", ours.cpu), ("gflops", gflops),
                ("sgemm_same_shape_seconds", sameTime.best), ("sgemm_same_shape_cpu_seconds", sameTime.cpu), ("sgemm_same_shape_gflops", sameGflops),
                ("sgemm_square_gflops", squareGflops), ("sgemm_square_cpu_gflops", square.flops / t[2].cpu / 1e9),
                ("percent_of_square_sgemm", 100 * gflops / squareGflops),
                ("percent_of_same_shape_sgemm", 100 * gflops / sameGflops),
                ("cpu_gflops", flops / ours.cpu / 1e9),
                ("cpu_percent_of_square_sgemm", 100 * (flops / ours.cpu) / (square.flops / t[2].cpu)),
            ])
        }
    }
}
