// `jpbench unet` / `jpbench vae`: seconds per UNet step or VAE decode of a diffusers folder
// (Tools/bench_unet_vae.py writes full-size random-weight SD1.5/SDXL UNets, the SD VAE and TAESD,
// times diffusers on them and runs these commands on the same files), with GFLOP/s and peak RSS.

import ArgumentParser
import Dispatch
import Foundation
import Kernels
import Networks

/// Seconds of `body`, run `repetitions` times after one warm-up: (best, median).
func timeRuns(_ repetitions: Int, warmUp: Bool, _ body: () throws -> Void) rethrows -> (best: Double, median: Double) {
    if warmUp { try body() }
    var times: [Double] = []
    for _ in 0..<repetitions {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    let s = times.sorted()
    return (s[0], s[s.count / 2])
}

/// The options `jpbench unet` and `jpbench vae` share: repetitions, warm-up, threads, Winograd.
struct NetworkBenchOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Timed runs (steps or decodes).")
    var repetitions: Int = 1

    @Flag(help: "Skip the untimed warm-up run.")
    var noWarmUp = false

    @Option(name: .shortAndLong, help: "Threads (default: all cores).")
    var threads: Int?

    @Option(help: "Winograd for 3x3 convolutions: automatic, off, f2 or f4 (default: JPGEN_CONV2D_WINOGRAD or automatic).")
    var winograd: String?

    @Flag(help: "Keep each conv's Winograd filter after its first use (more memory, no per-call transform).")
    var keepWinogradFilters = false

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    /// Sets the thread count and the convolution settings for the run.
    func apply() throws {
        if let threads { setThreadCount(threads) }
        if let winograd {
            guard let mode = Conv2dWinogradMode(rawValue: winograd) else {
                throw ValidationError("--winograd must be one of \(Conv2dWinogradMode.allCases.map(\.rawValue)), got '\(winograd)'")
            }
            conv2dWinograd = mode
        }
        if keepWinogradFilters { winogradKeepsFilters = true }
    }

    /// Seconds of `body` over the timed runs, after the warm-up unless --no-warm-up: (best, median).
    func time(_ body: () throws -> Void) rethrows -> (best: Double, median: Double) {
        try timeRuns(repetitions, warmUp: !noWarmUp, body)
    }

    /// The result as one JSON line: the settings in effect, `extra`, the times, peak RSS and GFLOP/s.
    func printResult(bench: String, folder: String, size: Int, gflop: Double, extra: [(String, Any)] = [],
                     time t: (best: Double, median: Double)) {
        var fields: [(String, Any)] = [("bench", bench), ("folder", folder), ("size", size), ("threads", kernelThreadCount),
                                       ("winograd", conv2dWinograd.rawValue), ("keep_winograd_filters", winogradKeepsFilters)]
        fields += extra
        fields += [("seconds", t.best), ("median_seconds", t.median), ("peak_rss_mb", peakRSSMegabytes())]
        if gflop > 0 { fields.append(("gflops", gflop / t.best)) }
        printJSONLine(fields)
    }
}

struct UNetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet", abstract: "Time one UNet step of a diffusers unet/ folder (random weights from Tools/bench_unet_vae.py).")

    @Option(help: "A diffusers unet/ folder (config.json + safetensors).")
    var folder: String

    @Option(help: "Image size in pixels (latents are size/8).")
    var size: Int = 512

    @Option(help: "Text tokens of the conditioning.")
    var tokens: Int = 77

    @Option(help: "GFLOP of one step, for the GFLOP/s figure (from the Python script's count).")
    var gflop: Double = 0

    @OptionGroup var options: NetworkBenchOptions

    func run() throws {
        try options.apply()
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let model = try UNet2DConditionModel(folder: URL(fileURLWithPath: folder))
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e9
        let cfg = model.config
        let lat = size / 8
        let sample = benchTensor([1, cfg.inChannels, lat, lat], seed: 1)
        let context = benchTensor([1, tokens, cfg.crossAttentionDim], seed: 2)
        var text: Tensor? = nil, ids: Tensor? = nil
        if cfg.additionEmbedType == "text_time", let p = cfg.projectionClassEmbeddingsInputDim, let d = cfg.additionTimeEmbedDim {
            text = benchTensor([1, p - 6 * d], seed: 3)
            ids = Tensor(shape: [1, 6], data: [Float(size), Float(size), 0, 0, Float(size), Float(size)])
        }
        let t = try options.time {
            _ = try model(sample: sample, timestep: 500, encoderHiddenStates: context, addTextEmbeds: text, addTimeIds: ids)
        }
        options.printResult(bench: "unet", folder: folder, size: size, gflop: gflop, extra: [("load_seconds", loadSeconds)], time: t)
    }
}
