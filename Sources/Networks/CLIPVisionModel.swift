// CLIPVisionModel: the ViT image tower of transformers' CLIP (CLIPVisionTransformer, with the
// `visual_projection` of CLIPVisionModelWithProjection / CLIPModel).
//
// Forward (transformers.models.clip.modeling_clip):
//   patches = conv(pixel_values, kernel = stride = patch_size, no bias)        // [B, C, H/p, W/p]
//   x = [class_embedding; patches flattened] + position_embedding             // [B, 1 + N, C]
//   x = pre_layrnorm(x); each layer (pre-LN): x += attn(LN1(x)); x += fc2(act(fc1(LN2(x))))
//   pooled = post_layernorm(x[:, 0]);  image_embeds = visual_projection(pooled)

import Foundation
import Kernels

public struct CLIPVisionConfig: Codable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numChannels: Int
    public var imageSize: Int
    public var patchSize: Int
    public var projectionDim: Int
    public var hiddenAct: String
    public var layerNormEps: Float

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numChannels = "num_channels", imageSize = "image_size", patchSize = "patch_size"
        case projectionDim = "projection_dim", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
    }

    public init(hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                numChannels: Int = 3, imageSize: Int = 224, patchSize: Int = 32, projectionDim: Int = 512,
                hiddenAct: String = "quick_gelu", layerNormEps: Float = 1e-5) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numChannels = numChannels
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.projectionDim = projectionDim
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
    }

    /// Shape-defining fields are required; the rest default as in transformers' CLIPVisionConfig.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            hiddenSize: try c.decode(Int.self, forKey: .hiddenSize),
            intermediateSize: try c.decode(Int.self, forKey: .intermediateSize),
            numHiddenLayers: try c.decode(Int.self, forKey: .numHiddenLayers),
            numAttentionHeads: try c.decode(Int.self, forKey: .numAttentionHeads),
            numChannels: try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? 3,
            imageSize: try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? 224,
            patchSize: try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? 32,
            projectionDim: try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? 512,
            hiddenAct: try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "quick_gelu",
            layerNormEps: try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-5)
    }

    func validate(file: String) throws {
        guard hiddenSize > 0, numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw NetworksError.invalidConfig(file: file, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        guard patchSize > 0, imageSize % patchSize == 0 else {
            throw NetworksError.invalidConfig(file: file, reason: "image_size \(imageSize) is not a multiple of patch_size \(patchSize)")
        }
    }

    var patchesPerSide: Int { imageSize / patchSize }
}

public struct CLIPVisionOutput {
    public var lastHiddenState: Tensor   // [B, 1 + N, C]
    public var pooled: Tensor            // [B, C], post-layernormed class token
    public var imageEmbeds: Tensor?      // [B, projection_dim]
}

public struct CLIPVisionModel {
    struct Layer {
        var layerNorm1: LayerNormWeights
        var attention: SelfAttentionWeights
        var layerNorm2: LayerNormWeights
        var fc1: LinearWeights
        var fc2: LinearWeights
    }

    public let config: CLIPVisionConfig
    let activation: Activation
    var patchEmbedding: Tensor        // [C, 3, p, p]
    var classEmbedding: Tensor        // [C]
    var positionEmbedding: Tensor     // [1 + N, C]
    var preLayerNorm: LayerNormWeights
    var layers: [Layer]
    var postLayerNorm: LayerNormWeights
    public private(set) var visualProjection: LinearWeights?

    /// Loads from a store keyed by transformers' names without the `vision_model.` prefix; the
    /// `visual_projection.weight` (no bias) is loaded when present.
    public init(config: CLIPVisionConfig, weights store: WeightStore, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        activation = try Activation.parse(config.hiddenAct, file: file)
        let c = config.hiddenSize, eps = config.layerNormEps, p = config.patchSize
        let positions = config.patchesPerSide * config.patchesPerSide + 1
        patchEmbedding = try store.take("embeddings.patch_embedding.weight", shape: [c, config.numChannels, p, p])
        classEmbedding = try store.take("embeddings.class_embedding", shape: [c])
        positionEmbedding = try store.take("embeddings.position_embedding.weight", shape: [positions, c])
        preLayerNorm = try LayerNormWeights(store, "pre_layrnorm", dim: c, eps: eps)
        layers = try (0..<config.numHiddenLayers).map { i in
            let prefix = "encoder.layers.\(i)."
            return Layer(
                layerNorm1: try LayerNormWeights(store, prefix + "layer_norm1", dim: c, eps: eps),
                attention: SelfAttentionWeights(
                    query: try LinearWeights(store, prefix + "self_attn.q_proj", out: c, in: c),
                    key: try LinearWeights(store, prefix + "self_attn.k_proj", out: c, in: c),
                    value: try LinearWeights(store, prefix + "self_attn.v_proj", out: c, in: c),
                    out: try LinearWeights(store, prefix + "self_attn.out_proj", out: c, in: c),
                    heads: config.numAttentionHeads),
                layerNorm2: try LayerNormWeights(store, prefix + "layer_norm2", dim: c, eps: eps),
                fc1: try LinearWeights(store, prefix + "mlp.fc1", out: config.intermediateSize, in: c),
                fc2: try LinearWeights(store, prefix + "mlp.fc2", out: c, in: config.intermediateSize))
        }
        postLayerNorm = try LayerNormWeights(store, "post_layernorm", dim: c, eps: eps)
        if store.contains("visual_projection.weight") {
            visualProjection = try LinearWeights(store, "visual_projection", out: config.projectionDim, in: c, bias: false)
        }
    }

    /// pixelValues: [B, 3, imageSize, imageSize] (as CLIPImageProcessor makes them).
    public func callAsFunction(pixelValues: Tensor) throws -> CLIPVisionOutput {
        let s = config.imageSize
        guard pixelValues.rank == 4, pixelValues.shape[1] == config.numChannels,
              pixelValues.shape[2] == s, pixelValues.shape[3] == s else {
            throw NetworksError.invalidInput("CLIPVisionModel expects pixel values [B, \(config.numChannels), \(s), \(s)], got \(pixelValues.shape)")
        }
        let b = pixelValues.shape[0], c = config.hiddenSize, n = config.patchesPerSide * config.patchesPerSide
        // patches: [B, C, g, g] -> [B, N, C]
        let patches = permute(conv2d(pixelValues, weight: patchEmbedding, bias: nil, stride: config.patchSize)
                                .reshaped([b, c, n]), [0, 2, 1])
        // x: [B, 1 + N, C] = [class; patches] + positions
        let cls = classEmbedding.reshaped([1, 1, c]) + Tensor(shape: [b, 1, c])
        var x = concat([cls, patches], axis: 1) + positionEmbedding.reshaped([1, n + 1, c])
        x = preLayerNorm(x)
        for layer in layers {
            x = x + layer.attention(layer.layerNorm1(x), mask: nil)
            x = x + layer.fc2(activation(layer.fc1(layer.layerNorm2(x))))
        }
        let pooled = postLayerNorm(gatherRows(x, Array(repeating: 0, count: b)))    // [B, C]
        return CLIPVisionOutput(lastHiddenState: x, pooled: pooled, imageEmbeds: visualProjection.map { $0(pooled) })
    }
}
