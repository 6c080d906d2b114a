// Scaled dot-product attention, multi-head, computed in chunks of query rows so that the score
// buffer stays bounded (at most `attentionScoreBudget` floats) for 4096+ tokens.
// Reference: torch.nn.functional.scaled_dot_product_attention; diffusers' AttnProcessor
// (heads are the H slices of the channel dimension, D = channels / H).
//
// For each batch b, head h and chunk of query rows:
//   S = scale * Q_bh[rows] K_bh^T (+ mask)   sgemm, strided views into [B, T, H*D], no copies
//   P = softmax(S)                           rows spread over cores by parallelRanges
//   O_bh[rows] = P V_bh                      sgemm, written straight into the output
// sgemm runs on the calling thread (OpenBLAS's own threads), never inside parallelRanges.

import Foundation

/// Largest score buffer (floats) one attention chunk may use: 4 Mi floats = 16 MiB.
nonisolated(unsafe) public var attentionScoreBudget = 1 << 22

/// Multi-head attention.
/// query: [B, Tq, H*D], key: [B, Tk, H*D], value: [B, Tk, H*Dv] -> [B, Tq, H*Dv].
/// key/value may have batch 1 (shared by every query batch).
/// mask: ADDITIVE, [Bm, Tq, Tk] or [Bm, 1, Tk] with Bm = 1 or B, shared by all heads.
/// scale: defaults to 1/sqrt(D).
public func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int,
                      mask: Tensor? = nil, scale: Float? = nil) -> Tensor {
    precondition(query.rank == 3 && key.rank == 3 && value.rank == 3,
                 "attention needs [B, T, C] tensors, got \(query.shape), \(key.shape), \(value.shape)")
    let b = query.shape[0], tq = query.shape[1], cq = query.shape[2]
    let bk = key.shape[0], tk = key.shape[1], ck = key.shape[2], cv = value.shape[2]
    precondition(heads > 0 && cq % heads == 0 && cv % heads == 0,
                 "attention: channels \(cq)/\(cv) not divisible by \(heads) heads")
    precondition(ck == cq, "attention: key channels \(ck) differ from query channels \(cq)")
    precondition((bk == b || bk == 1) && value.shape[0] == bk && value.shape[1] == tk,
                 "attention: key \(key.shape) and value \(value.shape) do not fit query \(query.shape)")
    let d = cq / heads, dv = cv / heads
    let alpha = scale ?? 1 / Float(d).squareRoot()
    var maskRows = 0, maskBatchStep = 0
    if let mask {
        precondition(mask.rank == 3 && (mask.shape[0] == 1 || mask.shape[0] == b)
                     && (mask.shape[1] == 1 || mask.shape[1] == tq) && mask.shape[2] == tk,
                     "attention mask \(mask.shape) must be [1 or \(b), 1 or \(tq), \(tk)]")
        maskRows = mask.shape[1]
        maskBatchStep = mask.shape[0] == 1 ? 0 : maskRows * tk
    }
    let out = Tensor(uninitializedShape: [b, tq, cv])
    if out.count == 0 { return out }
    if tk == 0 { out.fresh.update(repeating: 0, count: out.count); return out }
    let chunk = max(1, min(tq, attentionScoreBudget / tk))
    let scores = UnsafeMutablePointer<Float>.allocate(capacity: chunk * tk)
    defer { scores.deallocate() }
    let qBase = query.base, kBase = key.base, vBase = value.base, oBase = out.fresh
    let maskBase = mask?.base

    for bi in 0..<b {
        let kb = bk == 1 ? 0 : bi
        for h in 0..<heads {
            var q0 = 0
            while q0 < tq {
                let rows = min(chunk, tq - q0)
                // scores: [rows, Tk] = alpha * Q[bi, q0..<q0+rows, h*D..<(h+1)*D] K[kb, :, h*D..]^T
                sgemm(transA: false, transB: true, m: rows, n: tk, k: d, alpha: alpha,
                      a: qBase + (bi * tq + q0) * cq + h * d, lda: cq,
                      b: kBase + kb * tk * ck + h * d, ldb: ck,
                      beta: 0, c: scores, ldc: tk)
                let rowStart = q0
                parallelRanges(rows, grain: max(1, 8192 / tk)) { r in
                    for i in r {
                        let s = scores + i * tk
                        if let maskBase {
                            let mrow = maskRows == 1 ? 0 : rowStart + i
                            let m = maskBase + bi * maskBatchStep + mrow * tk
                            for j in 0..<tk { s[j] += m[j] }
                        }
                        softmaxRow(s, tk)
                    }
                }
                // out[bi, q0..<q0+rows, h*Dv..] = P V[kb, :, h*Dv..]
                sgemm(transA: false, transB: false, m: rows, n: dv, k: tk,
                      a: scores, lda: tk,
                      b: vBase + kb * tk * cv + h * dv, ldb: cv,
                      beta: 0, c: oBase + (bi * tq + q0) * cv + h * dv, ldc: cv)
                q0 += rows
            }
        }
    }
    return out
}
