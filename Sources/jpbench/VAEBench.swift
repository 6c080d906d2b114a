// `jpbench vae`: seconds per decode of a diffusers vae/ folder (AutoencoderKL or AutoencoderTiny),
// with GFLOP/s and peak RSS; Tools/bench_unet_vae.py writes the random-weight folders and times
// diffusers on the same files.

import ArgumentParser
import Foundation
import Kernels
import Networks

struct VAEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae", abstract: "Time a VAE decode of a diffusers vae/ folder (AutoencoderKL or AutoencoderTiny).")

    @Option(help: "A diffusers vae/ folder; config.json's _class_name picks AutoencoderKL or AutoencoderTiny.")
    var folder: String

    @Option(help: "Image size in pixels (latents are size/8).")
    var size: Int = 512

    @Option(help: "GFLOP of one decode, for the GFLOP/s figure.")
    var gflop: Double = 0

    @OptionGroup var options: NetworkBenchOptions

    func run() throws {
        try options.apply()
        let url = URL(fileURLWithPath: folder)
        let configText = (try? String(contentsOf: url.appendingPathComponent("config.json"), encoding: .utf8)) ?? ""
        let tiny = configText.contains("AutoencoderTiny")
        let latents = benchTensor([1, 4, size / 8, size / 8], seed: 4)
        let t: (best: Double, median: Double)
        if tiny {
            let model = try AutoencoderTiny(folder: url)
            t = try options.time { _ = try model.decode(latents) }
        } else {
            let model = try AutoencoderKL(folder: url)
            t = try options.time { _ = try model.decode(latents) }
        }
        options.printResult(bench: tiny ? "taesd" : "vae", folder: folder, size: size, gflop: gflop, time: t)
    }
}
