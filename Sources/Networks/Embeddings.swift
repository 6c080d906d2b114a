// Timestep embeddings of the diffusers UNet (diffusers/models/embeddings.py): the sinusoidal
// get_timestep_embedding and TimestepEmbedding (linear, silu, linear).

import Foundation
import Kernels

/// get_timestep_embedding: for each value t, [sin(t f_i), cos(t f_i)] (or cos first when
/// `flipSinToCos`) with f_i = exp(-ln(10000) i / (half - shift)), i < half = dim / 2.
/// values: N scalars -> [N, dim]
public func timestepEmbedding(_ values: [Float], dim: Int, flipSinToCos: Bool, shift: Float) -> Tensor {
    let half = dim / 2
    let freqs = (0..<half).map { i -> Float in
        // torch computes the exponent in float32: -ln(10000) * i / (half - shift), then exp.
        let e = -Float(log(10000.0)) * Float(i) / (Float(half) - shift)
        return Foundation.exp(e)
    }
    return Tensor(shape: [values.count, dim]) { dst in
        for (n, t) in values.enumerated() {
            let row = n * dim
            for i in 0..<half {
                let a = t * freqs[i]
                let s = Foundation.sin(a), c = Foundation.cos(a)
                dst[row + i] = flipSinToCos ? c : s
                dst[row + half + i] = flipSinToCos ? s : c
            }
            if dim % 2 == 1 { dst[row + dim - 1] = 0 }
        }
    }
}

/// diffusers TimestepEmbedding: linear_1, silu, linear_2.
public struct TimestepMLP {
    public var linear1: LinearWeights
    public var linear2: LinearWeights
    /// LCM-distilled UNets (time_cond_proj_dim): `cond_proj`, no bias, adds a projected condition
    /// (the guidance-scale embedding) to the input (diffusers' TimestepEmbedding `cond_proj_dim`).
    public var condProj: LinearWeights?

    public init(_ store: WeightStore, _ prefix: String, in c: Int, out o: Int, condDim: Int? = nil) throws {
        linear1 = try LinearWeights(store, prefix + ".linear_1", out: o, in: c)
        linear2 = try LinearWeights(store, prefix + ".linear_2", out: o, in: o)
        condProj = try condDim.map { try LinearWeights(store, prefix + ".cond_proj", out: c, in: $0, bias: false) }
    }

    // x: [N, in], condition: [N, condDim] -> [N, out]
    public func callAsFunction(_ x: Tensor, condition: Tensor? = nil) -> Tensor {
        var x = x
        if let condProj, let condition { x = x + condProj(condition) }
        var h = linear1(x)
        siluInPlace(&h)
        return linear2(h)
    }
}

/// diffusers' TextTimeEmbedding (UNet2DConditionModel with `addition_embed_type: "text"`, as
/// Kandinsky and DeepFloyd IF): the text encoder's hidden states pooled by attention into one
/// vector that is added to the time embedding, so that every ResNet block sees the prompt.
///   h = LayerNorm_1(encoder_hidden_states)                    [B, T, D]
///   q = mean_T(h) + positional_embedding                      [B, 1, D]   (AttentionPooling)
///   pooled = MHA(q_proj(q), k_proj([q; h]), v_proj([q; h]))  [B, D], `heads` heads, scale 1/sqrt(D/heads)
///   out = LayerNorm_2(proj(pooled))                           [B, temb]
/// Keys: add_embedding.{norm1,norm2}.{weight,bias}, add_embedding.pool.positional_embedding [1, D],
/// add_embedding.pool.{q,k,v}_proj.{weight,bias}, add_embedding.proj.{weight,bias}.
public struct TextTimeEmbedding {
    public var norm1: LayerNormWeights
    public var positionalEmbedding: Tensor
    public var qProj: LinearWeights, kProj: LinearWeights, vProj: LinearWeights
    public var proj: LinearWeights
    public var norm2: LayerNormWeights
    public let heads: Int

    public init(_ store: WeightStore, _ prefix: String, encoderDim d: Int, timeEmbedDim temb: Int, heads: Int) throws {
        norm1 = try LayerNormWeights(store, prefix + ".norm1", dim: d, eps: 1e-5)
        positionalEmbedding = try store.take(prefix + ".pool.positional_embedding", shape: [1, d])
        qProj = try LinearWeights(store, prefix + ".pool.q_proj", out: d, in: d)
        kProj = try LinearWeights(store, prefix + ".pool.k_proj", out: d, in: d)
        vProj = try LinearWeights(store, prefix + ".pool.v_proj", out: d, in: d)
        proj = try LinearWeights(store, prefix + ".proj", out: temb, in: d)
        norm2 = try LayerNormWeights(store, prefix + ".norm2", dim: temb, eps: 1e-5)
        self.heads = heads
    }

    // encoderHiddenStates: [B, T, D] -> [B, temb]
    public func callAsFunction(_ encoderHiddenStates: Tensor) -> Tensor {
        let b = encoderHiddenStates.shape[0], d = encoderHiddenStates.shape[2]
        let h = norm1(encoderHiddenStates)                                             // [B, T, D]
        let classToken = mean(h, axis: 1, keepDims: true) + positionalEmbedding.reshaped([1, 1, d])   // [B, 1, D]
        let x = concat([classToken, h], axis: 1)                                       // [B, T + 1, D]
        let pooled = attention(query: qProj(classToken), key: kProj(x), value: vProj(x), heads: heads)  // [B, 1, D]
        return norm2(proj(pooled.reshaped([b, d])))
    }
}
