// Softmax over the last dimension (torch.softmax(x, dim=-1)), max-subtracted for stability.
// A row whose entries are all -inf (fully masked) becomes all zeros rather than NaN.
// The row kernel is CKernels' (AVX2 + FMA when the CPU has them); exp within 1.2e-7 relative.

import CKernels
import Foundation

/// Replaces a row of length n by exp(p - max(p)) and returns 1 / sum of the result: the row's
/// softmax is the row times that factor. An all -inf row becomes zeros and the factor 0.
/// (CKernels: AVX2 + FMA where the CPU has them, the same polynomial as fastExp.)
@inline(__always)
func unnormalizedSoftmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    jpgen_unnormalized_softmax_row(p, n)
}

/// In-place softmax of one row of length n.
@inline(__always)
func softmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    let inv = unnormalizedSoftmaxRow(p, n)
    for i in 0..<n { p[i] *= inv }
}

/// Softmax over the last dimension. x: [..., D] -> same shape.
public func softmax(_ x: Tensor) -> Tensor {
    precondition(x.rank >= 1, "softmax needs rank >= 1")
    let d = x.shape[x.rank - 1], rows = x.count / max(d, 1)
    let out = Tensor(uninitializedShape: x.shape)
    let src = x.base, dst = out.fresh
    parallelRanges(rows, grain: max(1, 4096 / max(d, 1))) { r in
        for row in r {
            (dst + row * d).update(from: src + row * d, count: d)
            softmaxRow(dst + row * d, d)
        }
    }
    return out
}
