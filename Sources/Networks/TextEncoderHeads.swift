// Projection heads that map a BERT-family encoder to the UNet's cross-attention width (or to a
// CLIP embedding space):
//   - AltDiffusion's RobertaSeriesModelWithTransformation (diffusers, pipelines/deprecated/
//     alt_diffusion/modeling_roberta_series.py) and FlagAI's BertSeriesModelWithTransformation:
//     per token, projection_state = transformation(last_hidden_state), or with
//     has_pre_transformation = transformation_pre(pre_LN(hidden_states[-2])).
//   - M-CLIP's MultilingualCLIP (FreddeFrallan/Multilingual-CLIP): the attention-masked mean of the
//     last hidden state, then LinearTransformation -> text_embeds.
//   - transformers' VisionTextDualEncoderModel (a CLIP vision tower paired with a BERT or XLM-R text
//     tower, the form Japanese CLIP checkpoints take there): text_projection(pooler_output), where
//     pooler_output = tanh(pooler.dense(x[:, 0])).

import Foundation
import Kernels

public enum TextProjectionHead {
    /// Per token: `transformation` [P, C] on the last hidden state -> [B, T, P].
    case transformation(LinearWeights)
    /// Per token: `transformation_pre` on `pre_LN(hidden_states[-2])` -> [B, T, P]
    /// (`transformation` is loaded too, as the checkpoint holds it, but unused, as in diffusers).
    case preTransformation(layerNorm: LayerNormWeights, linear: LinearWeights, unused: LinearWeights)
    /// Pooled: masked mean over tokens, then `LinearTransformation` [P, C] -> [B, P].
    case maskedMeanLinear(LinearWeights)
    /// Pooled: the encoder's pooler output, then `text_projection` [P, C] (no bias) -> [B, P].
    case pooledLinear(LinearWeights)

    /// Loads the series head (`transformation*`, `pre_LN`) for an encoder of width `hidden`.
    static func series(_ store: WeightStore, hidden: Int, projectDim: Int, pre: Bool, eps: Float) throws -> TextProjectionHead {
        let post = try LinearWeights(store, "transformation", out: projectDim, in: hidden, packed: true)
        guard pre else { return .transformation(post) }
        return .preTransformation(
            layerNorm: try LayerNormWeights(store, "pre_LN", dim: hidden, eps: eps),
            linear: try LinearWeights(store, "transformation_pre", out: projectDim, in: hidden, packed: true),
            unused: post)
    }

    /// The width the head produces.
    public var outputDim: Int {
        switch self {
        case .transformation(let l), .maskedMeanLinear(let l), .pooledLinear(let l): return l.outFeatures
        case .preTransformation(_, let l, _): return l.outFeatures
        }
    }

    /// Adds the head's output to an encoder output (`projectionState` or `textEmbeds`).
    func apply(_ output: inout TextEncoderOutput, attentionMask: [[Int]]?) throws {
        switch self {
        case .transformation(let linear):
            output.projectionState = linear(output.lastHiddenState)              // [B, T, P]
        case .preTransformation(let norm, let linear, _):
            let penultimate = output.hiddenStates[output.hiddenStates.count - 2]
            output.projectionState = linear(norm(penultimate))                   // [B, T, P]
        case .maskedMeanLinear(let linear):
            output.textEmbeds = linear(maskedMean(output.lastHiddenState, attentionMask))   // [B, P]
        case .pooledLinear(let linear):
            guard let pooled = output.pooled else { throw NetworksError.missingKey("pooler.dense.weight") }
            output.textEmbeds = linear(pooled)                                   // [B, P]
        }
    }
}

/// sum_t x[b, t] * m[b, t] / sum_t m[b, t]. x: [B, T, C], mask: B rows of T (all ones when nil) -> [B, C].
func maskedMean(_ x: Tensor, _ mask: [[Int]]?) -> Tensor {
    let b = x.shape[0], t = x.shape[1], c = x.shape[2]
    return x.withUnsafeBufferPointer { src in
        Tensor(shape: [b, c]) { dst in
            for n in 0..<b {
                var weight: Float = 0
                for k in 0..<c { dst[n * c + k] = 0 }
                for i in 0..<t {
                    let m = Float(mask?[n][i] ?? 1)
                    guard m != 0 else { continue }
                    weight += m
                    for k in 0..<c { dst[n * c + k] += m * src[(n * t + i) * c + k] }
                }
                // An all-padding row divides by zero in the reference too; we leave it at zero.
                let scale = weight > 0 ? 1 / weight : 0
                for k in 0..<c { dst[n * c + k] *= scale }
            }
        }
    }
}
