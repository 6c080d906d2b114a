// Shared helpers for the Kernels tests: a seeded generator, random tensors, and naive reference
// implementations written as plain loops in Double (the oracles the fast kernels are checked against).

import Foundation
import XCTest
@testable import Kernels

/// SplitMix64: small, seedable, deterministic across platforms.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Uniform random tensor in [lo, hi).
func randomTensor(_ shape: [Int], _ rng: inout SeededGenerator, lo: Float = -1, hi: Float = 1) -> Tensor {
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<n).map { _ in Float.random(in: lo..<hi, using: &rng) })
}

/// Asserts equal shapes and max |a - b| <= tol, reporting the largest difference.
func assertClose(_ a: Tensor, _ b: Tensor, tol: Float, _ what: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, "shape \(what)", file: file, line: line)
    guard a.shape == b.shape else { return }
    let d = maxAbsDifference(a, b)
    XCTAssert(d <= tol, "\(what): max |diff| \(d) > tolerance \(tol)", file: file, line: line)
}

// MARK: naive references

/// Row-major strides of a shape.
func stridesOf(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    if shape.count >= 2 { for i in stride(from: shape.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * shape[i + 1] } }
    return s
}

/// C[m, n] = sum_k A[m, k] B[k, n] for plain [M, K] x [K, N] arrays.
func naiveMatmul2D(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += Double(a[i * k + p]) * Double(b[p * n + j]) }
            c[i * n + j] = Float(s)
        }
    }
    return c
}

/// Transpose of a stored [R, C] array.
func naiveTranspose2D(_ a: [Float], rows: Int, cols: Int) -> [Float] {
    var t = [Float](repeating: 0, count: rows * cols)
    for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = a[i * cols + j] } }
    return t
}

/// Direct 7-loop convolution in Double. x: [N, C, H, W], w: [O, C, kh, kw].
func naiveConv2d(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, stride: Int, padding: Int) -> Tensor {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
    let ho = (h + 2 * padding - kh) / stride + 1, wo = (wd + 2 * padding - kw) / stride + 1
    let xs = x.scalars, ws = w.scalars, bs = bias?.scalars
    var out = [Float](repeating: 0, count: n * o * ho * wo)
    for b in 0..<n { for oc in 0..<o { for y in 0..<ho { for xx in 0..<wo {
        var s = Double(bs?[oc] ?? 0)
        for ic in 0..<c { for dy in 0..<kh { for dx in 0..<kw {
            let iy = y * stride - padding + dy, ix = xx * stride - padding + dx
            if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
            s += Double(xs[((b * c + ic) * h + iy) * wd + ix]) * Double(ws[((oc * c + ic) * kh + dy) * kw + dx])
        } } }
        out[((b * o + oc) * ho + y) * wo + xx] = Float(s)
    } } } }
    return Tensor(shape: [n, o, ho, wo], data: out)
}

/// Softmax of each row of length d, in Double.
func naiveSoftmaxRows(_ x: [Float], d: Int) -> [Float] {
    var out = x
    for r in 0..<(x.count / d) {
        let row = x[(r * d)..<((r + 1) * d)].map(Double.init)
        let m = row.max()!
        let e = row.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        for j in 0..<d { out[r * d + j] = Float(e[j] / s) }
    }
    return out
}

/// Attention in Double, one (batch, head, query) at a time with the full score row.
func naiveAttention(q: Tensor, k: Tensor, v: Tensor, heads: Int, mask: Tensor?, scale: Float?) -> Tensor {
    let (b, tq, c) = (q.shape[0], q.shape[1], q.shape[2])
    let tk = k.shape[1], cv = v.shape[2], d = c / heads, dv = cv / heads
    let sc = Double(scale ?? 1 / Float(d).squareRoot())
    let qs = q.scalars, ks = k.scalars, vs = v.scalars, ms = mask?.scalars
    var out = [Float](repeating: 0, count: b * tq * cv)
    for bi in 0..<b {
        let kb = k.shape[0] == 1 ? 0 : bi
        for h in 0..<heads { for i in 0..<tq {
            var s = [Double](repeating: 0, count: tk)
            for j in 0..<tk {
                var dot = 0.0
                for e in 0..<d { dot += Double(qs[(bi * tq + i) * c + h * d + e]) * Double(ks[(kb * tk + j) * c + h * d + e]) }
                s[j] = dot * sc
                if let mask, let ms {
                    let mb = mask.shape[0] == 1 ? 0 : bi, mi = mask.shape[1] == 1 ? 0 : i
                    s[j] += Double(ms[(mb * mask.shape[1] + mi) * tk + j])
                }
            }
            let m = s.max()!
            let e = s.map { Foundation.exp($0 - m) }
            let z = e.reduce(0, +)
            for f in 0..<dv {
                var acc = 0.0
                for j in 0..<tk { acc += e[j] / z * Double(vs[(kb * tk + j) * cv + h * dv + f]) }
                out[(bi * tq + i) * cv + h * dv + f] = Float(acc)
            }
        } }
    }
    return Tensor(shape: [b, tq, cv], data: out)
}
