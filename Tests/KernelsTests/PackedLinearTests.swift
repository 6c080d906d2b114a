// linear over a packed weight against a naive triple loop (Double accumulation), on the kernel
// this CPU gets (AVX-512 12x32 tiles where it has AVX-512F), the AVX2 + FMA one and the portable
// one, over shapes that exercise every edge of the tiling: rows not
// a multiple of 6 (and one row), features not a multiple of 16, K beyond one 256-wide block and
// not a multiple of 8, more than 192 rows (two row blocks), and enough panels for two threads.
// Tolerance: 2e-6 * K absolute, inputs in [-1, 1) (Float sums of K products, blocked by 256).

import CKernels
import XCTest
@testable import Kernels

final class PackedLinearTests: XCTestCase {
    func testPackedLinearAgainstNaiveOnEveryKernel() {
        defer { jpgen_ckernels_force_portable(0) }
        for kernel in ["detected", "avx2", "portable"] {
            jpgen_ckernels_force_portable(0)
            if kernel == "avx2" { jpgen_ckernels_force_avx2(1) }
            if kernel == "portable" { jpgen_ckernels_force_portable(1) }
            var rng = SeededGenerator(seed: 11)
            for (m, k, n) in [(1, 8, 16), (5, 13, 7), (77, 300, 70), (200, 517, 33), (12, 64, 1040)] {
                let x = randomTensor([m, k], &rng), w = randomTensor([n, k], &rng), b = randomTensor([n], &rng)
                let packed = PackedLinearWeight(w)
                var expected = naiveMatmul2D(x.scalars, naiveTranspose2D(w.scalars, rows: n, cols: k), m: m, k: k, n: n)
                let tol = 2e-6 * Float(k)
                let what = "m \(m) k \(k) n \(n) kernel \(kernel)"
                assertClose(linear(x, packed: packed, bias: nil), Tensor(shape: [m, n], data: expected), tol: tol, what)
                for r in 0..<m { for j in 0..<n { expected[r * n + j] += b.scalars[j] } }
                assertClose(linear(x, packed: packed, bias: b), Tensor(shape: [m, n], data: expected), tol: tol, what + " bias")
            }
        }
    }

    func testPackedLinearKeepsLeadingDimensionsAndUnpacks() {
        var rng = SeededGenerator(seed: 12)
        let x = randomTensor([2, 3, 20], &rng), w = randomTensor([17, 20], &rng), b = randomTensor([17], &rng)
        let packed = PackedLinearWeight(w)
        XCTAssertEqual(packed.unpacked().scalars, w.scalars)
        let y = linear(x, packed: packed, bias: b)
        XCTAssertEqual(y.shape, [2, 3, 17])
        assertClose(y, linear(x, weight: w, bias: b), tol: 1e-5, "packed vs sgemm")
        XCTAssertEqual(linear(Tensor(shape: [0, 20]), packed: packed, bias: b).shape, [0, 17])
    }

    /// The AVX-512 sgemm with the weight in its own B panels: the same arithmetic as `linear` through
    /// sgemm (bit for bit), against the naive loop too; columns not a multiple of 32, K over several
    /// 256 blocks, more rows than columns (split by rows) and fewer (split by columns), one row,
    /// leading dimensions kept, the bias added in the micro-kernel; the panels unpack to the weight.
    func testGemmPackedLinearMatchesSgemm() throws {
        var rng = SeededGenerator(seed: 13)
        let probe = randomTensor([64, 64], &rng)
        guard GemmPackedWeight(probe) != nil else {
            throw XCTSkip("no AVX-512 sgemm on this CPU (or JPGEN_GEMM=openblas): GemmPackedWeight is not used")
        }
        // (40, 640, 2600) and (600, 700, 1000) take the k-inner loops (weights over 2 MB, K <= 1280),
        // the second with two row blocks per thread and three k blocks
        for (m, k, n) in [(1, 320, 1280), (77, 300, 70), (300, 517, 33), (40, 640, 2600), (1024, 1280, 96),
                          (600, 700, 1000)] {
            let x = randomTensor([m, k], &rng), w = randomTensor([n, k], &rng), b = randomTensor([n], &rng)
            let packed = try XCTUnwrap(GemmPackedWeight(w))
            XCTAssertEqual(packed.unpacked().scalars, w.scalars, "unpacked m \(m) k \(k) n \(n)")
            let what = "m \(m) k \(k) n \(n)"
            XCTAssertEqual(linear(x, gemmPacked: packed, bias: b).scalars, linear(x, weight: w, bias: b).scalars, what)
            let expected = naiveMatmul2D(x.scalars, naiveTranspose2D(w.scalars, rows: n, cols: k), m: m, k: k, n: n)
            assertClose(linear(x, gemmPacked: packed, bias: nil), Tensor(shape: [m, n], data: expected),
                        tol: 2e-6 * Float(k), what + " vs naive")
            // the bias, added by the micro-kernel with the first k block, on every row and column
            let withBias = expected.indices.map { expected[$0] + b.scalars[$0 % n] }
            assertClose(linear(x, gemmPacked: packed, bias: b), Tensor(shape: [m, n], data: withBias),
                        tol: 2e-6 * Float(k), what + " with bias vs naive")
        }
        let w = randomTensor([70, 64], &rng), x = randomTensor([2, 3, 64], &rng)
        let y = linear(x, gemmPacked: try XCTUnwrap(GemmPackedWeight(w)), bias: nil)
        XCTAssertEqual(y.shape, [2, 3, 70])
        // (a product this small goes to OpenBLAS through sgemm: equal within rounding only)
        assertClose(y, linear(x, weight: w, bias: nil), tol: 2e-6 * 64, "leading dimensions")
    }

    /// A weight stacked from parts (q, k and v) and packed where they lie: the same panels as the
    /// concatenated weight, so the same products bit for bit; parts of 64 and 32 rows and a last one of 17.
    func testGemmPackedWeightStackedFromParts() throws {
        var rng = SeededGenerator(seed: 27)
        guard GemmPackedWeight(randomTensor([64, 64], &rng)) != nil else {
            throw XCTSkip("no AVX-512 sgemm on this CPU (or JPGEN_GEMM=openblas): GemmPackedWeight is not used")
        }
        let k = 300
        let parts = [randomTensor([64, k], &rng), randomTensor([32, k], &rng), randomTensor([17, k], &rng)]
        let whole = concat(parts, axis: 0)
        let stacked = try XCTUnwrap(GemmPackedWeight(stacking: parts))
        XCTAssertEqual(stacked.outFeatures, 113)
        XCTAssertEqual(stacked.unpacked().scalars, whole.scalars)
        let x = randomTensor([500, k], &rng)
        XCTAssertEqual(linear(x, gemmPacked: stacked, bias: nil).scalars,
                       linear(x, gemmPacked: try XCTUnwrap(GemmPackedWeight(whole)), bias: nil).scalars)
    }

    /// The residual added into the product (beta 1): close to residual + linear, in place in a
    /// residual held once, a copy (the caller's tensor unchanged) in a shared one; one and several k
    /// blocks, rows on one thread and split over threads, with and without a bias.
    func testLinearAddingToResidual() throws {
        var rng = SeededGenerator(seed: 19)
        guard GemmPackedWeight(randomTensor([64, 64], &rng)) != nil else {
            throw XCTSkip("no AVX-512 sgemm on this CPU (or JPGEN_GEMM=openblas): GemmPackedWeight is not used")
        }
        for (m, k, n) in [(1, 64, 40), (13, 300, 96), (530, 640, 160), (77, 1300, 33)] {
            let x = randomTensor([m, k], &rng), w = randomTensor([n, k], &rng), b = randomTensor([n], &rng)
            let packed = try XCTUnwrap(GemmPackedWeight(w))
            for bias in [b, nil] {
                let what = "m \(m) k \(k) n \(n) bias \(bias != nil)"
                let start = randomTensor([m, n], &rng, lo: -4, hi: 4)
                let want = start + linear(x, gemmPacked: packed, bias: bias)
                var shared = start
                linear(x, gemmPacked: packed, bias: bias, addingTo: &shared)
                assertClose(shared, want, tol: 2e-6 * Float(k) + 1e-6, what)
                XCTAssertNotEqual(shared.scalars, start.scalars, what + ": the shared residual was written")
                var own = Tensor(shape: start.shape, data: start.scalars)
                let storage = own.base
                linear(x, gemmPacked: packed, bias: bias, addingTo: &own)
                XCTAssertEqual(own.base, storage, what + ": a residual held once is written in place")
                XCTAssertEqual(own.scalars, shared.scalars, what)
            }
        }
    }

    /// The fused GEGLU written as packed rows and the next product on them: bit for bit the unpacked
    /// GEGLU and `linear(_:gemmPacked:bias:addingTo:)`; rows that fill their last panel and rows that do
    /// not, on one thread (split by columns) and split by rows, GEGLU outputs of one and several k
    /// blocks of the second product, with and without biases; the GEGLU's threads split by rows and (with
    /// the size threshold lowered) by its output columns.
    func testPackedGEGLURowsFeedTheNextProduct() throws {
        var rng = SeededGenerator(seed: 23)
        guard GemmPackedWeight(randomTensor([64, 64], &rng)) != nil else {
            throw XCTSkip("no AVX-512 sgemm on this CPU (or JPGEN_GEMM=openblas): GemmPackedWeight is not used")
        }
        let threshold = gegluColumnSplitMinimumBytes
        defer { gegluColumnSplitMinimumBytes = threshold }
        for ((m, k, f, n), columnSplit) in [(13, 64, 64, 40), (96, 300, 320, 96), (530, 320, 160, 64),
                                            (1000, 128, 544, 96)].flatMap({ [($0, false), ($0, true)] }) {
            gegluColumnSplitMinimumBytes = columnSplit ? 0 : threshold
            let x = randomTensor([m, k], &rng), w1 = randomTensor([2 * f, k], &rng), b1 = randomTensor([2 * f], &rng)
            let w2 = randomTensor([n, f], &rng), b2 = randomTensor([n], &rng)
            let first = try XCTUnwrap(GemmPackedWeight(w1)), second = try XCTUnwrap(GemmPackedWeight(w2))
            for biases in [true, false] {
                let what = "m \(m) k \(k) f \(f) n \(n) biases \(biases) column split \(columnSplit)"
                let start = randomTensor([m, n], &rng, lo: -4, hi: 4)
                var want = Tensor(shape: start.shape, data: start.scalars)
                let hidden = try XCTUnwrap(linearGEGLU(x, gemmPacked: first, bias: biases ? b1 : nil), what)
                linear(hidden, gemmPacked: second, bias: biases ? b2 : nil, addingTo: &want)
                let rows = try XCTUnwrap(linearGEGLUPacked(x, gemmPacked: first, bias: biases ? b1 : nil), what)
                XCTAssertEqual(rows.shape, [m, f], what)
                var got = Tensor(shape: start.shape, data: start.scalars)
                linear(rows, gemmPacked: second, bias: biases ? b2 : nil, addingTo: &got)
                rows.release()
                XCTAssertEqual(got.scalars, want.scalars, what)
            }
        }
    }

    /// GEGLU fused into its projection: bit for bit the projection and then `geglu`, and close to a
    /// naive GEGLU in Double; row counts on one thread and split over threads (by rows, and with the size
    /// threshold lowered by output columns: 530 and 1100 rows, the latter in 5 blocks), one and several k
    /// blocks, hidden and gate strips in one row block and in several; nil where out / 2 is not a
    /// multiple of 32.
    func testFusedGEGLUMatchesProjectionThenGEGLU() throws {
        var rng = SeededGenerator(seed: 17)
        guard GemmPackedWeight(randomTensor([64, 64], &rng)) != nil else {
            throw XCTSkip("no AVX-512 sgemm on this CPU (or JPGEN_GEMM=openblas): GemmPackedWeight is not used")
        }
        let threshold = gegluColumnSplitMinimumBytes
        defer { gegluColumnSplitMinimumBytes = threshold }
        for (m, k, f, columnSplit) in [(1, 64, 32, false), (13, 300, 96, false), (250, 40, 64, false),
                                       (530, 320, 160, false), (77, 700, 32, false), (530, 320, 160, true),
                                       (1100, 64, 96, true)] {
            gegluColumnSplitMinimumBytes = columnSplit ? 0 : threshold
            let x = randomTensor([m, k], &rng), w = randomTensor([2 * f, k], &rng), b = randomTensor([2 * f], &rng)
            let packed = try XCTUnwrap(GemmPackedWeight(w))
            for bias in [b, nil] {
                let what = "m \(m) k \(k) f \(f) bias \(bias != nil) column split \(columnSplit)"
                let fused = try XCTUnwrap(linearGEGLU(x, gemmPacked: packed, bias: bias), what)
                XCTAssertEqual(fused.shape, [m, f], what)
                XCTAssertEqual(fused.scalars, geglu(linear(x, gemmPacked: packed, bias: bias)).scalars, what)
                // naive, in Double: h * gelu(g) with the exact erf GELU
                let xs = x.scalars, ws = w.scalars, bs = bias?.scalars
                var want = [Float](repeating: 0, count: m * f)
                for r in 0..<m {
                    for j in 0..<f {
                        var h = Double(bs?[j] ?? 0), g = Double(bs?[f + j] ?? 0)
                        for kk in 0..<k {
                            let xv = Double(xs[r * k + kk])
                            h += xv * Double(ws[j * k + kk])
                            g += xv * Double(ws[(f + j) * k + kk])
                        }
                        want[r * f + j] = Float(h * 0.5 * g * (1 + erf(g / 2.0.squareRoot())))
                    }
                }
                assertClose(fused, Tensor(shape: [m, f], data: want), tol: 4e-6 * Float(k), what + " vs naive")
            }
        }
        // leading dimensions are kept; 2 x 40 outputs (f = 40) is refused
        let x = randomTensor([2, 3, 64], &rng)
        let y = try XCTUnwrap(linearGEGLU(x, gemmPacked: try XCTUnwrap(GemmPackedWeight(randomTensor([128, 64], &rng))),
                                          bias: nil))
        XCTAssertEqual(y.shape, [2, 3, 64])
        XCTAssertNil(linearGEGLU(x, gemmPacked: try XCTUnwrap(GemmPackedWeight(randomTensor([80, 64], &rng))), bias: nil))
    }
}
