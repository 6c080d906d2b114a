// jpbench: benchmarks of JPGen's kernels, models and jobs. Every figure is printed as a JSON line.
import ArgumentParser
import Kernels

@main
struct JPBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jpbench",
        abstract: "Benchmark JPGen's kernels, models and jobs; prints one JSON object per measurement.",
        version: jpgenVersion,
        subcommands: [GemmBench.self, ConvBench.self, OpsBench.self, TextEncoderBench.self, MergeBench.self, UNetBench.self, VAEBench.self, TokenizeBench.self, PipelineBench.self, DemoBench.self]
    )
}
