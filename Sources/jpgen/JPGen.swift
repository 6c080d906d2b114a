// jpgen: Japanese-prompt image generation. A thin command layer over the libraries.
import ArgumentParser
import Kernels

@main
struct JPGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jpgen",
        abstract: "Generate images from Japanese prompts with few-step diffusion models, on the CPU.",
        version: jpgenVersion,
        subcommands: [Generate.self, Inspect.self, Tokenize.self, Classify.self],
        defaultSubcommand: Generate.self
    )
}
