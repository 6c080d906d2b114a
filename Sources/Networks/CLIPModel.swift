// CLIPModel: an image tower and a text tower projected into one space, as transformers' CLIPModel:
//   image_embeds = normalize(visual_projection(vision pooled)),  text_embeds = normalize(text_embeds)
//   logits_per_image = exp(logit_scale) * image_embeds @ text_embeds^T,  logits_per_text = its transpose
// The text tower is any `TextEncoder` that yields `textEmbeds` (CLIP text with projection, or an
// M-CLIP / Japanese-CLIP style BERT/XLM-R tower with its projection), so dual encoders that pair a CLIP
// vision tower with another text tower score the same way. `load` reads both transformers layouts:
// CLIPModel folders and VisionTextDualEncoderModel folders (CLIP vision + BERT/XLM-R text tower).

import Foundation
import Kernels

public struct CLIPModel {
    public let vision: CLIPVisionModel
    public let text: TextEncoder
    /// log of the logit scale (transformers stores `logit_scale` as a scalar parameter).
    public let logitScale: Float

    public init(vision: CLIPVisionModel, text: TextEncoder, logitScale: Float) {
        self.vision = vision
        self.text = text
        self.logitScale = logitScale
    }

    /// Loads a transformers CLIPModel or VisionTextDualEncoderModel folder (config.json with
    /// text_config and vision_config, model.safetensors with text_model.*, vision_model.*, the two
    /// projections and logit_scale). A dual encoder's vision tower is a CLIPVisionModel, saved as
    /// `vision_model.*` by transformers 5 and `vision_model.vision_model.*` by transformers 4.
    public static func load(folder: URL) throws -> CLIPModel {
        let configURL = folder.appendingPathComponent("config.json")
        struct Nested: Decodable {
            struct Kind: Decodable {
                let modelType: String?
                enum CodingKeys: String, CodingKey { case modelType = "model_type" }
            }
            let visionConfig: CLIPVisionConfig
            let visionKind: Kind
            let projectionDim: Int?
            enum CodingKeys: String, CodingKey { case visionConfig = "vision_config", projectionDim = "projection_dim" }
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                visionKind = try c.decode(Kind.self, forKey: .visionConfig)
                visionConfig = try c.decode(CLIPVisionConfig.self, forKey: .visionConfig)
                projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim)
            }
        }
        let nested = try loadConfig(Nested.self, from: configURL)
        if let kind = nested.visionKind.modelType, kind != "clip_vision_model" {
            throw NetworksError.unsupportedArchitecture(
                file: configURL.path, name: "vision_config.model_type \(kind) (only CLIP vision towers are supported)")
        }
        let raw = try WeightStore(folder: folder)
        let known = ["text_model.", "vision_model.", "text_projection.", "visual_projection.", "logit_scale"]
        let strangers = raw.names.filter { name in !known.contains { name.hasPrefix($0) } }
        guard strangers.isEmpty else { throw NetworksError.unusedKeys(strangers) }

        let text = try TextEncoder.load(folder: folder, allowUnused: true)
        var visionConfig = nested.visionConfig
        if let projection = raw.shape(of: "visual_projection.weight")?.first {
            visionConfig.projectionDim = projection
        } else if let dim = nested.projectionDim {
            visionConfig.projectionDim = dim
        }
        let visionPrefix = raw.hasPrefix("vision_model.vision_model.") ? "vision_model.vision_model." : "vision_model."
        let visionStore = try raw.renamed { name in
            if name.hasPrefix(visionPrefix) { return String(name.dropFirst(visionPrefix.count)) }
            return name == "visual_projection.weight" ? name : nil
        }
        let vision = try CLIPVisionModel(config: visionConfig, weights: visionStore, file: configURL.path)
        try visionStore.finish()
        guard vision.visualProjection != nil else { throw NetworksError.missingKey("visual_projection.weight") }
        let scale = try raw.take("logit_scale")
        guard scale.count == 1 else {
            throw NetworksError.shapeMismatch(key: "logit_scale", expected: [], actual: scale.shape)
        }
        return CLIPModel(vision: vision, text: text, logitScale: scale.scalars[0])
    }

    /// Unit-length image embeddings [B, P] from pixel values [B, 3, S, S].
    public func imageEmbeddings(pixelValues: Tensor) throws -> Tensor {
        guard let embeds = try vision(pixelValues: pixelValues).imageEmbeds else {
            throw NetworksError.missingKey("visual_projection.weight")
        }
        return l2Normalized(embeds)
    }

    /// Unit-length text embeddings [B, P] from token ids (and their attention mask).
    public func textEmbeddings(ids: [[Int]], attentionMask: [[Int]]? = nil) throws -> Tensor {
        guard let embeds = try text(ids: ids, attentionMask: attentionMask).textEmbeds else {
            throw NetworksError.invalidInput("the text tower (\(text.architecture)) has no projection into the joint space")
        }
        guard embeds.shape.last == vision.config.projectionDim else {
            throw NetworksError.shapeMismatch(key: "text projection", expected: [vision.config.projectionDim],
                                              actual: [embeds.shape.last ?? 0])
        }
        return l2Normalized(embeds)
    }

    /// logits_per_image: [images, texts] = exp(logit_scale) * cos(image, text).
    public func logitsPerImage(imageEmbeddings: Tensor, textEmbeddings: Tensor) -> Tensor {
        scale(matmul(imageEmbeddings, textEmbeddings, transposeB: true), Foundation.exp(logitScale))
    }
}

/// Each row of x: [B, P] divided by its Euclidean norm.
public func l2Normalized(_ x: Tensor) -> Tensor {
    let b = x.shape[0], p = x.count / max(b, 1)
    return x.withUnsafeBufferPointer { src in
        Tensor(shape: x.shape) { dst in
            for i in 0..<b {
                var sum: Float = 0
                for k in 0..<p { sum += src[i * p + k] * src[i * p + k] }
                let inverse = 1 / max(sum.squareRoot(), 1e-12)
                for k in 0..<p { dst[i * p + k] = src[i * p + k] * inverse }
            }
        }
    }
}
