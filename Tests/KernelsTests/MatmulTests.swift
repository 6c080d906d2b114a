// matmul and linear against a naive triple loop (Double accumulation).
// Tolerance: 1e-4 absolute for K <= 100 with inputs in [-1, 1) (sums of K products in Float32).

import XCTest
@testable import Kernels

final class MatmulTests: XCTestCase {
    func testMatmul2DAllTransposes() {
        var rng = SeededGenerator(seed: 1)
        let (m, k, n) = (7, 13, 5)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randomTensor(ta ? [k, m] : [m, k], &rng)
            let b = randomTensor(tb ? [n, k] : [k, n], &rng)
            let aa = ta ? naiveTranspose2D(a.scalars, rows: k, cols: m) : a.scalars
            let bb = tb ? naiveTranspose2D(b.scalars, rows: n, cols: k) : b.scalars
            let expected = Tensor(shape: [m, n], data: naiveMatmul2D(aa, bb, m: m, k: k, n: n))
            assertClose(matmul(a, b, transposeA: ta, transposeB: tb), expected, tol: 1e-4, "transposes \(ta) \(tb)")
        }
    }

    func testMatmulBatchedAndBroadcast() {
        var rng = SeededGenerator(seed: 2)
        let (bs, m, k, n) = (3, 4, 9, 6)
        let a3 = randomTensor([bs, m, k], &rng), b3 = randomTensor([bs, k, n], &rng)
        let a2 = randomTensor([m, k], &rng), b2 = randomTensor([k, n], &rng)
        func slice(_ t: Tensor, _ i: Int) -> [Float] {
            let per = t.count / t.shape[0]
            return Array(t.scalars[(i * per)..<((i + 1) * per)])
        }
        var e33: [Float] = [], e32: [Float] = [], e23: [Float] = []
        for i in 0..<bs {
            e33 += naiveMatmul2D(slice(a3, i), slice(b3, i), m: m, k: k, n: n)
            e32 += naiveMatmul2D(slice(a3, i), b2.scalars, m: m, k: k, n: n)
            e23 += naiveMatmul2D(a2.scalars, slice(b3, i), m: m, k: k, n: n)
        }
        assertClose(matmul(a3, b3), Tensor(shape: [bs, m, n], data: e33), tol: 1e-4, "[B,M,K]x[B,K,N]")
        assertClose(matmul(a3, b2), Tensor(shape: [bs, m, n], data: e32), tol: 1e-4, "[B,M,K]x[K,N]")
        assertClose(matmul(a2, b3), Tensor(shape: [bs, m, n], data: e23), tol: 1e-4, "[M,K]x[B,K,N]")
        // Transposed A with a broadcast B takes the per-batch path.
        let a3t = permute(a3, [0, 2, 1])
        assertClose(matmul(a3t, b2, transposeA: true), Tensor(shape: [bs, m, n], data: e32), tol: 1e-4, "[B,K,M]ᵀx[K,N]")
        // A batch of size 1 broadcasts like a rank-2 operand.
        assertClose(matmul(a3, b2.reshaped([1, k, n])), Tensor(shape: [bs, m, n], data: e32), tol: 1e-4, "[B,M,K]x[1,K,N]")
        assertClose(matmul(a2.reshaped([1, m, k]), b3), Tensor(shape: [bs, m, n], data: e23), tol: 1e-4, "[1,M,K]x[B,K,N]")
    }

    func testLinearWithAndWithoutBias() {
        var rng = SeededGenerator(seed: 3)
        let x = randomTensor([2, 5, 12], &rng), w = randomTensor([7, 12], &rng), b = randomTensor([7], &rng)
        var expected = naiveMatmul2D(x.scalars, naiveTranspose2D(w.scalars, rows: 7, cols: 12), m: 10, k: 12, n: 7)
        assertClose(linear(x, weight: w, bias: nil), Tensor(shape: [2, 5, 7], data: expected), tol: 1e-4, "no bias")
        for r in 0..<10 { for j in 0..<7 { expected[r * 7 + j] += b.scalars[j] } }
        assertClose(linear(x, weight: w, bias: b), Tensor(shape: [2, 5, 7], data: expected), tol: 1e-4, "bias")
    }

    func testLargerProductRelativeError() {
        // K = 300: tolerance scaled to 1e-5 * K on values of size ~sqrt(K).
        var rng = SeededGenerator(seed: 4)
        let (m, k, n) = (33, 300, 65)
        let a = randomTensor([m, k], &rng), b = randomTensor([k, n], &rng)
        let expected = Tensor(shape: [m, n], data: naiveMatmul2D(a.scalars, b.scalars, m: m, k: k, n: n))
        assertClose(matmul(a, b), expected, tol: 3e-3, "K=300")
    }

    /// The products' work split: the parts cover 0 ..< count exactly once, in whole units (the last
    /// part may end at count); one part per thread without guidance, and with it parts of at least the
    /// minimum (but the last), at most a quarter of the rest per thread, the first the largest.
    func testGemmPartsCoverTheRangeOnce() {
        for (count, unit, threads, minimum) in [(1024, 12, 2, nil), (1024, 12, 2, 4), (1000, 12, 3, 4), (5, 12, 2, 4),
                                                (4096, 12, 4, 4), (70, 32, 2, nil), (300, 32, 5, nil), (37, 12, 2, 1)]
                                               as [(Int, Int, Int, Int?)] {
            let what = "count \(count) unit \(unit) threads \(threads) guided \(String(describing: minimum))"
            let lock = NSLock()
            var parts: [Range<Int>] = []
            forEachGemmPart(count, unit: unit, threads: threads, guidedMinimum: minimum) { lo, hi in
                lock.lock()
                parts.append(lo..<hi)
                lock.unlock()
            }
            let sorted = parts.sorted { $0.lowerBound < $1.lowerBound }
            XCTAssertEqual(sorted.first?.lowerBound, 0, what)
            XCTAssertEqual(sorted.last?.upperBound, count, what)
            for (a, b) in zip(sorted, sorted.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound, what) }
            XCTAssertTrue(sorted.allSatisfy { $0.lowerBound % unit == 0 && !$0.isEmpty }, what)
            let units = (count + unit - 1) / unit
            if let minimum {
                XCTAssertTrue(sorted.dropLast().allSatisfy { $0.count >= minimum * unit }, what)
                let workers = min(threads, units)
                if workers > 1 {
                    XCTAssertLessThanOrEqual(sorted[0].count, max(minimum, units / (4 * workers)) * unit, what)
                    XCTAssertTrue(sorted.allSatisfy { $0.count <= sorted[0].count }, what)
                } else {
                    XCTAssertEqual(sorted.count, 1, what)
                }
            } else {
                XCTAssertEqual(sorted.count, min(threads, units), what)
            }
        }
    }
}
