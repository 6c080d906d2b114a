// FastMath's exp/erf/tanh/sigmoid against Foundation in Double over a dense grid.
// Tolerances: exp 3e-7 relative; tanh, sigmoid 3e-7 absolute; erf 5e-7 absolute
// (Abramowitz & Stegun 7.1.26 is good to 1.5e-7, plus Float rounding).

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
