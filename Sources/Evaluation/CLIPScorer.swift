// The scorer of evaluations and searches: a CLIP-style model folder (image tower, text tower with its
// tokenizer, preprocessing) that embeds images and prompts into one space. Gives CLIPScore for
// image/prompt pairs (Hessel et al. 2021) and zero-shot classification (softmax over the scaled
// image-text similarities, as transformers' `logits_per_image.softmax(-1)`).

import Foundation
import Imaging
import Kernels
import Networks
import Tokenization

public final class CLIPScorer {
    public let folder: URL
    public let model: CLIPModel
    public let tokenizer: any TextTokenizer
    public let processor: CLIPImageProcessor

    public init(folder: URL) throws {
        self.folder = folder
        model = try CLIPModel.load(folder: folder)
        tokenizer = try loadTokenizer(folder: folder)
        processor = CLIPImageProcessor(config: try CLIPImageProcessorConfig.load(folder: folder))
    }

    /// Unit image embeddings [N, P].
    public func imageEmbeddings(_ images: [RGB8Image]) throws -> Tensor {
        let pixels = concat(try images.map { try processor($0) }, axis: 0)    // [N, 3, S, S]
        return try model.imageEmbeddings(pixelValues: pixels)
    }

    /// Unit text embeddings [N, P]; each text padded to the tokenizer's maximum length.
    public func textEmbeddings(_ texts: [String]) throws -> Tensor {
        let encodings = try texts.map { try tokenizer.encode($0, options: EncodingOptions(padToMaxLength: true)) }
        return try model.textEmbeddings(ids: encodings.map(\.ids), attentionMask: encodings.map(\.attentionMask))
    }

    /// CLIPScore = 2.5 * max(cos(image, text), 0) for each (image, text) pair, in order.
    public func clipScores(images: [RGB8Image], texts: [String]) throws -> [Double] {
        precondition(images.count == texts.count, "one text per image")
        let a = try imageEmbeddings(images).scalars, b = try textEmbeddings(texts).scalars
        let p = a.count / max(images.count, 1)
        return (0..<images.count).map { i in
            var cosine: Float = 0
            for k in 0..<p { cosine += a[i * p + k] * b[i * p + k] }
            return clipScore(cosine: Double(cosine))
        }
    }

    /// For each alternative caption, the scorer's probability that it describes the image better than
    /// `caption`: the two-way softmax of their scaled similarities,
    /// sigmoid(logit_scale x (cos(image, alternative) - cos(image, caption))).
    public func preferences(image: RGB8Image, caption: String, alternatives: [String]) throws -> [Double] {
        guard !alternatives.isEmpty else { return [] }
        let logits = model.logitsPerImage(imageEmbeddings: try imageEmbeddings([image]),
                                          textEmbeddings: try textEmbeddings([caption] + alternatives)).scalars.map(Double.init)
        return logits.dropFirst().map { 1 / (1 + Foundation.exp(logits[0] - $0)) }
    }

    /// Probability of each label for the image, and the logits they come from.
    public func classify(_ image: RGB8Image, labels: [String], template: String = "{}") throws -> (probabilities: [Double], logits: [Double]) {
        let texts = labels.map { template.replacingOccurrences(of: "{}", with: $0) }
        let logits = model.logitsPerImage(imageEmbeddings: try imageEmbeddings([image]), textEmbeddings: try textEmbeddings(texts))
        let values = logits.scalars.map(Double.init)
        let top = values.max() ?? 0
        let exps = values.map { Foundation.exp($0 - top) }
        let total = exps.reduce(0, +)
        return (exps.map { $0 / total }, values)
    }
}
