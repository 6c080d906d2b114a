// The attention part of the diffusers UNet: Transformer2DModel (continuous input, conv or linear
// projection), BasicTransformerBlock (self-attention, cross-attention, GEGLU feed-forward) and the
// Attention module's to_q/to_k/to_v/to_out (diffusers/models/transformers/transformer_2d.py,
// diffusers/models/attention.py). Attention runs through the chunked Kernels attention.

import Foundation
import Kernels

/// diffusers Attention without norms: q from x, k/v from the context (or x), output projection.
public struct AttentionWeights {
    /// q, k and v: for self-attention one projection [3 * inner, C] (diffusers' fuse_qkv_projections:
    /// one product, its input packed once, instead of three), else three.
    enum Projections {
        case fused(LinearWeights)
        case separate(q: LinearWeights, k: LinearWeights, v: LinearWeights)
    }
    var projections: Projections
    public var toOut: LinearWeights
    public var heads: Int

    /// Weights [inner, C] and biases [inner] (or nil) of q, k and v; fused into one projection where
    /// `selfAttention` (k and v then read x, never a context).
    public init(q: (weight: Tensor, bias: Tensor?), k: (weight: Tensor, bias: Tensor?), v: (weight: Tensor, bias: Tensor?),
                toOut: LinearWeights, heads: Int, selfAttention: Bool) {
        if selfAttention {
            let biases = [q.bias, k.bias, v.bias].compactMap { $0 }
            precondition(biases.isEmpty || biases.count == 3, "AttentionWeights: q, k and v must all have biases or none")
            projections = .fused(LinearWeights(stacking: [q.weight, k.weight, v.weight],
                                               bias: biases.isEmpty ? nil : concat(biases, axis: 0)))
        } else {
            projections = .separate(q: LinearWeights(weight: q.weight, bias: q.bias),
                                    k: LinearWeights(weight: k.weight, bias: k.bias),
                                    v: LinearWeights(weight: v.weight, bias: v.bias))
        }
        self.toOut = toOut
        self.heads = heads
    }

    /// `qkvBias`: false in the UNet (diffusers default), true in the VAE's mid-block attention.
    /// Self-attention where `contextDim` is nil.
    public init(_ store: WeightStore, _ prefix: String, queryDim: Int, contextDim: Int?, heads: Int,
                innerDim: Int, qkvBias: Bool) throws {
        func take(_ name: String, in width: Int) throws -> (weight: Tensor, bias: Tensor?) {
            (try store.take(prefix + name + ".weight", shape: [innerDim, width]),
             qkvBias ? try store.take(prefix + name + ".bias", shape: [innerDim]) : nil)
        }
        let kv = contextDim ?? queryDim
        self.init(q: try take(".to_q", in: queryDim), k: try take(".to_k", in: kv), v: try take(".to_v", in: kv),
                  toOut: try LinearWeights(store, prefix + ".to_out.0", out: queryDim, in: innerDim), heads: heads,
                  selfAttention: contextDim == nil)
    }

    // x: [B, T, C], context: [B, S, Cc] or nil (self-attention) -> [B, T, C]
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil) -> Tensor {
        toOut(headOutputs(x, context: context))
    }

    /// residual += self(x, context), the addition fused into the output projection. residual: [B, T, C].
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil, addingTo residual: inout Tensor) {
        toOut(headOutputs(x, context: context), addingTo: &residual)
    }

    /// The heads' outputs before the output projection: [B, T, inner].
    private func headOutputs(_ x: Tensor, context: Tensor?) -> Tensor {
        switch projections {
        case .fused(let qkv):
            precondition(context == nil, "AttentionWeights: self-attention weights called with a context")
            return attention(qkv: qkv(x), heads: heads)
        case .separate(let q, let k, let v):
            let ctx = context ?? x
            return attention(query: q(x), key: k(ctx), value: v(ctx), heads: heads)
        }
    }
}

/// diffusers BasicTransformerBlock (norm_type "layer_norm", GEGLU feed-forward, mult 4):
/// x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x)).
public struct BasicTransformerBlock {
    public var norm1: LayerNormWeights
    public var attn1: AttentionWeights
    public var norm2: LayerNormWeights
    public var attn2: AttentionWeights
    public var norm3: LayerNormWeights
    public var ffIn: LinearWeights      // ff.net.0.proj: [2 * 4 * dim, dim] (GEGLU halves)
    public var ffOut: LinearWeights     // ff.net.2: [dim, 4 * dim]

    public init(_ store: WeightStore, _ prefix: String, dim: Int, heads: Int, contextDim: Int) throws {
        norm1 = try LayerNormWeights(store, prefix + ".norm1", dim: dim, eps: 1e-5)
        attn1 = try AttentionWeights(store, prefix + ".attn1", queryDim: dim, contextDim: nil, heads: heads,
                                     innerDim: dim, qkvBias: false)
        norm2 = try LayerNormWeights(store, prefix + ".norm2", dim: dim, eps: 1e-5)
        attn2 = try AttentionWeights(store, prefix + ".attn2", queryDim: dim, contextDim: contextDim, heads: heads,
                                     innerDim: dim, qkvBias: false)
        norm3 = try LayerNormWeights(store, prefix + ".norm3", dim: dim, eps: 1e-5)
        ffIn = try LinearWeights(store, prefix + ".ff.net.0.proj", out: dim * 8, in: dim)
        ffOut = try LinearWeights(store, prefix + ".ff.net.2", out: dim, in: dim * 4)
    }

    // x: [B, T, dim], context: [B, S, Cc] -> [B, T, dim]. Each residual addition is fused into the
    // product before it; x is consumed, so that, when the caller passes its last copy, the block adds
    // into x's storage without copying it.
    public func callAsFunction(_ x: consuming Tensor, context: Tensor) -> Tensor {
        var h = x
        attn1(norm1(h), addingTo: &h)
        attn2(norm2(h), context: context, addingTo: &h)
        let normed = norm3(h)
        // The GEGLU output straight in the packed form of the output projection's input where both
        // weights are kept packed (AVX-512).
        if ffOut.isGemmPacked, let rows = ffIn.gegluPacked(normed) {
            ffOut(rows, addingTo: &h)
            rows.release()
        } else {
            ffOut(ffIn.geglu(normed), addingTo: &h)
        }
        return h
    }
}

/// diffusers Transformer2DModel for continuous inputs: GroupNorm (eps 1e-6), proj_in (1x1 conv or
/// linear), transformer blocks over the H*W tokens, proj_out, plus the input as residual.
public struct Transformer2D {
    public var norm: GroupNormWeights
    public var projInConv: Conv2dWeights?
    public var projInLinear: LinearWeights?
    public var blocks: [BasicTransformerBlock]
    public var projOutConv: Conv2dWeights?
    public var projOutLinear: LinearWeights?

    public init(_ store: WeightStore, _ prefix: String, channels: Int, heads: Int, layers: Int,
                contextDim: Int, groups: Int, linearProjection: Bool) throws {
        norm = try GroupNormWeights(store, prefix + ".norm", channels: channels, groups: groups, eps: 1e-6)
        if linearProjection {
            projInLinear = try LinearWeights(store, prefix + ".proj_in", out: channels, in: channels)
        } else {
            projInConv = try Conv2dWeights(store, prefix + ".proj_in", in: channels, out: channels, kernel: 1)
        }
        blocks = try (0..<layers).map {
            try BasicTransformerBlock(store, prefix + ".transformer_blocks.\($0)", dim: channels, heads: heads,
                                      contextDim: contextDim)
        }
        if linearProjection {
            projOutLinear = try LinearWeights(store, prefix + ".proj_out", out: channels, in: channels)
        } else {
            projOutConv = try Conv2dWeights(store, prefix + ".proj_out", in: channels, out: channels, kernel: 1)
        }
    }

    // x: [B, C, H, W], context: [B, S, Cc] -> [B, C, H, W]
    public func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[1], hgt = x.shape[2], wid = x.shape[3]
        var h = norm(x)
        if let conv = projInConv { h = conv(h) }
        h = permute(h.reshaped([b, c, hgt * wid]), [0, 2, 1])        // [B, HW, C]
        if let lin = projInLinear { h = lin(h) }
        for block in blocks { h = block(consume h, context: context) }
        if let lin = projOutLinear {
            return transposeLastTwo(lin(h), adding: x.reshaped([b, c, hgt * wid])).reshaped([b, c, hgt, wid])
        }
        h = permute(h, [0, 2, 1]).reshaped([b, c, hgt, wid])         // [B, C, H, W]
        if let conv = projOutConv { h = conv(h) }
        h += x
        return h
    }
}
