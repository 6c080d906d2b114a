// CLIPTextConfig: transformers' CLIPTextConfig (config.json of a CLIP text encoder folder), the
// presets of the text encoders inside single-file SD1/SD2/SDXL checkpoints, and inference of a
// config from the weights themselves.

import Foundation

public struct CLIPTextConfig: Codable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    public var projectionDim: Int
    public var hiddenAct: String
    public var layerNormEps: Float
    public var padTokenId: Int?
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var architectures: [String]?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case projectionDim = "projection_dim"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
        case padTokenId = "pad_token_id"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case architectures
    }

    public init(vocabSize: Int = 49408, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, maxPositionEmbeddings: Int = 77, projectionDim: Int = 512,
                hiddenAct: String = "quick_gelu", layerNormEps: Float = 1e-5, padTokenId: Int? = 1,
                bosTokenId: Int? = 49406, eosTokenId: Int? = 49407, architectures: [String]? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.projectionDim = projectionDim
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.padTokenId = padTokenId
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.architectures = architectures
    }

    /// The shape-defining fields are required; the rest default as in transformers.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        maxPositionEmbeddings = try c.value(.maxPositionEmbeddings, default: 77)
        projectionDim = try c.value(.projectionDim, default: 512)
        hiddenAct = try c.value(.hiddenAct, default: "quick_gelu")
        layerNormEps = try c.value(.layerNormEps, default: 1e-5)
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId)
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.value(.eosTokenId, default: 49407)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
    }

    var headDim: Int { hiddenSize / max(numAttentionHeads, 1) }

    /// Checks the numbers fit together (heads divide the width), naming the file.
    func validate(file: String) throws {
        for (field, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize),
                               ("intermediate_size", intermediateSize), ("num_hidden_layers", numHiddenLayers),
                               ("num_attention_heads", numAttentionHeads),
                               ("max_position_embeddings", maxPositionEmbeddings)] where value <= 0 {
            throw NetworksError.invalidConfig(file: file, reason: "\(field) must be positive, got \(value)")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw NetworksError.invalidConfig(
                file: file, reason: "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        _ = try Activation.parse(hiddenAct, file: file)
    }

    /// Every tensor CLIPTextModel loads for this config (transformers names, no `text_model.`),
    /// with its shape; `withProjection` adds `text_projection.weight`.
    public func parameterShapes(withProjection: Bool = false) -> [String: [Int]] {
        let c = hiddenSize, i = intermediateSize
        var shapes: [String: [Int]] = [
            "embeddings.token_embedding.weight": [vocabSize, c],
            "embeddings.position_embedding.weight": [maxPositionEmbeddings, c],
            "final_layer_norm.weight": [c], "final_layer_norm.bias": [c],
        ]
        for l in 0..<numHiddenLayers {
            let p = "encoder.layers.\(l)."
            for norm in ["layer_norm1", "layer_norm2"] {
                shapes[p + norm + ".weight"] = [c]
                shapes[p + norm + ".bias"] = [c]
            }
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                shapes[p + "self_attn.\(proj).weight"] = [c, c]
                shapes[p + "self_attn.\(proj).bias"] = [c]
            }
            shapes[p + "mlp.fc1.weight"] = [i, c]
            shapes[p + "mlp.fc1.bias"] = [i]
            shapes[p + "mlp.fc2.weight"] = [c, i]
            shapes[p + "mlp.fc2.bias"] = [c]
        }
        if withProjection { shapes["text_projection.weight"] = [projectionDim, c] }
        return shapes
    }

    // MARK: Presets (the text_encoder configs diffusers uses for single-file checkpoints)

    /// SD1.x and SDXL's first encoder: OpenAI CLIP ViT-L/14 text (openai/clip-vit-large-patch14).
    public static let clipL = CLIPTextConfig(
        hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12,
        projectionDim: 768, hiddenAct: "quick_gelu", eosTokenId: 2)

    /// SD2.x: OpenCLIP ViT-H/14 text as diffusers configures it (23 of 24 blocks, stabilityai/stable-diffusion-2).
    public static let openCLIPH = CLIPTextConfig(
        hiddenSize: 1024, intermediateSize: 4096, numHiddenLayers: 23, numAttentionHeads: 16,
        projectionDim: 512, hiddenAct: "gelu", eosTokenId: 2)

    /// SDXL's second encoder: OpenCLIP ViT-bigG/14 text with projection (laion/CLIP-ViT-bigG-14-laion2B-39B-b160k).
    public static let openCLIPBigG = CLIPTextConfig(
        hiddenSize: 1280, intermediateSize: 5120, numHiddenLayers: 32, numAttentionHeads: 20,
        projectionDim: 1280, hiddenAct: "gelu", eosTokenId: 2)

    /// A config read off the weights (canonical names, after the key map): every size from a
    /// shape, heads from `headDim` (64 in every CLIP text model), the activation by layout.
    public static func inferred(from store: WeightStore, activation: String, headDim: Int = 64) throws -> CLIPTextConfig {
        guard let token = store.shape(of: "embeddings.token_embedding.weight"), token.count == 2 else {
            throw NetworksError.missingKey("embeddings.token_embedding.weight")
        }
        guard let position = store.shape(of: "embeddings.position_embedding.weight"), position.count == 2 else {
            throw NetworksError.missingKey("embeddings.position_embedding.weight")
        }
        guard let fc1 = store.shape(of: "encoder.layers.0.mlp.fc1.weight"), fc1.count == 2 else {
            throw NetworksError.missingKey("encoder.layers.0.mlp.fc1.weight")
        }
        var layers = 0
        while store.contains("encoder.layers.\(layers).mlp.fc1.weight") { layers += 1 }
        let hidden = token[1]
        let projection = store.shape(of: "text_projection.weight")?.first ?? hidden
        return CLIPTextConfig(
            vocabSize: token[0], hiddenSize: hidden, intermediateSize: fc1[0], numHiddenLayers: layers,
            numAttentionHeads: max(hidden / headDim, 1), maxPositionEmbeddings: position[0],
            projectionDim: projection, hiddenAct: activation, eosTokenId: 2)
    }
}
