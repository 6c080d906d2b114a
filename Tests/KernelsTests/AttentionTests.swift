// attention against a Double implementation holding whole score rows; chunking is forced with a
// tiny score budget. Tolerance 1e-5 (outputs are convex combinations of values in [-1, 1)).

import XCTest
@testable import Kernels

final class AttentionTests: XCTestCase {
    func check(b: Int, tq: Int, tk: Int, heads: Int, d: Int, dv: Int, kvBatch: Int,
               maskShape: [Int]?, scale: Float?, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let q = randomTensor([b, tq, heads * d], &rng, lo: -2, hi: 2)
        let k = randomTensor([kvBatch, tk, heads * d], &rng, lo: -2, hi: 2)
        let v = randomTensor([kvBatch, tk, heads * dv], &rng)
        var mask: Tensor? = nil
        if let maskShape {
            var m = randomTensor(maskShape, &rng, lo: -3, hi: 1)
            // Mask out the last key everywhere (but never a whole row).
            for i in 0..<maskShape[0] { for j in 0..<maskShape[1] { m[i, j, tk - 1] = -.infinity } }
            mask = m
        }
        let want = naiveAttention(q: q, k: k, v: v, heads: heads, mask: mask, scale: scale)
        let got = attention(query: q, key: k, value: v, heads: heads, mask: mask, scale: scale)
        assertClose(got, want, tol: 1e-5, "b\(b) tq\(tq) tk\(tk) h\(heads) mask \(String(describing: maskShape))")
    }

    func testUnmasked() {
        check(b: 2, tq: 9, tk: 7, heads: 3, d: 4, dv: 4, kvBatch: 2, maskShape: nil, scale: nil, seed: 200)
    }

    func testFusedHeadsAndChunkedPathUnmasked() {
        // Ragged 32-query blocks and 12-key panels, SD1.5's head widths 40 and 80 and SDXL's 64 (V's
        // last panel with 4 and 8 live rows), value widths that are not a multiple of 12, one key, shared key/value batches, a long row whose
        // scores span hundreds (the fused head's exp down to its underflow). Without AVX-512
        // both runs take the chunked path.
        defer { fusedAttentionEnabled = true }
        for fused in [true, false] {
            fusedAttentionEnabled = fused
            check(b: 2, tq: 100, tk: 77, heads: 2, d: 40, dv: 40, kvBatch: 2, maskShape: nil, scale: nil, seed: 210)
            check(b: 2, tq: 33, tk: 130, heads: 3, d: 64, dv: 13, kvBatch: 1, maskShape: nil, scale: 0.2, seed: 211)
            check(b: 1, tq: 5, tk: 1, heads: 1, d: 3, dv: 7, kvBatch: 1, maskShape: nil, scale: nil, seed: 212)
            // SD1.5's head width 80: the last 12-dimension panel of V has 8 live rows
            check(b: 1, tq: 45, tk: 50, heads: 2, d: 80, dv: 80, kvBatch: 1, maskShape: nil, scale: nil, seed: 214)
            // a long key row with scale 1: scores spread over hundreds, most weights underflow to 0
            check(b: 1, tq: 40, tk: 1100, heads: 1, d: 64, dv: 64, kvBatch: 1, maskShape: nil, scale: 1, seed: 213)
        }
    }

    /// Keys that grow along the sequence (row j times 1 + j / 24): each query's largest scores come late
    /// and rise by hundreds, so the fused head raises its base several times and rescales the earlier
    /// panels' weights at the end; scores of 0 - 800 in both directions, a last panel of 11 keys, two
    /// query blocks. q and k hold small integers, so the scores are exact in Float and only the
    /// softmax's own error is measured against the Double loop.
    func testFusedHeadWithScoresRisingAlongTheKeys() {
        defer { fusedAttentionEnabled = true }
        var rng = SeededGenerator(seed: 215)
        let (tq, tk, d) = (40, 299, 16)
        let q = Tensor(shape: [1, tq, d], data: (0..<(tq * d)).map { _ in Float(Int.random(in: -2...2, using: &rng)) })
        let k = Tensor(shape: [1, tk, d], data: (0..<(tk * d)).map {
            Float(Int.random(in: -2...2, using: &rng) * (1 + $0 / d / 24))
        })
        let v = randomTensor([1, tk, d], &rng)
        let want = naiveAttention(q: q, k: k, v: v, heads: 1, mask: nil, scale: 1)
        for fused in [true, false] {
            fusedAttentionEnabled = fused
            assertClose(attention(query: q, key: k, value: v, heads: 1, scale: 1), want, tol: 1e-5, "fused heads \(fused)")
        }
    }

    /// Self-attention on one fused projection [B, T, 3C]: the fused heads read q, k and v in place (rows
    /// 3C apart), the other path splits them; both equal `attention` on the three parts, and the naive
    /// loop. Batches of 2, ragged 32-query blocks, SDXL's head width 64 and the VAE's single head of 96.
    func testFusedQKVProjection() {
        defer { fusedAttentionEnabled = true }
        for fused in [true, false] {
            fusedAttentionEnabled = fused
            for (b, t, heads, d, seed) in [(2, 70, 2, 64, 220), (1, 33, 1, 96, 221), (1, 1, 3, 8, 222)] as [(Int, Int, Int, Int, UInt64)] {
                var rng = SeededGenerator(seed: seed)
                let c = heads * d
                let qkv = randomTensor([b, t, 3 * c], &rng, lo: -2, hi: 2)
                let parts = split(qkv, axis: 2, sizes: [c, c, c])
                let what = "b\(b) t\(t) h\(heads) d\(d) fused heads \(fused)"
                let got = attention(qkv: qkv, heads: heads)
                XCTAssertEqual(got.shape, [b, t, c], what)
                XCTAssertEqual(got.scalars, attention(query: parts[0], key: parts[1], value: parts[2], heads: heads).scalars,
                               what + ": the three parts apart")
                assertClose(got, naiveAttention(q: parts[0], k: parts[1], v: parts[2], heads: heads, mask: nil, scale: nil),
                            tol: 1e-5, what + " vs naive")
            }
        }
    }

    func testMaskShapesAndScale() {
        check(b: 2, tq: 6, tk: 5, heads: 2, d: 8, dv: 8, kvBatch: 2, maskShape: [2, 6, 5], scale: nil, seed: 201)
        check(b: 2, tq: 6, tk: 5, heads: 2, d: 8, dv: 8, kvBatch: 2, maskShape: [1, 1, 5], scale: 0.3, seed: 202)
        check(b: 2, tq: 6, tk: 5, heads: 2, d: 8, dv: 8, kvBatch: 2, maskShape: [2, 1, 5], scale: nil, seed: 203)
    }

    func testSharedKeyValueBatchAndValueWidth() {
        check(b: 3, tq: 4, tk: 6, heads: 2, d: 3, dv: 5, kvBatch: 1, maskShape: nil, scale: nil, seed: 204)
    }

    func testChunkedQueries() {
        let saved = attentionScoreBudget
        defer { attentionScoreBudget = saved }
        attentionScoreBudget = 20 // 2 query rows per chunk at tk = 9, and a ragged last chunk
        check(b: 2, tq: 11, tk: 9, heads: 2, d: 4, dv: 4, kvBatch: 2, maskShape: [2, 11, 9], scale: nil, seed: 205)
        attentionScoreBudget = 1 // one query row per chunk
        check(b: 1, tq: 5, tk: 9, heads: 3, d: 2, dv: 2, kvBatch: 1, maskShape: [1, 1, 9], scale: nil, seed: 206)
    }

    func testSequentialJobsPath() {
        // One job (B = 1, one head, one chunk) runs on OpenBLAS's threads with a parallel softmax;
        // with one thread every job runs in turn on the caller.
        check(b: 1, tq: 40, tk: 33, heads: 1, d: 8, dv: 6, kvBatch: 1, maskShape: [1, 40, 33], scale: nil, seed: 207)
        let saved = kernelThreadCount
        defer { setThreadCount(saved) }
        setThreadCount(1)
        check(b: 2, tq: 7, tk: 5, heads: 3, d: 4, dv: 4, kvBatch: 2, maskShape: [2, 1, 5], scale: nil, seed: 208)
    }
}
