// CKernels' AVX-512 product (sgemm_avx512.c) and Kernels' sgemm over it, against a naive triple
// loop (Double accumulation), for every transpose combination, alpha/beta cases and shapes that
// exercise each edge of the blocking: rows not a multiple of 12, columns not a multiple of 32 (and
// below 16), K beyond one 256-deep block, more than 240 rows (two row blocks), leading dimensions
// larger than the matrix, and sizes that split over threads.
// Tolerance: 2e-6 * K absolute, inputs in [-1, 1) (Float sums of K products, blocked by 256).

import CKernels
import XCTest
@testable import Kernels

final class SgemmAVX512Tests: XCTestCase {
    /// Naive C = alpha op(A) op(B) + beta C on explicit leading dimensions.
    func naive(_ ta: Bool, _ tb: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
               b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = ta ? a[p * lda + i] : a[i * lda + p]
                    let bv = tb ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                out[i * ldc + j] = Float(Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])))
            }
        }
        return out
    }

    func testKernelAgainstNaive() throws {
        try XCTSkipUnless(jpgen_sgemm_avx512_available() == 1, "the CPU has no AVX-512")
        var rng = SeededGenerator(seed: 21)
        let shapes = [(1, 1, 1), (13, 7, 29), (12, 32, 256), (25, 33, 257), (250, 65, 300), (7, 100, 513)]
        for (m, n, k) in shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-1.5, 0.25)] {
                    let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2
                    let a = randomTensor([(ta ? k : m) * lda], &rng).scalars
                    let b = randomTensor([(tb ? n : k) * ldb], &rng).scalars
                    var c = randomTensor([m * ldc], &rng).scalars
                    if beta == 0 { for i in c.indices { c[i] = .nan } }   // beta 0 must not read C
                    let expected = naive(ta, tb, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                                         beta: beta, c: beta == 0 ? [Float](repeating: 0, count: c.count) : c, ldc: ldc)
                    var ws = [Float](repeating: 0, count: jpgen_sgemm_workspace_floats(m, n, k))
                    jpgen_sgemm_avx512(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, &c, ldc, &ws)
                    var worst: Float = 0
                    for i in 0..<m { for j in 0..<n { worst = max(worst, abs(c[i * ldc + j] - expected[i * ldc + j])) } }
                    XCTAssertLessThanOrEqual(worst, 2e-6 * Float(k) + 1e-6,
                                             "m \(m) n \(n) k \(k) ta \(ta) tb \(tb) alpha \(alpha) beta \(beta)")
                    // Padding columns of C (past n) are never written.
                    if beta == 0 { for i in 0..<m { for j in n..<ldc { XCTAssert(c[i * ldc + j].isNaN) } } }
                }
            }
        }
    }

    func testPackedAAgainstNaive() throws {
        try XCTSkipUnless(jpgen_sgemm_avx512_available() == 1, "the CPU has no AVX-512")
        var rng = SeededGenerator(seed: 23)
        // 37 rows (ragged last panel), K past one 256-deep block; the rows computed in two calls
        // (0..<24 and 24..<37) from the one packed A, as threads would.
        let (m, n, k) = (37, 45, 300)
        for ta in [false, true] {
            let a = randomTensor([m * k], &rng).scalars, b = randomTensor([k * n], &rng).scalars
            let lda = ta ? m : k
            let expected = naive(ta, false, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: n, beta: 0,
                                 c: [Float](repeating: 0, count: m * n), ldc: n)
            var packed = [Float](repeating: .nan, count: jpgen_sgemm_packed_a_floats(m, k))
            jpgen_sgemm_pack_a(ta ? 1 : 0, m, k, a, lda, &packed)
            var c = [Float](repeating: .nan, count: m * n)
            var ws = [Float](repeating: 0, count: jpgen_sgemm_workspace_floats(m, n, k))
            c.withUnsafeMutableBufferPointer { cp in
                for (row0, rows) in [(0, 24), (24, 13)] {
                    jpgen_sgemm_avx512_packed_a(m, row0, rows, n, k, 0.5, packed, 0, b, n, 0, cp.baseAddress! + row0 * n, n, &ws)
                }
            }
            let worst = zip(c, expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 2e-6 * Float(k), "packed A, trans_a \(ta)")
        }
    }

    func testThreadedSplitsAgainstNaive() throws {
        try XCTSkipUnless(useAVX512GEMM, "sgemm runs OpenBLAS here")
        var rng = SeededGenerator(seed: 22)
        // Tall (split by rows) and wide (split by columns) products large enough for two threads.
        for (m, n, k) in [(301, 40, 300), (30, 401, 290)] {
            let a = randomTensor([m, k], &rng), b = randomTensor([k, n], &rng)
            let expected = Tensor(shape: [m, n], data: naiveMatmul2D(a.scalars, b.scalars, m: m, k: k, n: n))
            for threads in [1, 2, 3] {
                setThreadCount(threads)
                assertClose(matmul(a, b), expected, tol: 2e-6 * Float(k), "\(m)x\(n)x\(k) on \(threads) threads")
            }
        }
        setThreadCount(ProcessInfo.processInfo.activeProcessorCount)
    }

    /// The 16 x 16 register transpose over whole and partial blocks, with leading dimensions.
    func testTranspose() throws {
        try XCTSkipUnless(jpgen_sgemm_avx512_available() == 1, "the CPU has no AVX-512")
        var rng = SeededGenerator(seed: 29)
        for (rows, cols) in [(1, 1), (12, 32), (16, 16), (17, 45), (64, 32), (80, 13)] {
            let lds = cols + 3, ldd = rows + 5
            let src = randomTensor([rows * lds], &rng).scalars
            var dst = [Float](repeating: .nan, count: cols * ldd)
            jpgen_transpose_avx512(src, lds, rows, cols, &dst, ldd)
            for j in 0..<cols {
                for i in 0..<rows { XCTAssertEqual(dst[j * ldd + i], src[i * lds + j], "\(rows)x\(cols) [\(i), \(j)]") }
                for i in rows..<ldd { XCTAssert(dst[j * ldd + i].isNaN, "\(rows)x\(cols): padding written") }
            }
        }
    }
}
