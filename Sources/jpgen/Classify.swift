// jpgen classify: zero-shot classification of an image with a CLIP-style model.
import ArgumentParser
import Evaluation
import Foundation
import Imaging

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Zero-shot classification: the probability of each label for an image, with a CLIP-style model.")

    @Argument(help: "A PNG image.")
    var image: String

    @Option(help: "Comma-separated labels, e.g. \"富士山,海,猫\".")
    var labels: String

    @Option(help: "A CLIP model folder (config.json, model.safetensors, tokenizer and preprocessor files).")
    var model: String

    @Option(help: "A template with {} for the label, e.g. \"a photo of a {}\".")
    var template: String = "{}"

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        if labelList.count < 2 { throw ValidationError("--labels needs at least two comma-separated labels") }
        if !template.contains("{}") { throw ValidationError("--template must contain {} where the label goes") }
    }

    var labelList: [String] {
        labels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        let picture = try readPNG(URL(fileURLWithPath: image)).image
        let scorer = try CLIPScorer(folder: URL(fileURLWithPath: model))
        let labels = labelList
        let (probabilities, logits) = try scorer.classify(picture, labels: labels, template: template)
        if json {
            struct Row: Encodable { let label: String; let probability: Double; let logit: Double }
            let rows = labels.indices.map { Row(label: labels[$0], probability: probabilities[$0], logit: logits[$0]) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(["labels": rows]), as: UTF8.self))
            return
        }
        for i in labels.indices.sorted(by: { probabilities[$0] > probabilities[$1] }) {
            print(String(format: "%7.4f  ", probabilities[i]) + labels[i])
        }
    }
}
