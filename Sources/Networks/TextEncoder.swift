// TextEncoder: one entry point for every text encoder a pipeline can meet, loaded from a
// transformers/diffusers folder (config.json names the architecture) or from the text-encoder part
// of a single-file SD1/SD2/SDXL checkpoint.
//
//   architectures (config.json)                      body    head
//   CLIPTextModel, CLIPTextModelWithProjection       CLIP    text_projection (pooled)
//   CLIPModel (text tower of a full CLIP folder)     CLIP    text_projection (pooled)
//   BertModel, BertForMaskedLM, BertForPreTraining   BERT    -
//   RobertaModel, XLMRobertaModel (+ ForMaskedLM)    RoBERTa -
//   BertSeriesModelWithTransformation                BERT    transformation (per token)  <- demo world
//   RobertaSeriesModelWithTransformation             XLM-R   transformation (per token)  AltDiffusion
//   MultilingualCLIP (M-CLIP)                        XLM-R/BERT  LinearTransformation (masked mean)

import Foundation
import Kernels

/// Everything a forward pass yields; which fields are set depends on the model.
public struct TextEncoderOutput {
    /// The embeddings' output, then each layer's output: numHiddenLayers + 1 tensors [B, T, C]
    /// (transformers' `hidden_states`; for CLIP, before the final layer norm).
    public var hiddenStates: [Tensor]
    /// [B, T, C]: CLIP after final_layer_norm; BERT-family the last layer's output.
    public var lastHiddenState: Tensor
    /// [B, C]: CLIP at the end-of-text token (after the final layer norm); BERT the tanh pooler.
    public var pooled: Tensor?
    /// [B, P]: CLIP's text_projection(pooled) (`text_embeds`); M-CLIP's projected masked mean.
    public var textEmbeds: Tensor?
    /// [B, T, P]: AltDiffusion-style per-token projection (`projection_state`).
    public var projectionState: Tensor?

    public init(hiddenStates: [Tensor], lastHiddenState: Tensor, pooled: Tensor? = nil,
                textEmbeds: Tensor? = nil, projectionState: Tensor? = nil) {
        self.hiddenStates = hiddenStates
        self.lastHiddenState = lastHiddenState
        self.pooled = pooled
        self.textEmbeds = textEmbeds
        self.projectionState = projectionState
    }

    /// The sequence a UNet attends to by default: the per-token projection when the model has
    /// one, else the last hidden state (SD1). SD2/SDXL pipelines take `hiddenState(fromEnd: 2)`.
    public var crossAttentionStates: Tensor { projectionState ?? lastHiddenState }

    /// hidden_states[-k]: k = 1 is the last layer's output, k = 2 the penultimate ("clip skip").
    public func hiddenState(fromEnd k: Int) throws -> Tensor {
        guard k >= 1, k <= hiddenStates.count else {
            throw NetworksError.invalidInput("hidden state \(k) from the end of \(hiddenStates.count)")
        }
        return hiddenStates[hiddenStates.count - k]
    }
}

public struct TextEncoder {
    public enum Body {
        case clip(CLIPTextModel)
        case bert(BERTModel)
    }

    /// The architecture name it was loaded as (config.json's, or the checkpoint part's).
    public let architecture: String
    public let body: Body
    public let head: TextProjectionHead?

    public init(architecture: String, body: Body, head: TextProjectionHead?) {
        self.architecture = architecture
        self.body = body
        self.head = head
    }

    public var maxLength: Int {
        switch body {
        case .clip(let m): return m.maxLength
        case .bert(let m): return m.maxLength
        }
    }

    /// The encoder's own width C.
    public var hiddenSize: Int {
        switch body {
        case .clip(let m): return m.config.hiddenSize
        case .bert(let m): return m.config.hiddenSize
        }
    }

    /// The width of `crossAttentionStates`.
    public var crossAttentionDim: Int {
        if let head, case .maskedMeanLinear = head { return hiddenSize }
        return head?.outputDim ?? hiddenSize
    }

    /// Encodes a batch. ids: B rows of T token ids (already padded to one length); attentionMask:
    /// 0/1 per token (BERT-family: padding is masked; CLIP: combined with the causal mask, and
    /// SD pipelines pass none); tokenTypeIds: BERT segments (zeros when nil).
    public func callAsFunction(ids: [[Int]], attentionMask: [[Int]]? = nil,
                               tokenTypeIds: [[Int]]? = nil) throws -> TextEncoderOutput {
        var output: TextEncoderOutput
        switch body {
        case .clip(let model):
            output = try model(ids: ids, attentionMask: attentionMask)
        case .bert(let model):
            output = try model(ids: ids, attentionMask: attentionMask, tokenTypeIds: tokenTypeIds)
        }
        try head?.apply(&output, attentionMask: attentionMask)
        return output
    }

    // MARK: Loading a folder

    /// Loads a transformers/diffusers text-encoder folder (config.json + model.safetensors, or
    /// shards with an index). Strict: every tensor must be used unless `allowUnused`.
    /// `adjust` may replace the file's tensors before loading (e.g. LoRA-fused weights under the file's names).
    public static func load(folder: URL, variant: String? = nil, allowUnused: Bool = false,
                            adjust: ((WeightStore) throws -> WeightStore)? = nil) throws -> TextEncoder {
        let configURL = folder.appendingPathComponent("config.json")
        let file = configURL.path
        let probe = try loadConfig(ArchitectureProbe.self, from: configURL)
        var raw = try WeightStore(folder: folder, variant: variant)
        if let adjust { raw = try adjust(raw) }
        let architecture = probe.architectures?.first ?? probe.modelType ?? "?"

        let encoder: TextEncoder
        let store: WeightStore
        switch architecture {
        case "CLIPTextModel", "CLIPTextModelWithProjection", "clip_text_model":
            let config = try loadConfig(CLIPTextConfig.self, from: configURL)
            store = try CLIPTextKeyMap.transformers(raw)
            encoder = TextEncoder(architecture: architecture,
                                  body: .clip(try CLIPTextModel(config: config, weights: store, file: file)), head: nil)
        case "CLIPModel", "clip":
            let config = try loadConfig(NestedTextConfig.self, from: configURL).textConfig
            // The text tower and its projection; the vision tower is another model's business.
            store = try CLIPTextKeyMap.transformers(try raw.renamed { name in
                name.hasPrefix("text_model.") || name == "text_projection.weight" ? name : nil
            })
            var textConfig = config
            if let projection = raw.shape(of: "text_projection.weight")?.first { textConfig.projectionDim = projection }
            encoder = TextEncoder(architecture: architecture,
                                  body: .clip(try CLIPTextModel(config: textConfig, weights: store, file: file)), head: nil)
        case "MultilingualCLIP", "M-CLIP":
            let mclip = try loadConfig(MCLIPConfig.self, from: configURL)
            store = try BERTKeyMap.transformers(raw, basePrefix: "transformer.")
            let bert = try BERTModel(config: mclip.transformerConfig, weights: store, file: file)
            let linear = try LinearWeights(store, "LinearTransformation", out: mclip.numDims,
                                           in: mclip.transformerConfig.hiddenSize)
            encoder = TextEncoder(architecture: architecture, body: .bert(bert), head: .maskedMeanLinear(linear))
        case "VisionTextDualEncoderModel", "vision-text-dual-encoder":
            // The text tower (text_model.*, BERT or XLM-R with its pooler) and text_projection.
            let config = try loadConfig(NestedBERTConfig.self, from: configURL).textConfig
            guard bertFamily(config.modelType ?? "") != nil else {
                throw NetworksError.unsupportedArchitecture(file: file, name: "text_config.model_type \(config.modelType ?? "nil")")
            }
            store = try BERTKeyMap.transformers(try raw.renamed { name in
                if name.hasPrefix("text_model.") { return String(name.dropFirst("text_model.".count)) }
                return name == "text_projection.weight" ? name : nil
            }, basePrefix: nil)
            let bert = try BERTModel(config: config, weights: store, file: file)
            guard bert.pooler != nil else { throw NetworksError.missingKey("text_model.pooler.dense.weight (in \(file))") }
            guard let projectionDim = raw.shape(of: "text_projection.weight")?.first else {
                throw NetworksError.missingKey("text_projection.weight")
            }
            let projection = try LinearWeights(store, "text_projection", out: projectionDim, in: config.hiddenSize, bias: false, packed: true)
            encoder = TextEncoder(architecture: architecture, body: .bert(bert), head: .pooledLinear(projection))
        default:
            guard let family = bertFamily(architecture) else {
                throw NetworksError.unsupportedArchitecture(file: file, name: architecture)
            }
            let config = try loadConfig(BERTConfig.self, from: configURL)
            let base = BERTKeyMap.detectBasePrefix(raw, candidates: [family.prefix, "bert.", "roberta."])
            store = try BERTKeyMap.transformers(raw, basePrefix: base)
            let bert = try BERTModel(config: config, weights: store, file: file)
            var head: TextProjectionHead?
            if family.series {
                guard let projectDim = config.projectDim else {
                    throw NetworksError.missingConfigField(file: file, field: "project_dim")
                }
                head = try TextProjectionHead.series(
                    store, hidden: config.hiddenSize, projectDim: projectDim,
                    pre: config.hasPreTransformation, eps: config.layerNormEps)
            }
            encoder = TextEncoder(architecture: architecture, body: .bert(bert), head: head)
        }
        try store.finish(allowUnused: allowUnused)
        return encoder
    }

    /// BERT-family architecture names -> (the prefix their checkpoints use, has a series head).
    static func bertFamily(_ name: String) -> (prefix: String, series: Bool)? {
        switch name {
        case "BertModel", "BertForMaskedLM", "BertForPreTraining", "bert": return ("bert.", false)
        case "RobertaModel", "XLMRobertaModel", "RobertaForMaskedLM", "XLMRobertaForMaskedLM",
             "roberta", "xlm-roberta": return ("roberta.", false)
        case "BertSeriesModelWithTransformation": return ("bert.", true)
        case "RobertaSeriesModelWithTransformation": return ("roberta.", true)
        default: return nil
        }
    }

    // MARK: Loading from a single-file checkpoint

    /// Loads one text encoder of a single-file SD/SDXL checkpoint. `config` defaults to the
    /// weights' own shapes (heads of width 64, quick_gelu for CLIP-L layouts, gelu for OpenCLIP).
    /// When `config` has fewer layers than the file (diffusers' SD2 text encoder keeps 23 of
    /// OpenCLIP-H's 24 blocks), the extra blocks are skipped. Only this part's tensors are
    /// accounted for: the UNet and VAE tensors of the same file are left to their loaders.
    public static func load(checkpoint: WeightStore, part: CheckpointTextEncoder, config: CLIPTextConfig? = nil,
                            allowUnused: Bool = false) throws -> TextEncoder {
        let store = try CLIPTextKeyMap.checkpoint(checkpoint, part: part)
        let resolved = try config ?? CLIPTextConfig.inferred(
            from: store, activation: part.isOpenCLIP ? "gelu" : "quick_gelu")
        if part.isOpenCLIP {
            store.ignore { name in
                guard name.hasPrefix("encoder.layers.") else { return false }
                let index = name.dropFirst("encoder.layers.".count).prefix { $0.isNumber }
                return (Int(index) ?? 0) >= resolved.numHiddenLayers
            }
        }
        let model = try CLIPTextModel(config: resolved, weights: store, file: checkpoint.origin)
        try store.finish(allowUnused: allowUnused)
        return TextEncoder(architecture: "\(part)", body: .clip(model), head: nil)
    }

    /// Opens a single-file checkpoint and loads one of its text encoders.
    public static func load(checkpoint url: URL, part: CheckpointTextEncoder, config: CLIPTextConfig? = nil,
                            allowUnused: Bool = false) throws -> TextEncoder {
        try load(checkpoint: try WeightStore(file: url), part: part, config: config, allowUnused: allowUnused)
    }
}

/// The fields that tell which model a config.json describes.
struct ArchitectureProbe: Decodable {
    let architectures: [String]?
    let modelType: String?

    enum CodingKeys: String, CodingKey {
        case architectures
        case modelType = "model_type"
    }
}

/// A full CLIPModel config.json: the text tower's config is nested.
struct NestedTextConfig: Decodable {
    let textConfig: CLIPTextConfig
    enum CodingKeys: String, CodingKey { case textConfig = "text_config" }
}

/// A VisionTextDualEncoderModel config.json: the BERT-family text tower's config is nested.
struct NestedBERTConfig: Decodable {
    let textConfig: BERTConfig
    enum CodingKeys: String, CodingKey { case textConfig = "text_config" }
}

/// M-CLIP's config.json: `numDims` (output width) and the encoder's config, nested as
/// `transformer_config` (the original names only `modelBase`, a hub id we cannot download).
struct MCLIPConfig: Decodable {
    let numDims: Int
    let transformerConfig: BERTConfig
    enum CodingKeys: String, CodingKey {
        case numDims
        case transformerConfig = "transformer_config"
    }
}
