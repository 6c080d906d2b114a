// groupNorm, layerNorm and softmax against Double loops. Tolerance 1e-5 (outputs of size ~1).

import Foundation
import XCTest
@testable import Kernels

final class NormalizationTests: XCTestCase {
    func testGroupNorm() {
        checkGroupNorm(n: 2, c: 8, h: 3, w: 5, g: 4, seed: 100)
        // groups of 126 values and channels of 63 (whole and partial AVX-512 vectors), around 50
        checkGroupNorm(n: 1, c: 6, h: 7, w: 9, g: 3, seed: 103, lo: 45, hi: 55)
    }

    func checkGroupNorm(n: Int, c: Int, h: Int, w: Int, g: Int, seed: UInt64, lo: Float = -3, hi: Float = 5) {
        var rng = SeededGenerator(seed: seed)
        let x = randomTensor([n, c, h, w], &rng, lo: lo, hi: hi)
        let weight = randomTensor([c], &rng), bias = randomTensor([c], &rng)
        let xs = x.scalars, per = c / g * h * w
        var want = [Float](repeating: 0, count: x.count)
        var wantPlain = want
        for b in 0..<n { for gi in 0..<g {
            let start = (b * g + gi) * per
            let vals = xs[start..<(start + per)].map(Double.init)
            let m = vals.reduce(0, +) / Double(per)
            let v = vals.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(per)
            for i in 0..<per {
                let ch = (start + i) / (h * w) % c
                let z = (Double(xs[start + i]) - m) / (v + 1e-5).squareRoot()
                wantPlain[start + i] = Float(z)
                want[start + i] = Float(z * Double(weight.scalars[ch]) + Double(bias.scalars[ch]))
            }
        } }
        assertClose(groupNorm(x, groups: g, weight: weight, bias: bias, eps: 1e-5), Tensor(shape: x.shape, data: want), tol: 1e-5, "affine")
        assertClose(groupNorm(x, groups: g, weight: nil, bias: nil, eps: 1e-5), Tensor(shape: x.shape, data: wantPlain), tol: 1e-5, "plain")
        let wantSiLU = want.map { v -> Float in let d = Double(v); return Float(d / (1 + Foundation.exp(-d))) }
        assertClose(groupNormSiLU(x, groups: g, weight: weight, bias: bias, eps: 1e-5),
                    Tensor(shape: x.shape, data: wantSiLU), tol: 1e-5, "fused silu")
    }

    func testGroupNormWithoutSpatialDimensions() {
        var rng = SeededGenerator(seed: 104)
        // [N, C] input (no spatial dimensions), one group per channel pair.
        let x2 = randomTensor([3, 4], &rng)
        let y2 = groupNorm(x2, groups: 2, weight: nil, bias: nil, eps: 0)
        for r in 0..<3 { for gi in 0..<2 {
            let a = x2[r, 2 * gi], b = x2[r, 2 * gi + 1]
            let s: Float = a > b ? 1 : -1
            XCTAssertEqual(y2[r, 2 * gi], s, accuracy: 1e-3)
        } }
    }

    func testLayerNorm() {
        checkLayerNorm(rows: 6, d: 17, seed: 101)
        // rows of 83 (whole and partial AVX-512 vectors) around 100
        checkLayerNorm(rows: 5, d: 83, seed: 105, lo: 97, hi: 103)
        // each row's first value 400 below the rest: the statistics are summed around it in one pass
        checkLayerNorm(rows: 4, d: 1280, seed: 106, lo: 97, hi: 103, firstOffset: -400)
    }

    func checkLayerNorm(rows: Int, d: Int, seed: UInt64, lo: Float = -2, hi: Float = 4, firstOffset: Float = 0) {
        var rng = SeededGenerator(seed: seed)
        var x = randomTensor([rows, d], &rng, lo: lo, hi: hi)
        if firstOffset != 0 {
            var values = x.scalars
            for r in 0..<rows { values[r * d] += firstOffset }
            x = Tensor(shape: x.shape, data: values)
        }
        let w = randomTensor([d], &rng), b = randomTensor([d], &rng)
        var want = [Float](), wantPlain = [Float]()
        let xs = x.scalars
        for r in 0..<rows {
            let row = xs[(r * d)..<((r + 1) * d)].map(Double.init)
            let m = row.reduce(0, +) / Double(d)
            let v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(d)
            for j in 0..<d {
                let z = (row[j] - m) / (v + 1e-6).squareRoot()
                wantPlain.append(Float(z))
                want.append(Float(z * Double(w.scalars[j]) + Double(b.scalars[j])))
            }
        }
        assertClose(layerNorm(x, weight: w, bias: b, eps: 1e-6), Tensor(shape: x.shape, data: want), tol: 1e-5, "affine")
        assertClose(layerNorm(x, weight: nil, bias: nil, eps: 1e-6), Tensor(shape: x.shape, data: wantPlain), tol: 1e-5, "plain")
    }

    func testSoftmax() {
        var rng = SeededGenerator(seed: 102)
        let x = randomTensor([4, 3, 50], &rng, lo: -20, hi: 20)
        assertClose(softmax(x), Tensor(shape: x.shape, data: naiveSoftmaxRows(x.scalars, d: 50)), tol: 1e-6, "softmax")
        // Large values do not overflow; -inf entries get 0; an all -inf row becomes zeros.
        let y = softmax(Tensor(shape: [3, 3], data: [1000, 1000, -.infinity, -.infinity, 0, -.infinity,
                                                     -.infinity, -.infinity, -.infinity]))
        XCTAssertEqual(y.scalars, [0.5, 0.5, 0, 0, 1, 0, 0, 0, 0])
    }
}
