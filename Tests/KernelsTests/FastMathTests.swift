// FastMath's exp/erf/tanh/sigmoid against Foundation in Double over a dense grid.
// Tolerances: exp 3e-7 relative; tanh, sigmoid 3e-7 absolute; erf 5e-7 absolute
// (Abramowitz & Stegun 7.1.26 is good to 1.5e-7, plus Float rounding).

import CKernels
import Foundation
import XCTest
@testable import Kernels

final class FastMathTests: XCTestCase {
    let grid: [Float] = stride(from: -100, through: 100, by: 0.0137).map { Float($0) }

    func testExp() {
        var worst: Double = 0
        for x in grid where x <= 88 {
            let want = Foundation.exp(Double(x))
            if want < 1e-37 { continue }  // the denormal range flushes to 0 or near it
            worst = max(worst, abs(Double(fastExp(x)) - want) / want)
        }
        XCTAssertLessThan(worst, 3e-7, "exp relative error")
        XCTAssertEqual(fastExp(-.infinity), 0)
        XCTAssertEqual(fastExp(-1000), 0)
        XCTAssertEqual(fastExp(0), 1)
        XCTAssertTrue(fastExp(1000).isFinite, "large inputs saturate instead of overflowing")
    }

    /// CKernels' softmax row (AVX2 + FMA on this CPU when it has them) against Double, for every
    /// length up to 40 (vector body and scalar tail), with -inf entries and an all -inf row.
    /// Tolerance: 4e-6 relative on each probability (Float sums of up to 4096 terms, eight partial sums).
    func testUnnormalizedSoftmaxRowAgainstDouble() {
        defer { jpgen_ckernels_force_portable(0) }
        for portable in [false, true] {
            jpgen_ckernels_force_portable(portable ? 1 : 0)
            checkSoftmaxRows("portable \(portable)")
        }
    }

    func checkSoftmaxRows(_ path: String) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func uniform() -> Float {    // a fixed LCG: the same rows every run
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) * 60 - 30
        }
        for n in [1, 2, 7, 8, 9, 15, 16, 17, 23, 40, 77, 4096] {
            var row = (0..<n).map { _ in uniform() }
            if n > 3 { row[1] = -.infinity; row[n - 1] = -.infinity }
            let mx = Double(row.max()!)
            let exps = row.map { Foundation.exp(Double($0) - mx) }
            let total = exps.reduce(0, +)
            var values = row
            let factor = values.withUnsafeMutableBufferPointer { unnormalizedSoftmaxRow($0.baseAddress!, n) }
            for i in 0..<n {
                let want = exps[i] / total, got = Double(values[i] * factor)
                XCTAssertEqual(got, want, accuracy: 4e-6 * max(want, 1e-30) + 1e-12, "\(path) n=\(n) i=\(i)")
            }
        }
        var masked: [Float] = Array(repeating: -.infinity, count: 19)
        let factor = masked.withUnsafeMutableBufferPointer { unnormalizedSoftmaxRow($0.baseAddress!, 19) }
        XCTAssertEqual(factor, 0)
        XCTAssertEqual(masked, Array(repeating: 0, count: 19))
    }

    func testErfTanhSigmoid() {
        var erfWorst: Double = 0, tanhWorst: Double = 0, sigWorst: Double = 0
        for x in grid {
            let d = Double(x)
            erfWorst = max(erfWorst, abs(Double(fastErf(x)) - erf(d)))
            tanhWorst = max(tanhWorst, abs(Double(fastTanh(x)) - Foundation.tanh(d)))
            sigWorst = max(sigWorst, abs(Double(fastSigmoid(x)) - 1 / (1 + Foundation.exp(-d))))
        }
        XCTAssertLessThan(erfWorst, 5e-7, "erf absolute error")
        XCTAssertLessThan(tanhWorst, 3e-7, "tanh absolute error")
        XCTAssertLessThan(sigWorst, 3e-7, "sigmoid absolute error")
        XCTAssertLessThan(fastSigmoid(-.infinity), 1e-37)
        XCTAssertEqual(fastSigmoid(.infinity), 1)
    }
}
