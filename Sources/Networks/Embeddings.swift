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
