// groupNorm, layerNorm and softmax against Double loops. Tolerance 1e-5 (outputs of size ~1).

import Foundation
import XCTest
@testable import Kernels

final class NormalizationTests: XCTestCase {
    func testGroupNorm() {
        var rng = SeededGenerator(seed: 100)
        let (n, c, h, w, g) = (2, 8, 3, 5, 4)
        let x = randomTensor([n, c, h, w], &rng, lo: -3, hi: 5)
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
        var rng = SeededGenerator(seed: 101)
        let x = randomTensor([2, 3, 17], &rng, lo: -2, hi: 4)
        let w = randomTensor([17], &rng), b = randomTensor([17], &rng)
        var want = [Float](), wantPlain = [Float]()
        let xs = x.scalars
        for r in 0..<6 {
            let row = xs[(r * 17)..<((r + 1) * 17)].map(Double.init)
            let m = row.reduce(0, +) / 17
            let v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 17
            for j in 0..<17 {
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
