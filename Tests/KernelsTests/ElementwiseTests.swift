// Broadcasting arithmetic and activations against per-element Double formulas.
// Arithmetic is exact up to Float rounding (tolerance 1e-6); activations 1e-6 against Double libm.

import Foundation
import XCTest
@testable import Kernels

final class ElementwiseTests: XCTestCase {
    /// Naive broadcast: every output index mapped back to each operand by NumPy rules.
    func naiveBroadcast(_ a: Tensor, _ b: Tensor, _ op: (Double, Double) -> Double) -> Tensor {
        let rank = max(a.rank, b.rank)
        let pa = [Int](repeating: 1, count: rank - a.rank) + a.shape
        let pb = [Int](repeating: 1, count: rank - b.rank) + b.shape
        let outShape = zip(pa, pb).map { max($0, $1) }
        let total = outShape.reduce(1, *)
        let sa = stridesOf(pa), sb = stridesOf(pb), so = stridesOf(outShape)
        let xa = a.scalars, xb = b.scalars
        var out = [Float](repeating: 0, count: total)
        for flat in 0..<total {
            var ia = 0, ib = 0
            for d in 0..<rank {
                let i = flat / so[d] % outShape[d]
                ia += (pa[d] == 1 ? 0 : i) * sa[d]
                ib += (pb[d] == 1 ? 0 : i) * sb[d]
            }
            out[flat] = Float(op(Double(xa[ia]), Double(xb[ib])))
        }
        return Tensor(shape: outShape, data: out)
    }

    func testBroadcastingArithmetic() {
        var rng = SeededGenerator(seed: 300)
        let pairs: [([Int], [Int])] = [
            ([2, 3, 4], [2, 3, 4]), ([2, 3, 4], [4]), ([2, 3, 1, 5], [3, 4, 1]), ([2, 1], [1, 3]),
            ([2, 4, 3, 3], [2, 4, 1, 1]), ([1], [3, 2]), ([5, 1, 6], [1, 7, 1]), ([], [2, 2]),
        ]
        for (i, (sa, sb)) in pairs.enumerated() {
            var r = SeededGenerator(seed: 310 + UInt64(i))
            let a = randomTensor(sa, &r), b = randomTensor(sb, &r, lo: 0.5, hi: 2)
            assertClose(a + b, naiveBroadcast(a, b, +), tol: 1e-6, "\(sa) + \(sb)")
            assertClose(a - b, naiveBroadcast(a, b, -), tol: 1e-6, "\(sa) - \(sb)")
            assertClose(a * b, naiveBroadcast(a, b, *), tol: 1e-6, "\(sa) * \(sb)")
            assertClose(a / b, naiveBroadcast(a, b, /), tol: 1e-6, "\(sa) / \(sb)")
            assertClose(b + a, naiveBroadcast(b, a, +), tol: 1e-6, "\(sb) + \(sa)")
        }
        let x = randomTensor([3, 5], &rng)
        assertClose(x * 2 + 1, Tensor(shape: [3, 5], data: x.scalars.map { $0 * 2 + 1 }), tol: 1e-6, "scalar ops")
        assertClose(1 - x, Tensor(shape: [3, 5], data: x.scalars.map { 1 - $0 }), tol: 0, "s - x")
        assertClose(scale(x, -3), Tensor(shape: [3, 5], data: x.scalars.map { $0 * -3 }), tol: 0, "scale")
        var y = x
        y += Tensor(shape: [5], repeating: 1)
        assertClose(y, x + 1, tol: 0, "+= broadcast")
        XCTAssertEqual(x[0, 0] + 0, x.scalars[0], "in-place add left the original untouched (copy on write)")
    }

    /// a += b with b [d0, ..., dj, 1, ..., 1] runs in place, bit for bit a + b; a shared a is copied first.
    func testInPlaceAddOfTrailingBroadcast() {
        var rng = SeededGenerator(seed: 302)
        for (sa, sb) in [([2, 320, 16, 16], [2, 320, 1, 1]), ([2, 3, 4, 5], [2, 1, 1, 1]), ([2, 3, 4, 5], [1, 1, 1, 1]),
                         ([3, 7], [3, 7]), ([2, 3, 4, 5], [1, 3, 1, 1])] {
            let a = randomTensor(sa, &rng), b = randomTensor(sb, &rng)
            var own = Tensor(shape: sa, data: a.scalars)
            let storage = own.base
            own += b
            XCTAssertEqual(own.scalars, (a + b).scalars, "\(sa) += \(sb)")
            if sb.first == sa.first { XCTAssertEqual(own.base, storage, "\(sa) += \(sb) in place") }
            var shared = a
            shared += b
            XCTAssertEqual(shared.scalars, (a + b).scalars, "\(sa) += \(sb), shared")
            XCTAssertNotEqual(shared.scalars, a.scalars, "\(sa) += \(sb), shared")
            XCTAssertEqual(a.scalars, Tensor(shape: sa, data: a.scalars).scalars)
        }
    }

    func testLargeParallelArithmetic() {
        var rng = SeededGenerator(seed: 301)
        let a = randomTensor([2, 320, 16, 16], &rng), b = randomTensor([2, 320, 1, 1], &rng)
        assertClose(a + b, naiveBroadcast(a, b, +), tol: 1e-6, "timestep-embedding style add")
    }

    func testActivations() {
        var rng = SeededGenerator(seed: 302)
        var x = randomTensor([1000], &rng, lo: -8, hi: 8)
        x[0] = -100; x[1] = 100; x[2] = 0
        let xs = x.scalars.map(Double.init)
        func expect(_ f: (Double) -> Double) -> Tensor { Tensor(shape: [1000], data: xs.map { Float(f($0)) }) }
        let sig: (Double) -> Double = { 1 / (1 + Foundation.exp(-$0)) }
        assertClose(gelu(x), expect { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }, tol: 1e-5, "gelu")
        assertClose(geluTanh(x), expect { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }, tol: 1e-5, "geluTanh")
        assertClose(sigmoid(x), expect(sig), tol: 1e-6, "sigmoid")
        assertClose(silu(x), expect { $0 * sig($0) }, tol: 1e-5, "silu")
        assertClose(quickGelu(x), expect { $0 * sig(1.702 * $0) }, tol: 1e-5, "quickGelu")
        assertClose(relu(x), expect { max($0, 0) }, tol: 0, "relu")
        // In-place forms equal the allocating ones, and leave copies of the input untouched.
        for (name, inPlace, plain) in [("gelu", geluInPlace, gelu), ("geluTanh", geluTanhInPlace, geluTanh),
                                       ("silu", siluInPlace, silu), ("quickGelu", quickGeluInPlace, quickGelu),
                                       ("sigmoid", sigmoidInPlace, sigmoid)] as [(String, (inout Tensor) -> Void, (Tensor) -> Tensor)] {
            var y = x
            inPlace(&y)
            assertClose(y, plain(x), tol: 0, "\(name) in place")
        }
        XCTAssertEqual(x[0], -100, "copy on write kept the original")
        // geglu: halves [a, gate] -> a * gelu(gate)
        let g = randomTensor([2, 3, 8], &rng, lo: -3, hi: 3)
        var want = [Float]()
        for r in 0..<6 { for j in 0..<4 {
            let a = Double(g.scalars[r * 8 + j]), v = Double(g.scalars[r * 8 + 4 + j])
            want.append(Float(a * 0.5 * v * (1 + erf(v / 2.0.squareRoot()))))
        } }
        assertClose(geglu(g), Tensor(shape: [2, 3, 4], data: want), tol: 1e-5, "geglu")
        // rows of 37 (two full 16-lane vectors and a tail on CPUs with AVX-512), gates out to +-9
        // (erf saturated, e^{-x^2} underflowed)
        let wide = randomTensor([5, 74], &rng, lo: -9, hi: 9)
        var wantWide = [Float]()
        for r in 0..<5 { for j in 0..<37 {
            let a = Double(wide.scalars[r * 74 + j]), v = Double(wide.scalars[r * 74 + 37 + j])
            wantWide.append(Float(a * 0.5 * v * (1 + erf(v / 2.0.squareRoot()))))
        } }
        assertClose(geglu(wide), Tensor(shape: [5, 37], data: wantWide), tol: 2e-5, "geglu, rows of 37")
        // large gates, past erf's saturation: exactly a * g above, 0 below (gates of 13.2-14.4 once made
        // e^{-x^2} subnormal on the AVX-512 path; now clamped, with the same result)
        let gates: [Float] = [8.9, 9.5, 13.3, 13.9, 14.3, 20, 1e4, -8.9, -13.3, -13.9, -14.3, -1e4, 12, -12, 15, -15]
        let big = Tensor(shape: [1, 32], data: gates.map { _ in Float(1.5) } + gates)
        XCTAssertEqual(geglu(big).scalars, gates.map { $0 > 0 ? 1.5 * $0 : 0 }, "geglu, saturated gates")
    }
}
