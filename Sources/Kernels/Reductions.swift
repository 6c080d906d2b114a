// Reductions along one axis (sum, mean, max) and comparison helpers.

/// Sum along `axis` (negative allowed). x: [..., A, ...] -> [..., ...] (or [..., 1, ...] with keepDims).
public func sum(_ x: Tensor, axis: Int, keepDims: Bool = false) -> Tensor {
    reduce(x, axis: axis, keepDims: keepDims, average: false)
}

/// Mean along `axis` (negative allowed).
public func mean(_ x: Tensor, axis: Int, keepDims: Bool = false) -> Tensor {
    reduce(x, axis: axis, keepDims: keepDims, average: true)
}

private func reduce(_ x: Tensor, axis: Int, keepDims: Bool, average: Bool) -> Tensor {
    let ax = normalizedAxis(axis, rank: x.rank)
    let outer = x.shape[..<ax].reduce(1, *), len = x.shape[ax]
    let inner = x.shape[(ax + 1)...].reduce(1, *)
    var shape = x.shape
    if keepDims { shape[ax] = 1 } else { shape.remove(at: ax) }
    let out = Tensor(uninitializedShape: shape)
    let src = x.base, dst = out.fresh
    let factor = average ? 1 / Double(max(len, 1)) : 1
    parallelRanges(outer, grain: max(1, (1 << 14) / max(len * inner, 1))) { r in
        var acc = [Double](repeating: 0, count: inner)
        for o in r {
            for j in 0..<inner { acc[j] = 0 }
            for a in 0..<len {
                let p = src + (o * len + a) * inner
                for j in 0..<inner { acc[j] += Double(p[j]) }
            }
            for j in 0..<inner { dst[o * inner + j] = Float(acc[j] * factor) }
        }
    }
    return out
}

/// Sum of all elements (Double accumulator).
public func sumAll(_ x: Tensor) -> Double {
    x.withUnsafeBufferPointer { p in p.reduce(0.0) { $0 + Double($1) } }
}

/// Largest |a - b| over all elements; shapes must have equal element counts. NaN anywhere -> NaN.
public func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count, "maxAbsDifference: shapes \(a.shape) and \(b.shape) differ in size")
    let pa = a.base, pb = b.base
    var m: Float = 0
    for i in 0..<a.count {
        let d = abs(pa[i] - pb[i])
        if d.isNaN { return .nan }
        m = Swift.max(m, d)
    }
    return m
}
