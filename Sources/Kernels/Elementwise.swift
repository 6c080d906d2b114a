// Elementwise arithmetic with NumPy broadcasting rules: shapes are aligned at their last
// dimension; each dimension pair must be equal or one of them 1. Work is split over rows of the
// (coalesced) output with parallelRanges.

/// The broadcast shape of two shapes (NumPy rules); precondition that they are compatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    let rank = max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        precondition(da == db || da == 1 || db == 1, "shapes \(a) and \(b) do not broadcast")
        out[i] = da == 1 ? db : da
    }
    return out
}

/// Strides of `shape` (row-major) laid against `outShape`, 0 on broadcast dimensions.
private func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let rank = outShape.count
    var strides = [Int](repeating: 0, count: rank)
    var step = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        let o = i + rank - shape.count
        strides[o] = shape[i] == 1 ? 0 : step
        step *= shape[i]
    }
    return strides
}

/// An elementwise function of one Float. Kernels pass ops as generic values (not closures) so that
/// the specialised loops call them directly and LLVM can vectorise them.
public protocol UnaryElementOp {
    func callAsFunction(_ v: Float) -> Float
}

/// An elementwise function of two Floats (see UnaryElementOp).
public protocol BinaryElementOp {
    func callAsFunction(_ a: Float, _ b: Float) -> Float
}

struct AddOp: BinaryElementOp { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b } }
struct SubOp: BinaryElementOp { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b } }
struct MulOp: BinaryElementOp { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b } }
struct DivOp: BinaryElementOp { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b } }
struct MaxOp: BinaryElementOp { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { Swift.max(a, b) } }
struct MinOp: BinaryElementOp { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { Swift.min(a, b) } }

/// A unary op given as a closure-free affine map a*x + b (scalar arithmetic on tensors).
struct AffineOp: UnaryElementOp {
    let a: Float, b: Float
    @inline(__always) func callAsFunction(_ v: Float) -> Float { a * v + b }
}
/// s / x
struct ReciprocalOp: UnaryElementOp {
    let s: Float
    @inline(__always) func callAsFunction(_ v: Float) -> Float { s / v }
}
struct DivideByOp: UnaryElementOp {
    let s: Float
    @inline(__always) func callAsFunction(_ v: Float) -> Float { v / s }
}
struct ClampOp: UnaryElementOp {
    let lo: Float, hi: Float
    @inline(__always) func callAsFunction(_ v: Float) -> Float { Swift.min(Swift.max(v, lo), hi) }
}
struct SqrtOp: UnaryElementOp { @inline(__always) func callAsFunction(_ v: Float) -> Float { v.squareRoot() } }

/// Applies `op` elementwise with broadcasting. a, b: any broadcast-compatible shapes.
public func broadcastBinary<Op: BinaryElementOp>(_ a: Tensor, _ b: Tensor, _ op: Op) -> Tensor {
    if a.shape == b.shape {
        let out = Tensor(uninitializedShape: a.shape)
        let pa = a.base, pb = b.base, po = out.fresh
        parallelRanges(a.count) { r in for i in r { po[i] = op(pa[i], pb[i]) } }
        return out
    }
    let outShape = broadcastShape(a.shape, b.shape)
    let out = Tensor(uninitializedShape: outShape)
    if out.count == 0 { return out }
    // Coalesce dimensions where both operands step uniformly, dropping size-1 dimensions.
    var dims: [Int] = [], sa: [Int] = [], sb: [Int] = []
    let stA = broadcastStrides(a.shape, to: outShape), stB = broadcastStrides(b.shape, to: outShape)
    for i in 0..<outShape.count where outShape[i] != 1 {
        if !dims.isEmpty, sa.last! == stA[i] * outShape[i], sb.last! == stB[i] * outShape[i] {
            dims[dims.count - 1] *= outShape[i]
            sa[sa.count - 1] = stA[i]
            sb[sb.count - 1] = stB[i]
        } else {
            dims.append(outShape[i]); sa.append(stA[i]); sb.append(stB[i])
        }
    }
    if dims.isEmpty { dims = [1]; sa = [0]; sb = [0] }
    let inner = dims.last!, ia = sa.last!, ib = sb.last!
    let outerDims = Array(dims.dropLast()), outerA = Array(sa.dropLast()), outerB = Array(sb.dropLast())
    let rows = out.count / inner
    let pa = a.base, pb = b.base, po = out.fresh
    parallelRanges(rows, grain: max(1, (1 << 14) / inner)) { range in
        // Offsets of the first row of the range, then incremented like an odometer.
        var index = [Int](repeating: 0, count: outerDims.count)
        var rem = range.lowerBound, offA = 0, offB = 0
        for d in stride(from: outerDims.count - 1, through: 0, by: -1) {
            index[d] = rem % outerDims[d]; rem /= outerDims[d]
            offA += index[d] * outerA[d]; offB += index[d] * outerB[d]
        }
        for row in range {
            let dst = po + row * inner, srcA = pa + offA, srcB = pb + offB
            if ia == 1 && ib == 1 {
                for j in 0..<inner { dst[j] = op(srcA[j], srcB[j]) }
            } else if ia == 1 {
                let v = srcB[0]
                for j in 0..<inner { dst[j] = op(srcA[j], v) }
            } else if ib == 1 {
                let v = srcA[0]
                for j in 0..<inner { dst[j] = op(v, srcB[j]) }
            } else {
                for j in 0..<inner { dst[j] = op(srcA[j * ia], srcB[j * ib]) }
            }
            var d = outerDims.count - 1
            while d >= 0 {
                index[d] += 1; offA += outerA[d]; offB += outerB[d]
                if index[d] < outerDims[d] { break }
                offA -= index[d] * outerA[d]; offB -= index[d] * outerB[d]; index[d] = 0
                d -= 1
            }
        }
    }
    return out
}

/// Applies `op` to every element.
public func unaryMap<Op: UnaryElementOp>(_ x: Tensor, grain: Int = 1 << 14, _ op: Op) -> Tensor {
    let out = Tensor(uninitializedShape: x.shape)
    let src = x.base, dst = out.fresh
    parallelRanges(x.count, grain: grain) { r in for i in r { dst[i] = op(src[i]) } }
    return out
}

public func add(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, AddOp()) }
public func sub(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, SubOp()) }
public func mul(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, MulOp()) }
public func div(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, DivOp()) }
/// Elementwise maximum and minimum (broadcasting).
public func maximum(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, MaxOp()) }
public func minimum(_ a: Tensor, _ b: Tensor) -> Tensor { broadcastBinary(a, b, MinOp()) }

/// x * s.
public func scale(_ x: Tensor, _ s: Float) -> Tensor { unaryMap(x, AffineOp(a: s, b: 0)) }
/// Clamps every element into [lo, hi].
public func clamp(_ x: Tensor, min lo: Float, max hi: Float) -> Tensor { unaryMap(x, ClampOp(lo: lo, hi: hi)) }
/// Elementwise square root and negation.
public func sqrt(_ x: Tensor) -> Tensor { unaryMap(x, SqrtOp()) }
public func neg(_ x: Tensor) -> Tensor { unaryMap(x, AffineOp(a: -1, b: 0)) }

/// a += b in place (b broadcast to a's shape).
public func addInPlace(_ a: inout Tensor, _ b: Tensor) {
    if a.shape == b.shape {
        let pb = b.base
        a.withUnsafeMutableBufferPointer { pa in
            let p = pa.baseAddress!
            parallelRanges(pa.count) { r in for i in r { p[i] += pb[i] } }
        }
    } else if b.rank == a.rank, case let last = (b.shape.lastIndex(where: { $0 != 1 }) ?? -1) + 1,
              b.shape[..<last] == a.shape[..<last] {
        // b [d0, ..., dj, 1, ..., 1] (e.g. a per-channel [N, C, 1, 1]): each of its values added to a
        // contiguous block of a, in place.
        let inner = a.count / Swift.max(b.count, 1), pb = b.base
        a.withUnsafeMutableBufferPointer { pa in
            let p = pa.baseAddress!
            parallelRanges(b.count, grain: Swift.max(1, 65536 / Swift.max(inner, 1))) { r in
                for o in r {
                    let v = pb[o], row = p + o * inner
                    for i in 0..<inner { row[i] += v }
                }
            }
        }
    } else {
        precondition(broadcastShape(a.shape, b.shape) == a.shape, "cannot add \(b.shape) into \(a.shape) in place")
        a = add(a, b)
    }
}

/// a = a * s in place.
public func scaleInPlace(_ a: inout Tensor, _ s: Float) {
    a.withUnsafeMutableBufferPointer { pa in
        let p = pa.baseAddress!
        parallelRanges(pa.count) { r in for i in r { p[i] *= s } }
    }
}

public func + (a: Tensor, b: Tensor) -> Tensor { add(a, b) }
public func - (a: Tensor, b: Tensor) -> Tensor { sub(a, b) }
public func * (a: Tensor, b: Tensor) -> Tensor { mul(a, b) }
public func / (a: Tensor, b: Tensor) -> Tensor { div(a, b) }
public func + (a: Tensor, s: Float) -> Tensor { unaryMap(a, AffineOp(a: 1, b: s)) }
public func - (a: Tensor, s: Float) -> Tensor { unaryMap(a, AffineOp(a: 1, b: -s)) }
public func * (a: Tensor, s: Float) -> Tensor { unaryMap(a, AffineOp(a: s, b: 0)) }
public func / (a: Tensor, s: Float) -> Tensor { unaryMap(a, DivideByOp(s: s)) }
public func + (s: Float, a: Tensor) -> Tensor { unaryMap(a, AffineOp(a: 1, b: s)) }
public func - (s: Float, a: Tensor) -> Tensor { unaryMap(a, AffineOp(a: -1, b: s)) }
public func * (s: Float, a: Tensor) -> Tensor { unaryMap(a, AffineOp(a: s, b: 0)) }
public func / (s: Float, a: Tensor) -> Tensor { unaryMap(a, ReciprocalOp(s: s)) }
public prefix func - (a: Tensor) -> Tensor { neg(a) }
public func += (a: inout Tensor, b: Tensor) { addInPlace(&a, b) }
