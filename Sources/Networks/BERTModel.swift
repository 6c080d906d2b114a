// BERTModel: transformers' BertModel, and RobertaModel / XLMRobertaModel (the same encoder with
// padding-aware position ids). The encoder of MeCab+WordPiece Japanese BERTs and of the
// multilingual (AltDiffusion, M-CLIP) text encoders.
//
// Forward (transformers.models.bert.modeling_bert):
//   x = LN(word[ids] + position[pos] + token_type[types])
//       pos = 0..<T (BERT) or cumsum(ids != pad) * (ids != pad) + pad (RoBERTa, XLM-R)
//   each layer (post-LN): x = LN1(x + dense(attn(x, padding mask)));  x = LN2(x + out(act(inter(x))))
//   pooler_output = tanh(pooler.dense(x[:, 0]))

import Foundation
import Kernels

public struct BERTModel {
    struct Layer {
        var attention: SelfAttentionWeights
        var attentionLayerNorm: LayerNormWeights
        var intermediate: LinearWeights
        var output: LinearWeights
        var outputLayerNorm: LayerNormWeights
    }

    public let config: BERTConfig
    let activation: Activation
    var wordEmbeddings: Tensor        // [V, C]
    var positionEmbeddings: Tensor    // [P, C]
    var tokenTypeEmbeddings: Tensor   // [types, C]
    var embeddingLayerNorm: LayerNormWeights
    var layers: [Layer]
    /// `pooler.dense`; nil when the checkpoint has no pooler (add_pooling_layer=False).
    var pooler: LinearWeights?

    /// Loads from a store keyed by BertModel's names (`embeddings.*`, `encoder.layer.N.*`,
    /// `pooler.*`; see `BERTKeyMap` for prefixed checkpoints).
    public init(config: BERTConfig, weights store: WeightStore, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        activation = try Activation.parse(config.hiddenAct, file: file)
        let c = config.hiddenSize, eps = config.layerNormEps
        wordEmbeddings = try store.take("embeddings.word_embeddings.weight", shape: [config.vocabSize, c])
        positionEmbeddings = try store.take(
            "embeddings.position_embeddings.weight", shape: [config.maxPositionEmbeddings, c])
        tokenTypeEmbeddings = try store.take(
            "embeddings.token_type_embeddings.weight", shape: [config.typeVocabSize, c])
        embeddingLayerNorm = try LayerNormWeights(store, "embeddings.LayerNorm", dim: c, eps: eps)
        layers = try (0..<config.numHiddenLayers).map { i in
            let p = "encoder.layer.\(i)."
            return Layer(
                attention: SelfAttentionWeights(
                    query: try LinearWeights(store, p + "attention.self.query", out: c, in: c, packed: true),
                    key: try LinearWeights(store, p + "attention.self.key", out: c, in: c, packed: true),
                    value: try LinearWeights(store, p + "attention.self.value", out: c, in: c, packed: true),
                    out: try LinearWeights(store, p + "attention.output.dense", out: c, in: c, packed: true),
                    heads: config.numAttentionHeads),
                attentionLayerNorm: try LayerNormWeights(store, p + "attention.output.LayerNorm", dim: c, eps: eps),
                intermediate: try LinearWeights(store, p + "intermediate.dense", out: config.intermediateSize, in: c, packed: true),
                output: try LinearWeights(store, p + "output.dense", out: c, in: config.intermediateSize, packed: true),
                outputLayerNorm: try LayerNormWeights(store, p + "output.LayerNorm", dim: c, eps: eps))
        }
        if store.contains("pooler.dense.weight") {
            pooler = try LinearWeights(store, "pooler.dense", out: c, in: c, packed: true)
        }
    }

    public var maxLength: Int { config.maxLength }

    /// Runs the encoder. ids: B rows of T ids; attentionMask: 0/1 per token (all ones when nil);
    /// tokenTypeIds: segment per token (zeros when nil).
    public func callAsFunction(ids: [[Int]], attentionMask: [[Int]]? = nil,
                               tokenTypeIds: [[Int]]? = nil) throws -> TextEncoderOutput {
        let name = config.paddingAwarePositions ? "RobertaModel" : "BertModel"
        try validateIds(ids, vocabSize: config.vocabSize, maxLength: maxLength, model: name)
        try validateCompanion(attentionMask, like: ids, name: "attention_mask", model: name)
        try validateCompanion(tokenTypeIds, like: ids, name: "token_type_ids", model: name)
        if let types = tokenTypeIds, let bad = types.joined().first(where: { $0 < 0 || $0 >= config.typeVocabSize }) {
            throw NetworksError.invalidInput("\(name): token type \(bad) outside type_vocab_size \(config.typeVocabSize)")
        }
        let b = ids.count, t = ids[0].count

        // x: [B, T, C]
        let positions = positionIds(ids)
        let types = tokenTypeIds ?? Array(repeating: Array(repeating: 0, count: t), count: b)
        var x = embedding(wordEmbeddings, ids: ids) + embedding(positionEmbeddings, ids: positions)
            + embedding(tokenTypeEmbeddings, ids: types)
        x = embeddingLayerNorm(x)
        let mask = attentionMask.map(paddingMask)                      // [B, 1, T] or none
        var hiddenStates = [x]
        for layer in layers {
            x = layer.attentionLayerNorm(x + layer.attention(x, mask: mask))
            x = layer.outputLayerNorm(x + layer.output(activation(layer.intermediate(x))))
            hiddenStates.append(x)
        }
        // pooler_output: [B, C]
        let pooled = pooler.map { dense in
            mapElements(dense(gatherRows(x, Array(repeating: 0, count: b)))) { Foundation.tanh($0) }
        }
        return TextEncoderOutput(hiddenStates: hiddenStates, lastHiddenState: x, pooled: pooled)
    }

    /// BERT: 0..<T. RoBERTa/XLM-R (create_position_ids_from_input_ids): a running count of the
    /// non-padding tokens, offset by padding_idx; padding tokens get padding_idx itself.
    func positionIds(_ ids: [[Int]]) -> [[Int]] {
        guard config.paddingAwarePositions else {
            return ids.map { Array(0..<$0.count) }
        }
        let pad = config.padTokenId ?? 1
        return ids.map { row in
            var count = 0
            return row.map { id in
                guard id != pad else { return pad }
                count += 1
                return count + pad
            }
        }
    }
}
