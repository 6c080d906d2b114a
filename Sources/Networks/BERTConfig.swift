// BERTConfig: the config.json fields shared by transformers' BertConfig, RobertaConfig and
// XLMRobertaConfig, plus the projection-head fields of AltDiffusion's RobertaSeriesConfig
// (`project_dim`, `has_pre_transformation`, `pooler_fn`) and M-CLIP's MCLIPConfig (`numDims`).

import Foundation

public struct BERTConfig: Codable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var hiddenAct: String
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var padTokenId: Int?
    public var positionEmbeddingType: String
    public var modelType: String?
    public var architectures: [String]?
    // Projection heads (absent in a plain encoder).
    public var projectDim: Int?
    public var hasPreTransformation: Bool
    public var poolerFn: String?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case hiddenAct = "hidden_act"
        case maxPositionEmbeddings = "max_position_embeddings"
        case typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps"
        case padTokenId = "pad_token_id"
        case positionEmbeddingType = "position_embedding_type"
        case modelType = "model_type"
        case architectures
        case projectDim = "project_dim"
        case hasPreTransformation = "has_pre_transformation"
        case poolerFn = "pooler_fn"
    }

    public init(vocabSize: Int, hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                intermediateSize: Int, hiddenAct: String = "gelu", maxPositionEmbeddings: Int = 512,
                typeVocabSize: Int = 2, layerNormEps: Float = 1e-12, padTokenId: Int? = 0,
                positionEmbeddingType: String = "absolute", modelType: String? = "bert",
                architectures: [String]? = nil, projectDim: Int? = nil, hasPreTransformation: Bool = false,
                poolerFn: String? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.padTokenId = padTokenId
        self.positionEmbeddingType = positionEmbeddingType
        self.modelType = modelType
        self.architectures = architectures
        self.projectDim = projectDim
        self.hasPreTransformation = hasPreTransformation
        self.poolerFn = poolerFn
    }

    /// The shape-defining fields are required; the rest default as in transformers' BertConfig.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        hiddenAct = try c.value(.hiddenAct, default: "gelu")
        maxPositionEmbeddings = try c.value(.maxPositionEmbeddings, default: 512)
        typeVocabSize = try c.value(.typeVocabSize, default: 2)
        layerNormEps = try c.value(.layerNormEps, default: 1e-12)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType)
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId)
            ?? (Self.usesPaddingAwarePositions(modelType) ? 1 : 0)
        positionEmbeddingType = try c.value(.positionEmbeddingType, default: "absolute")
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        projectDim = try c.decodeIfPresent(Int.self, forKey: .projectDim)
        hasPreTransformation = try c.value(.hasPreTransformation, default: false)
        poolerFn = try c.decodeIfPresent(String.self, forKey: .poolerFn)
    }

    /// RoBERTa-family models number positions from padding_idx + 1, skipping padding
    /// (transformers' create_position_ids_from_input_ids); BERT numbers them 0..<T.
    static func usesPaddingAwarePositions(_ modelType: String?) -> Bool {
        guard let modelType else { return false }
        return ["roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"].contains(modelType)
    }

    public var paddingAwarePositions: Bool { Self.usesPaddingAwarePositions(modelType) }

    /// The longest token sequence the position table allows.
    public var maxLength: Int {
        paddingAwarePositions ? maxPositionEmbeddings - (padTokenId ?? 1) - 1 : maxPositionEmbeddings
    }

    /// Every tensor BERTModel loads for this config (BertModel names), with its shape;
    /// `withPooler` adds `pooler.dense`.
    public func parameterShapes(withPooler: Bool = true) -> [String: [Int]] {
        let c = hiddenSize, i = intermediateSize
        var shapes: [String: [Int]] = [
            "embeddings.word_embeddings.weight": [vocabSize, c],
            "embeddings.position_embeddings.weight": [maxPositionEmbeddings, c],
            "embeddings.token_type_embeddings.weight": [typeVocabSize, c],
            "embeddings.LayerNorm.weight": [c], "embeddings.LayerNorm.bias": [c],
        ]
        for l in 0..<numHiddenLayers {
            let p = "encoder.layer.\(l)."
            for proj in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                shapes[p + proj + ".weight"] = [c, c]
                shapes[p + proj + ".bias"] = [c]
            }
            for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
                shapes[p + norm + ".weight"] = [c]
                shapes[p + norm + ".bias"] = [c]
            }
            shapes[p + "intermediate.dense.weight"] = [i, c]
            shapes[p + "intermediate.dense.bias"] = [i]
            shapes[p + "output.dense.weight"] = [c, i]
            shapes[p + "output.dense.bias"] = [c]
        }
        if withPooler {
            shapes["pooler.dense.weight"] = [c, c]
            shapes["pooler.dense.bias"] = [c]
        }
        return shapes
    }

    func validate(file: String) throws {
        for (field, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize),
                               ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                               ("intermediate_size", intermediateSize),
                               ("max_position_embeddings", maxPositionEmbeddings)] where value <= 0 {
            throw NetworksError.invalidConfig(file: file, reason: "\(field) must be positive, got \(value)")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw NetworksError.invalidConfig(
                file: file, reason: "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard positionEmbeddingType == "absolute" else {
            throw NetworksError.unsupportedArchitecture(file: file, name: "position_embedding_type=\(positionEmbeddingType)")
        }
        _ = try Activation.parse(hiddenAct, file: file)
    }
}
