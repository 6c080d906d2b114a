// Scaled dot-product attention, multi-head, computed in chunks of query rows so that the score
// buffers stay bounded (`attentionScoreBudget` floats per thread) for 4096+ tokens.
// Reference: torch.nn.functional.scaled_dot_product_attention; diffusers' AttnProcessor
// (heads are the H slices of the channel dimension, D = channels / H).
//
// For each batch b, head h and chunk of query rows (one job):
//   S = scale * Q_bh[rows] K_bh^T (+ mask)   sgemm, strided views into [B, T, H*D], no copies
//   P = exp(S - rowmax)                      in place, one row at a time (unnormalised)
//   O_bh[rows] = (P V_bh) / rowsum(P)        sgemm, written straight into the output, then scaled
// Jobs are spread over worker threads, each with single-threaded sgemm (OpenBLAS set to 1 thread
// meanwhile); with fewer jobs than threads they run in turn with OpenBLAS's threads instead.
// Without a mask, on CPUs with AVX-512, each (batch, head, range of queries) runs CKernels' fused
// head instead (attention_avx512.c: transposed products, no score matrix repacked).

import CKernels
import Foundation

/// Largest score buffer (floats) one worker thread may use: 256 Ki floats = 1 MiB (64 query rows
/// at 4096 keys), which keeps the scores cache-resident between the sgemm, the softmax and P V
/// (measured 9% faster than 16 MiB chunks for SD's 4096-token self-attention).
nonisolated(unsafe) public var attentionScoreBudget = 1 << 18

/// False makes unmasked attention take the chunked sgemm path too (for tests).
nonisolated(unsafe) var fusedAttentionEnabled = true

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
    let qBase = query.base, kBase = key.base, vBase = value.base, oBase = out.fresh
    let maskBase = mask?.base
    if mask == nil && useAVX512GEMM && fusedAttentionEnabled {
        fusedAttentionAVX512(q: qBase, ldq: cq, k: kBase, ldk: ck, v: vBase, ldv: cv, out: oBase, b: b, bk: bk,
                             tq: tq, tk: tk, heads: heads, d: d, dv: dv, scale: alpha)
        return out
    }

    // One job = (batch, head, chunk of query rows). With at least as many jobs as threads, each
    // worker runs whole jobs with a single-threaded sgemm and its own score buffer; otherwise the
    // jobs run in turn with OpenBLAS's threads and the softmax rows spread by parallelRanges.
    let threads = kernelThreadCount
    let perThreadRows = max(1, min(tq, attentionScoreBudget / tk))
    let workerMode = threads > 1 && b * heads * ((tq + perThreadRows - 1) / perThreadRows) >= threads
    let workers = workerMode ? threads : 1
    let chunk = workerMode ? perThreadRows : max(1, min(tq, attentionScoreBudget * threads / tk))
    let chunksPerHead = (tq + chunk - 1) / chunk
    let jobs = b * heads * chunksPerHead
    let scoreWorkspace = Workspace(count: workers * chunk * tk)
    defer { scoreWorkspace.release() }
    let scoreBuffers = scoreWorkspace.pointer
    let rowFactors = UnsafeMutablePointer<Float>.allocate(capacity: workers * chunk)
    defer { rowFactors.deallocate() }

    // The softmax is left unnormalised (exp(s - max) only); each output row of P V is scaled by
    // 1 / sum instead, which touches Dv values per row rather than Tk.
    func runJob(_ job: Int, scores: UnsafeMutablePointer<Float>, factors: UnsafeMutablePointer<Float>,
                parallelSoftmax: Bool) {
        let bi = job / (heads * chunksPerHead), h = job / chunksPerHead % heads
        let q0 = job % chunksPerHead * chunk, rows = min(chunk, tq - q0)
        let kb = bk == 1 ? 0 : bi
        // scores: [rows, Tk] = alpha * Q[bi, q0..<q0+rows, h*D..<(h+1)*D] K[kb, :, h*D..]^T
        sgemm(transA: false, transB: true, m: rows, n: tk, k: d, alpha: alpha,
              a: qBase + (bi * tq + q0) * cq + h * d, lda: cq,
              b: kBase + kb * tk * ck + h * d, ldb: ck,
              beta: 0, c: scores, ldc: tk)
        let softmaxRows = { (r: Range<Int>) in
            for i in r {
                let s = scores + i * tk
                if let maskBase {
                    let m = maskBase + bi * maskBatchStep + (maskRows == 1 ? 0 : q0 + i) * tk
                    for j in 0..<tk { s[j] += m[j] }
                }
                factors[i] = unnormalizedSoftmaxRow(s, tk)
            }
        }
        if parallelSoftmax {
            parallelRanges(rows, grain: max(1, 8192 / tk), softmaxRows)
        } else {
            softmaxRows(0..<rows)
        }
        // out[bi, q0..<q0+rows, h*Dv..] = P V[kb, :, h*Dv..]
        sgemm(transA: false, transB: false, m: rows, n: dv, k: tk,
              a: scores, lda: tk,
              b: vBase + kb * tk * cv + h * dv, ldb: cv,
              beta: 0, c: oBase + (bi * tq + q0) * cv + h * dv, ldc: cv)
        for i in 0..<rows {
            let o = oBase + (bi * tq + q0 + i) * cv + h * dv, f = factors[i]
            for j in 0..<dv { o[j] *= f }
        }
    }

    if workerMode {
        parallelWorkersWithSerialBLAS(workers) { worker in
            var job = worker
            while job < jobs {
                runJob(job, scores: scoreBuffers + worker * chunk * tk, factors: rowFactors + worker * chunk,
                       parallelSoftmax: false)
                job += workers
            }
        }
    } else {
        for job in 0..<jobs { runJob(job, scores: scoreBuffers, factors: rowFactors, parallelSoftmax: true) }
    }
    return out
}

/// Self-attention on one projection of q, k and v side by side (diffusers' fuse_qkv_projections: one
/// product instead of three, its input packed once): qkv [B, T, 3 * H*D] -> [B, T, H*D], the same as
/// `attention(query:key:value:heads:scale:)` on its three thirds. The fused AVX-512 heads read the thirds
/// in place; otherwise they are copied apart first.
public func attention(qkv: Tensor, heads: Int, scale: Float? = nil) -> Tensor {
    precondition(qkv.rank == 3 && qkv.shape[2] % 3 == 0,
                 "attention(qkv:) needs [B, T, 3 * C], got \(qkv.shape)")
    let b = qkv.shape[0], t = qkv.shape[1], c = qkv.shape[2] / 3
    precondition(heads > 0 && c % heads == 0, "attention: channels \(c) not divisible by \(heads) heads")
    guard useAVX512GEMM && fusedAttentionEnabled else {
        let parts = split(qkv, axis: 2, sizes: [c, c, c])
        return attention(query: parts[0], key: parts[1], value: parts[2], heads: heads, scale: scale)
    }
    let out = Tensor(uninitializedShape: [b, t, c])
    if out.count == 0 { return out }
    let d = c / heads, base = qkv.base
    fusedAttentionAVX512(q: base, ldq: 3 * c, k: base + c, ldk: 3 * c, v: base + 2 * c, ldv: 3 * c, out: out.fresh,
                         b: b, bk: b, tq: t, tk: t, heads: heads, d: d, dv: d, scale: scale ?? 1 / Float(d).squareRoot())
    return out
}

/// The fused AVX-512 heads: jobs of (batch, head, range of queries), at least two per thread when
/// the queries allow, claimed by the workers as they come free, each with its own workspace (the K
/// and V panels are packed per job: about tk * (d + dv) floats, small beside the job's
/// 2 * rows * tk * (d + dv) flops). Rows of q, k and v are ldq, ldk and ldv floats apart (a head's
/// values at h * d of its row); out is [B, Tq, H * Dv].
private func fusedAttentionAVX512(q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                                  v: UnsafePointer<Float>, ldv: Int, out: UnsafeMutablePointer<Float>, b: Int, bk: Int,
                                  tq: Int, tk: Int, heads: Int, d: Int, dv: Int, scale: Float) {
    let cv = heads * dv
    let threads = kernelThreadCount
    let pairs = b * heads
    // Query ranges of whole 32-query blocks, enough jobs for every thread.
    let blocks = (tq + 31) / 32
    let rangesPerHead = min(blocks, max(1, (2 * threads + pairs - 1) / pairs))
    let jobs = pairs * rangesPerHead
    let workers = min(threads, jobs)
    let counter = WorkCounter()
    parallelFor(workers) { _ in
        let workspace = Workspace(count: jpgen_attention_workspace_floats(tk, d, dv))
        defer { workspace.release() }
        while let job = counter.claim(below: jobs) {
            let pair = job / rangesPerHead, range = job % rangesPerHead
            let bi = pair / heads, h = pair % heads, kb = bk == 1 ? 0 : bi
            let q0 = range * blocks / rangesPerHead * 32, q1 = min(tq, (range + 1) * blocks / rangesPerHead * 32)
            if q0 < q1 {
                jpgen_attention_head_avx512(q + (bi * tq + q0) * ldq + h * d, ldq, q1 - q0,
                                            k + kb * tk * ldk + h * d, ldk, v + kb * tk * ldv + h * dv, ldv,
                                            tk, d, dv, scale, out + (bi * tq + q0) * cv + h * dv, cv,
                                            workspace.pointer)
            }
        }
    }
}
