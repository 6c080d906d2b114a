// concat/split/chunk/permute/upsample/pad/embedding/reductions against index-by-index loops.
// These copy values exactly: tolerance 0 (reductions 1e-5).

import XCTest
@testable import Kernels

final class ShapeOpsTests: XCTestCase {
    func testConcatSplitChunk() {
        var rng = SeededGenerator(seed: 400)
        let a = randomTensor([2, 3, 4], &rng), b = randomTensor([2, 5, 4], &rng)
        let c = concat([a, b], axis: 1)
        XCTAssertEqual(c.shape, [2, 8, 4])
        for i in 0..<2 { for j in 0..<8 { for k in 0..<4 {
            XCTAssertEqual(c[i, j, k], j < 3 ? a[i, j, k] : b[i, j - 3, k])
        } } }
        let parts = split(c, axis: -2, sizes: [3, 5])
        assertClose(parts[0], a, tol: 0, "split 0")
        assertClose(parts[1], b, tol: 0, "split 1")
        let last = concat([a, a], axis: -1)
        XCTAssertEqual(last.shape, [2, 3, 8])
        XCTAssertEqual(last[1, 2, 5], a[1, 2, 1])
        let halves = chunk(last, parts: 2, axis: 2)
        assertClose(halves[0], a, tol: 0, "chunk 0")
        assertClose(halves[1], a, tol: 0, "chunk 1")
        assertClose(concat([a, b], axis: 1), concat([a] + split(b, axis: 1, sizes: [2, 0, 3]), axis: 1), tol: 0, "empty piece")
        XCTAssertEqual(concat([a, a, a], axis: 0).shape, [6, 3, 4])
        let s = slice(c, axis: 1, range: 2..<5)
        XCTAssertEqual(s.shape, [2, 3, 4])
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { XCTAssertEqual(s[i, j, k], c[i, j + 2, k]) } } }
        XCTAssertEqual(slice(c, axis: -1, range: 0..<0).shape, [2, 8, 0])
    }

    func testPermuteAndTranspose() {
        var rng = SeededGenerator(seed: 401)
        let x = randomTensor([2, 3, 4, 5], &rng)
        let dims = [2, 0, 3, 1]
        let p = permute(x, dims)
        XCTAssertEqual(p.shape, [4, 2, 5, 3])
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { for l in 0..<5 {
            XCTAssertEqual(p[k, i, l, j], x[i, j, k, l])
        } } } }
        let t = transpose(x, 1, -1)
        XCTAssertEqual(t.shape, [2, 5, 4, 3])
        XCTAssertEqual(t[1, 4, 2, 0], x[1, 0, 2, 4])
        assertClose(permute(permute(x, [0, 2, 3, 1]), [0, 3, 1, 2]), x, tol: 0, "NCHW->NHWC->NCHW")
    }

    /// The last two dimensions swapped (permute's fast path with AVX-512) and the residual added in the
    /// same pass, at sizes that leave partial 16 x 16 blocks on both sides.
    func testTransposeLastTwo() {
        var rng = SeededGenerator(seed: 403)
        for shape in [[2, 37, 21], [16, 33], [1, 16, 16], [3, 1, 40]] {
            let x = randomTensor(shape, &rng)
            let r = shape[shape.count - 2], c = shape[shape.count - 1], mats = x.count / (r * c)
            let outShape = Array(shape.dropLast(2)) + [c, r]
            let addend = randomTensor(outShape, &rng)
            var dims = Array(0..<shape.count)
            dims.swapAt(shape.count - 2, shape.count - 1)
            let plain = permute(x, dims), summed = transposeLastTwo(x, adding: addend)
            XCTAssertEqual(plain.shape, outShape)
            XCTAssertEqual(summed.shape, outShape)
            let xs = x.scalars, ps = plain.scalars, ss = summed.scalars, ads = addend.scalars
            for m in 0..<mats { for i in 0..<r { for j in 0..<c {
                let o = m * r * c + j * r + i
                XCTAssertEqual(ps[o], xs[m * r * c + i * c + j], "\(shape) [\(m), \(j), \(i)]")
                XCTAssertEqual(ss[o], xs[m * r * c + i * c + j] + ads[o], "\(shape) [\(m), \(j), \(i)] + addend")
            } } }
        }
    }

    func testUpsampleAndPad() {
        var rng = SeededGenerator(seed: 402)
        let x = randomTensor([2, 3, 4, 5], &rng)
        let u = upsampleNearest2x(x)
        XCTAssertEqual(u.shape, [2, 3, 8, 10])
        for n in 0..<2 { for c in 0..<3 { for y in 0..<8 { for xx in 0..<10 {
            XCTAssertEqual(u[n, c, y, xx], x[n, c, y / 2, xx / 2])
        } } } }
        let p = pad2d(x, top: 1, bottom: 2, left: 0, right: 3, value: -7)
        XCTAssertEqual(p.shape, [2, 3, 7, 8])
        for n in 0..<2 { for c in 0..<3 { for y in 0..<7 { for xx in 0..<8 {
            let inside = y >= 1 && y < 5 && xx < 5
            XCTAssertEqual(p[n, c, y, xx], inside ? x[n, c, y - 1, xx] : -7)
        } } } }
    }

    func testEmbedding() {
        var rng = SeededGenerator(seed: 403)
        let table = randomTensor([10, 6], &rng)
        let e = embedding(table, ids: [[3, 0, 9], [9, 9, 1]])
        XCTAssertEqual(e.shape, [2, 3, 6])
        for d in 0..<6 {
            XCTAssertEqual(e[0, 0, d], table[3, d]); XCTAssertEqual(e[1, 2, d], table[1, d])
        }
    }

    func testTokenIDValidation() throws {
        try validateTokenIDs([[0, 9], [3, 4]], vocabularySize: 10)
        XCTAssertThrowsError(try validateTokenIDs([[0, 10]], vocabularySize: 10)) { error in
            XCTAssertEqual(error as? KernelsError,
                           .invalidArgument("token id 10 at row 0, position 1 is outside the vocabulary of 10"))
        }
        XCTAssertThrowsError(try validateTokenIDs([[0, 1], [2]], vocabularySize: 10)) { error in
            XCTAssertEqual(error as? KernelsError, .invalidArgument("token id row 1 has 1 ids, row 0 has 2"))
        }
    }

    func testSumAndMean() {
        var rng = SeededGenerator(seed: 404)
        let x = randomTensor([3, 4, 5], &rng)
        for axis in [0, 1, 2, -1] {
            let ax = axis < 0 ? axis + 3 : axis
            var shape = x.shape; shape.remove(at: ax)
            var want = [Float]()
            for i in 0..<(ax == 0 ? 4 : 3) { for j in 0..<(ax == 2 ? 4 : 5) {
                var s = 0.0
                for a in 0..<x.shape[ax] {
                    let idx = ax == 0 ? [a, i, j] : ax == 1 ? [i, a, j] : [i, j, a]
                    s += Double(x[idx[0], idx[1], idx[2]])
                }
                want.append(Float(s))
            } }
            let wantSum = Tensor(shape: shape, data: want)
            assertClose(sum(x, axis: axis), wantSum, tol: 1e-5, "sum axis \(axis)")
            assertClose(mean(x, axis: axis), scale(wantSum, 1 / Float(x.shape[ax])), tol: 1e-5, "mean axis \(axis)")
            var kept = x.shape; kept[ax] = 1
            XCTAssertEqual(mean(x, axis: axis, keepDims: true).shape, kept)
        }
    }

    func testParallelForVisitsEachIndexOnce() {
        var seen = [Int](repeating: 0, count: 1001)
        seen.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            parallelFor(1001) { base[$0] += 1 }
        }
        XCTAssertEqual(seen, [Int](repeating: 1, count: 1001))
        let saved = kernelThreadCount
        setThreadCount(1)
        XCTAssertEqual(kernelThreadCount, 1)
        var order: [Int] = []
        parallelFor(5) { order.append($0) }
        XCTAssertEqual(order, [0, 1, 2, 3, 4], "one thread runs in order on the caller")
        setThreadCount(saved)
        XCTAssertEqual(maxAbsDifference(Tensor(shape: [2], data: [1, 2]), Tensor(shape: [2], data: [1.5, 0])), 2)
        XCTAssertTrue(maxAbsDifference(Tensor(shape: [1], data: [.nan]), Tensor(shape: [1], data: [0])).isNaN)
    }

    func testValidationErrors() {
        XCTAssertThrowsError(try Tensor(validatingShape: [2, 3], data: [1, 2])) { error in
            XCTAssertEqual(error as? KernelsError, .elementCount(shape: [2, 3], expected: 6, actual: 2))
        }
        XCTAssertThrowsError(try checkShape(Tensor(shape: [2, 2]), [4], name: "w")) { error in
            XCTAssertEqual(error as? KernelsError, .shapeMismatch(name: "w", expected: [4], actual: [2, 2]))
            XCTAssertEqual((error as? KernelsError)?.errorDescription, "tensor 'w' has shape [2, 2], expected [4]")
        }
    }
}
