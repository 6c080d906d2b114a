// Building blocks shared by the text encoders (CLIP text, BERT, RoBERTa/XLM-R): linear and
// layer-norm weights loaded from a WeightStore, the activations config.json can name, multi-head
// self-attention over [B, T, C] and the additive masks (causal, padding) it takes.
//
// Weights are looked up by the transformers names (after the key maps of TextEncoderKeyMap.swift).

import Foundation
import Kernels

/// A `torch.nn.Linear`: weight [out, in] (PyTorch layout), optional bias [out]. Layers that run on
/// few rows (text encoders, the CLIP vision tower) keep the weight packed for the small-batch
/// kernel (Kernels/PackedLinear.swift); the others, with the AVX-512 sgemm, keep it in that
/// product's own B panels (packed once at load, not on every call), else as loaded for sgemm.
public struct LinearWeights {
    enum Storage {
        case plain(Tensor)
        case packed(PackedLinearWeight)
        case gemmPacked(GemmPackedWeight)
    }
    let storage: Storage
    public var bias: Tensor?

    /// Smallest weight (elements) kept in the AVX-512 sgemm's B panels; smaller ones stay as they are.
    private static let gemmPackedMinimum = 4096

    /// `packed`: for few rows (text encoders), the small-product kernel's layout. Otherwise, with the
    /// AVX-512 sgemm and a weight of 4096 elements or more, its own B panels (`GemmPackedWeight`: no
    /// packing per call), else the weight as it is.
    public init(weight: Tensor, bias: Tensor?, packed: Bool = false) {
        if packed {
            storage = .packed(PackedLinearWeight(weight))
        } else if weight.count >= Self.gemmPackedMinimum, let gemm = GemmPackedWeight(weight) {
            storage = .gemmPacked(gemm)
        } else {
            storage = .plain(weight)
        }
        self.bias = bias
    }

    /// Weights [out_i, in] stacked into one layer (a self-attention's q, k and v) with `bias` [sum of out_i]
    /// or nil. With the AVX-512 sgemm the parts are packed where they lie (every part but the last a
    /// multiple of 32 rows); otherwise they are concatenated.
    public init(stacking weights: [Tensor], bias: Tensor?) {
        let total = weights.reduce(0) { $0 + $1.count }
        if total >= Self.gemmPackedMinimum, weights.dropLast().allSatisfy({ $0.shape[0] % 32 == 0 }),
           let gemm = GemmPackedWeight(stacking: weights) {
            self.init(storage: .gemmPacked(gemm), bias: bias)
        } else {
            self.init(weight: concat(weights, axis: 0), bias: bias)
        }
    }

    private init(storage: Storage, bias: Tensor?) {
        self.storage = storage
        self.bias = bias
    }

    /// Loads `<prefix>.weight` [out, in] and `<prefix>.bias` [out] (the bias when `bias` is true).
    public init(_ store: WeightStore, _ prefix: String, out: Int, in inFeatures: Int, bias: Bool = true,
                packed: Bool = false) throws {
        let weight = try store.take(prefix + ".weight", shape: [out, inFeatures])
        self.init(weight: weight, bias: bias ? try store.take(prefix + ".bias", shape: [out]) : nil, packed: packed)
    }

    /// The weight [out, in] (a copy when it is kept packed).
    public var weight: Tensor {
        switch storage {
        case .plain(let w): return w
        case .packed(let p): return p.unpacked()
        case .gemmPacked(let p): return p.unpacked()
        }
    }

    public var outFeatures: Int {
        switch storage {
        case .plain(let w): return w.shape[0]
        case .packed(let p): return p.outFeatures
        case .gemmPacked(let p): return p.outFeatures
        }
    }

    public var inFeatures: Int {
        switch storage {
        case .plain(let w): return w.shape[1]
        case .packed(let p): return p.inFeatures
        case .gemmPacked(let p): return p.inFeatures
        }
    }

    // x: [..., in] -> [..., out]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch storage {
        case .plain(let w): return linear(x, weight: w, bias: bias)
        case .packed(let p): return linear(x, packed: p, bias: bias)
        case .gemmPacked(let p): return linear(x, gemmPacked: p, bias: bias)
        }
    }

    /// residual += self(x); the addition is fused into the product (`linear(_:gemmPacked:bias:addingTo:)`)
    /// where the weight is kept in the AVX-512 sgemm's panels. residual: [..., out].
    public func callAsFunction(_ x: Tensor, addingTo residual: inout Tensor) {
        if case .gemmPacked(let p) = storage {
            linear(x, gemmPacked: p, bias: bias, addingTo: &residual)
        } else {
            residual += callAsFunction(x)
        }
    }

    /// diffusers' GEGLU on this projection: x [..., in] -> [..., out / 2] = h * gelu(g), [h | g] = self(x);
    /// fused into the product (`linearGEGLU`) where the weight is kept in the AVX-512 sgemm's panels.
    public func geglu(_ x: Tensor) -> Tensor {
        if case .gemmPacked(let p) = storage, let out = linearGEGLU(x, gemmPacked: p, bias: bias) { return out }
        return Kernels.geglu(callAsFunction(x))
    }

    /// Whether the weight is kept in the AVX-512 sgemm's panels (then packed rows can be its input).
    public var isGemmPacked: Bool {
        if case .gemmPacked = storage { return true }
        return false
    }

    /// `geglu(x)` in the packed-A layout of the product that follows it (`linearGEGLUPacked`), or nil
    /// where the weight is not kept in the AVX-512 sgemm's panels or the fused kernel does not apply.
    public func gegluPacked(_ x: Tensor) -> GemmPackedRows? {
        if case .gemmPacked(let p) = storage { return linearGEGLUPacked(x, gemmPacked: p, bias: bias) }
        return nil
    }

    /// residual += self(x) for rows packed by `gegluPacked`; only where `isGemmPacked`.
    public func callAsFunction(_ x: GemmPackedRows, addingTo residual: inout Tensor) {
        guard case .gemmPacked(let p) = storage else {
            preconditionFailure("linear on packed rows needs a weight kept in the AVX-512 sgemm's panels")
        }
        linear(x, gemmPacked: p, bias: bias, addingTo: &residual)
    }
}

/// A `torch.nn.LayerNorm` over the last dimension.
public struct LayerNormWeights {
    public var weight: Tensor
    public var bias: Tensor
    public var eps: Float

    /// Loads `<prefix>.weight` and `<prefix>.bias`, both [dim].
    public init(_ store: WeightStore, _ prefix: String, dim: Int, eps: Float) throws {
        weight = try store.take(prefix + ".weight", shape: [dim])
        bias = try store.take(prefix + ".bias", shape: [dim])
        self.eps = eps
    }

    // x: [..., dim] -> [..., dim]
    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
}

/// The `hidden_act` values of transformers configs (transformers.activations.ACT2FN).
public enum Activation: String, Codable {
    case gelu                          // erf form
    case geluNew = "gelu_new"          // tanh approximation
    case geluPytorchTanh = "gelu_pytorch_tanh"
    case quickGelu = "quick_gelu"      // x * sigmoid(1.702 x), OpenAI CLIP
    case relu
    case silu
    case swish

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .gelu: return Kernels.gelu(x)
        case .geluNew, .geluPytorchTanh: return geluTanh(x)
        case .quickGelu: return Kernels.quickGelu(x)
        case .silu, .swish: return Kernels.silu(x)
        case .relu: return mapElements(x) { max($0, 0) }
        }
    }

    /// Parses a config value, naming the file when it is not one we implement.
    static func parse(_ name: String, file: String) throws -> Activation {
        guard let act = Activation(rawValue: name) else {
            throw NetworksError.unsupportedArchitecture(file: file, name: "hidden_act=\(name)")
        }
        return act
    }
}

/// Elementwise `f` over a tensor (for the few activations Kernels does not provide).
func mapElements(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
    x.withUnsafeBufferPointer { src in
        Tensor(shape: x.shape) { dst in
            for i in 0..<src.count { dst[i] = f(src[i]) }
        }
    }
}

/// Self-attention with separate q/k/v projections and an output projection, as transformers'
/// CLIPAttention and BertSelfAttention + BertSelfOutput.dense.
public struct SelfAttentionWeights {
    public var query: LinearWeights
    public var key: LinearWeights
    public var value: LinearWeights
    public var out: LinearWeights
    public var heads: Int

    // x: [B, T, C], mask: additive [1 or B, 1 or T, T] -> [B, T, C]
    public func callAsFunction(_ x: Tensor, mask: Tensor?) -> Tensor {
        let q = query(x), k = key(x), v = value(x)             // [B, T, C] each
        let a = attention(query: q, key: k, value: v, heads: heads, mask: mask)   // [B, T, C]
        return out(a)
    }
}

/// The additive value of a masked attention score (finite, so masked rows never turn into NaN).
let maskedScore: Float = -1e9

/// Causal mask [1, T, T]: position i attends to j <= i (CLIP's _create_4d_causal_attention_mask).
func causalMask(length t: Int) -> Tensor {
    Tensor(shape: [1, t, t]) { m in
        for i in 0..<t {
            for j in 0..<t { m[i * t + j] = j <= i ? 0 : maskedScore }
        }
    }
}

/// Padding mask [B, 1, T] from a 0/1 attention mask (BERT's get_extended_attention_mask).
func paddingMask(_ mask: [[Int]]) -> Tensor {
    let b = mask.count, t = mask.first?.count ?? 0
    return Tensor(shape: [b, 1, t]) { m in
        for i in 0..<b {
            for j in 0..<t { m[i * t + j] = mask[i][j] != 0 ? 0 : maskedScore }
        }
    }
}

/// Causal and padding together, [B, T, T] (CLIP called with an attention_mask).
func causalPaddingMask(_ mask: [[Int]]) -> Tensor {
    let b = mask.count, t = mask.first?.count ?? 0
    return Tensor(shape: [b, t, t]) { m in
        for n in 0..<b {
            for i in 0..<t {
                for j in 0..<t { m[(n * t + i) * t + j] = (j <= i && mask[n][j] != 0) ? 0 : maskedScore }
            }
        }
    }
}

/// Checks token ids are a rectangular batch within the vocabulary and no longer than `maxLength`.
func validateIds(_ ids: [[Int]], vocabSize: Int, maxLength: Int, model: String) throws {
    guard let t = ids.first?.count, t > 0 else {
        throw NetworksError.invalidInput("\(model): empty batch of token ids")
    }
    for (row, r) in ids.enumerated() {
        guard r.count == t else {
            throw NetworksError.invalidInput("\(model): row \(row) has \(r.count) tokens, row 0 has \(t)")
        }
        if let bad = r.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw NetworksError.invalidInput("\(model): token id \(bad) in row \(row) is outside the vocabulary of \(vocabSize)")
        }
    }
    guard t <= maxLength else {
        throw NetworksError.invalidInput("\(model): \(t) tokens, at most \(maxLength) (max_position_embeddings)")
    }
}

/// Checks an optional per-token companion (mask, token types) has the ids' shape.
func validateCompanion(_ values: [[Int]]?, like ids: [[Int]], name: String, model: String) throws {
    guard let values else { return }
    guard values.count == ids.count, zip(values, ids).allSatisfy({ $0.count == $1.count }) else {
        throw NetworksError.invalidInput("\(model): \(name) is not the shape of input_ids [\(ids.count), \(ids[0].count)]")
    }
}

/// Rows `index[b]` of x: [B, T, C] -> [B, C] (pooling at one position per sequence).
func gatherRows(_ x: Tensor, _ index: [Int]) -> Tensor {
    let b = x.shape[0], t = x.shape[1], c = x.shape[2]
    return x.withUnsafeBufferPointer { src in
        Tensor(shape: [b, c]) { dst in
            for n in 0..<b {
                for k in 0..<c { dst[n * c + k] = src[(n * t + index[n]) * c + k] }
            }
        }
    }
}
