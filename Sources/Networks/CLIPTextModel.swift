// CLIPTextModel: the CLIP text transformer of transformers (CLIPTextTransformer, with the optional
// text projection of CLIPTextModelWithProjection). SD1 uses CLIP-L's last hidden state, SD2 and
// SDXL the penultimate layer; `TextEncoderOutput.hiddenStates` holds every layer for "clip skip".
//
// Forward (transformers.models.clip.modeling_clip):
//   x = token_embedding[ids] + position_embedding[0..<T]
//   each layer (pre-LN): x += attn(LN1(x), causal [+ padding] mask);  x += fc2(act(fc1(LN2(x))))
//   last_hidden_state = final_layer_norm(x)
//   pooled = last_hidden_state at the end-of-text position; text_embeds = text_projection(pooled)

import Foundation
import Kernels

public struct CLIPTextModel {
    struct Layer {
        var layerNorm1: LayerNormWeights
        var attention: SelfAttentionWeights
        var layerNorm2: LayerNormWeights
        var fc1: LinearWeights
        var fc2: LinearWeights
    }

    public let config: CLIPTextConfig
    let activation: Activation
    var tokenEmbedding: Tensor        // [V, C]
    var positionEmbedding: Tensor     // [P, C]
    var layers: [Layer]
    var finalLayerNorm: LayerNormWeights
    /// `text_projection` (no bias) of CLIPTextModelWithProjection; nil for a plain CLIPTextModel.
    public private(set) var textProjection: LinearWeights?

    /// Loads from a store keyed by transformers' CLIP text names without the `text_model.` prefix
    /// (see `CLIPTextKeyMap`). `text_projection.weight` is loaded when present.
    public init(config: CLIPTextConfig, weights store: WeightStore, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        activation = try Activation.parse(config.hiddenAct, file: file)
        let c = config.hiddenSize, eps = config.layerNormEps
        tokenEmbedding = try store.take("embeddings.token_embedding.weight", shape: [config.vocabSize, c])
        positionEmbedding = try store.take(
            "embeddings.position_embedding.weight", shape: [config.maxPositionEmbeddings, c])
        layers = try (0..<config.numHiddenLayers).map { i in
            let p = "encoder.layers.\(i)."
            return Layer(
                layerNorm1: try LayerNormWeights(store, p + "layer_norm1", dim: c, eps: eps),
                attention: SelfAttentionWeights(
                    query: try LinearWeights(store, p + "self_attn.q_proj", out: c, in: c, packed: true),
                    key: try LinearWeights(store, p + "self_attn.k_proj", out: c, in: c, packed: true),
                    value: try LinearWeights(store, p + "self_attn.v_proj", out: c, in: c, packed: true),
                    out: try LinearWeights(store, p + "self_attn.out_proj", out: c, in: c, packed: true),
                    heads: config.numAttentionHeads),
                layerNorm2: try LayerNormWeights(store, p + "layer_norm2", dim: c, eps: eps),
                fc1: try LinearWeights(store, p + "mlp.fc1", out: config.intermediateSize, in: c, packed: true),
                fc2: try LinearWeights(store, p + "mlp.fc2", out: c, in: config.intermediateSize, packed: true))
        }
        finalLayerNorm = try LayerNormWeights(store, "final_layer_norm", dim: c, eps: eps)
        if store.contains("text_projection.weight") {
            textProjection = try LinearWeights(store, "text_projection", out: config.projectionDim, in: c, bias: false, packed: true)
        }
    }

    /// The longest token sequence the position table allows (77 for every SD encoder).
    public var maxLength: Int { config.maxPositionEmbeddings }

    /// Runs the text transformer. ids: B rows of T token ids; attentionMask (optional): B rows of T
    /// 0/1 values, combined with the causal mask as transformers does when one is passed.
    public func callAsFunction(ids: [[Int]], attentionMask: [[Int]]? = nil) throws -> TextEncoderOutput {
        try validateIds(ids, vocabSize: config.vocabSize, maxLength: maxLength, model: "CLIPTextModel")
        try validateCompanion(attentionMask, like: ids, name: "attention_mask", model: "CLIPTextModel")
        let t = ids[0].count

        // x: [B, T, C]
        var x = embedding(tokenEmbedding, ids: ids) + positionRows(t)
        let mask = attentionMask.map(causalPaddingMask) ?? causalMask(length: t)   // [1|B, T, T]
        var hiddenStates = [x]
        for layer in layers {
            x = x + layer.attention(layer.layerNorm1(x), mask: mask)
            x = x + layer.fc2(activation(layer.fc1(layer.layerNorm2(x))))
            hiddenStates.append(x)
        }
        let last = finalLayerNorm(x)                                      // [B, T, C]
        let pooled = gatherRows(last, ids.map(endOfTextPosition))        // [B, C]
        return TextEncoderOutput(
            hiddenStates: hiddenStates, lastHiddenState: last, pooled: pooled,
            textEmbeds: textProjection.map { $0(pooled) })               // [B, projection_dim]
    }

    /// The final layer norm, for callers that take an earlier hidden state and normalise it
    /// (diffusers' SD1 pipelines with clip_skip).
    public func applyFinalLayerNorm(_ x: Tensor) -> Tensor { finalLayerNorm(x) }

    /// Where transformers pools: configs with the legacy eos_token_id == 2 take argmax(ids) (the
    /// end token has the largest id in CLIP's vocabulary); others take the first id == eos_token_id.
    func endOfTextPosition(_ row: [Int]) -> Int {
        let eos = config.eosTokenId ?? 49407
        if eos == 2 {
            var best = 0
            for (i, id) in row.enumerated() where id > row[best] { best = i }
            return best
        }
        return row.firstIndex(of: eos) ?? 0    // torch argmax of an all-false row is 0
    }

    // [1, T, C]: the first T rows of the position table.
    func positionRows(_ t: Int) -> Tensor {
        let c = config.hiddenSize
        return positionEmbedding.withUnsafeBufferPointer { src in
            Tensor(shape: [1, t, c]) { dst in
                for i in 0..<(t * c) { dst[i] = src[i] }
            }
        }
    }
}
