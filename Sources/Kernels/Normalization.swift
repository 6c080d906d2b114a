// Normalisation layers: torch.nn.GroupNorm and torch.nn.LayerNorm (biased variance, eps inside
// the square root). Statistics are accumulated in Double for accuracy.

import CKernels

/// GroupNorm. x: [N, C, ...], weight/bias: [C] or nil -> same shape as x.
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, thenSiLU: false)
}

/// silu(groupNorm(x)) in one pass: the norm -> nonlinearity pair that opens every diffusers
/// ResnetBlock2D and VAE block. x: [N, C, ...] -> same shape.
public func groupNormSiLU(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, thenSiLU: true)
}

private func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, thenSiLU: Bool) -> Tensor {
    precondition(x.rank >= 2, "groupNorm needs [N, C, ...], got \(x.shape)")
    let n = x.shape[0], c = x.shape[1]
    precondition(groups > 0 && c % groups == 0, "groupNorm: \(c) channels not divisible into \(groups) groups")
    if let weight { precondition(weight.count == c, "groupNorm weight \(weight.shape) for \(c) channels") }
    if let bias { precondition(bias.count == c, "groupNorm bias \(bias.shape) for \(c) channels") }
    let spatial = x.count / max(n * c, 1)
    let perGroup = c / groups
    let out = Tensor(uninitializedShape: x.shape)
    let src = x.base, dst = out.fresh
    let w = weight?.base, b = bias?.base
    parallelFor(n * groups) { job in
        let g = job % groups
        let start = job * perGroup * spatial, len = perGroup * spatial
        let (mean, ss) = meanAndSquaredDeviations(src + start, len)
        let inv = Float(1 / (ss / Double(max(len, 1)) + Double(eps)).squareRoot())
        let m = Float(mean)
        for cc in 0..<perGroup {
            let ch = g * perGroup + cc
            let sc = inv * (w?[ch] ?? 1), sh = (b?[ch] ?? 0) - m * sc
            let p = src + start + cc * spatial, q = dst + start + cc * spatial
            if jpgen_scale_shift(p, spatial, 0, nil, sc, nil, sh, thenSiLU ? 1 : 0, q) != 0 { continue }
            if thenSiLU {
                for i in 0..<spatial { let v = p[i] * sc + sh; q[i] = v * fastSigmoid(v) }
            } else {
                for i in 0..<spatial { q[i] = p[i] * sc + sh }
            }
        }
    }
    return out
}

/// Mean of p[0..<n] and the sum of squared deviations from it, in Double: CKernels' AVX-512 loop
/// (8 double lanes) where the CPU has it, else one Double chain.
private func meanAndSquaredDeviations(_ p: UnsafePointer<Float>, _ n: Int) -> (mean: Double, m2: Double) {
    var mean = 0.0, m2 = 0.0
    if jpgen_mean_m2(p, n, &mean, &m2) != 0 { return (mean, m2) }
    var s = 0.0
    for i in 0..<n { s += Double(p[i]) }
    mean = s / Double(max(n, 1))
    for i in 0..<n { let v = Double(p[i]) - mean; m2 += v * v }
    return (mean, m2)
}

/// LayerNorm over the last dimension. x: [..., D], weight/bias: [D] or nil -> same shape.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    precondition(x.rank >= 1, "layerNorm needs rank >= 1")
    let d = x.shape[x.rank - 1], rows = x.count / max(d, 1)
    if let weight { precondition(weight.count == d, "layerNorm weight \(weight.shape) for last dim \(d)") }
    if let bias { precondition(bias.count == d, "layerNorm bias \(bias.shape) for last dim \(d)") }
    let out = Tensor(uninitializedShape: x.shape)
    let src = x.base, dst = out.fresh
    let w = weight?.base, b = bias?.base
    parallelRanges(rows, grain: max(1, 8192 / max(d, 1))) { r in
        for row in r {
            let p = src + row * d, q = dst + row * d
            let (mean, ss) = meanAndSquaredDeviations(p, d)
            let inv = Float(1 / (ss / Double(d) + Double(eps)).squareRoot())
            let m = Float(mean)
            if jpgen_scale_shift(p, d, m, w, inv, b, 0, 0, q) != 0 { continue }
            switch (w, b) {
            case let (w?, b?): for i in 0..<d { q[i] = (p[i] - m) * inv * w[i] + b[i] }
            case let (w?, nil): for i in 0..<d { q[i] = (p[i] - m) * inv * w[i] }
            case let (nil, b?): for i in 0..<d { q[i] = (p[i] - m) * inv + b[i] }
            case (nil, nil): for i in 0..<d { q[i] = (p[i] - m) * inv }
            }
        }
    }
    return out
}
