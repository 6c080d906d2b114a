import ArgumentParser

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Summarise a safetensors file.")
    @Argument(help: "A .safetensors file.") var file: String
    func run() throws { throw ValidationError("not implemented yet: \(file)") }
}
