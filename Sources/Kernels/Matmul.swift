// Matrix products: matmul (batched, broadcasting) and linear, all through `sgemm`, which runs
// CKernels' AVX-512 product (sgemm_avx512.c) where the CPU has AVX-512 and OpenBLAS's cblas_sgemm
// elsewhere. Row-major throughout (the Tensor layout, see Tensor.swift).
//
// Why a product of our own: the OpenBLAS that Debian ships (0.3.21) runs its AVX2 kernels on AMD
// Zen 4/5 (and OPENBLAS_CORETYPE=Haswell is set on machines where its AVX-512 kernels are not
// trusted), which leaves half of the vector width unused: on a 2-core Zen 5, 2048^3 runs at about
// 110 GFLOP/s per core with OpenBLAS and about 160-170 with the AVX-512 kernel (PyTorch's MKL
// also runs AVX2 code there, about 95). JPGEN_GEMM=openblas forces OpenBLAS everywhere.

import CKernels
import COpenBLAS
import Foundation

extension Tensor {
    /// Read pointer to the elements (valid while the tensor lives; Kernels-internal).
    @inline(__always) var base: UnsafePointer<Float> { UnsafePointer(storage.pointer) }
    /// Write pointer, only for tensors a kernel has just created (never for shared storage).
    @inline(__always) var fresh: UnsafeMutablePointer<Float> { storage.pointer }
}

/// C = alpha * op(A) * op(B) + beta * C, row-major, with explicit leading dimensions.
/// A: [M, K] (or [K, M] stored when transA), B: [K, N] (or [N, K] stored when transB), C: [M, N].
@inline(__always)
public func sgemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    if m == 0 || n == 0 { return }
    if useAVX512GEMM && m * n * k >= 32 * 32 * 32 {
        sgemmAVX512(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                    a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    _ = openBLASIdleSpinShortened
    if k == 0 {
        // BLAS semantics: C = beta * C.
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
        }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// True when `sgemm` uses CKernels' AVX-512 product (the CPU has AVX-512F and JPGEN_GEMM is not
/// "openblas").
public let useAVX512GEMM: Bool = {
    ProcessInfo.processInfo.environment["JPGEN_GEMM"] != "openblas" && jpgen_sgemm_avx512_available() == 1
}()

/// At least this many multiply-adds per thread before `sgemm` splits a product over threads.
let gemmWorkPerThread = 1 << 21

/// CKernels' AVX-512 product, split over up to `kernelThreadCount` threads (one thread inside
/// `parallelWorkersWithSerialBLAS`): C is cut along its longer side, into blocks of whole
/// micro-tiles (12 rows or 32 columns), and each thread packs only its part of the larger operand.
/// With `packedB` (from jpgen_sgemm_pack_b, all n columns; transA false), B is read from there and
/// `b` is not used; `bias` (n values, with `packedB` only) is then added to every row of C.
func sgemmAVX512(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>?, ldb: Int,
                 beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, packedB: UnsafePointer<Float>? = nil,
                 bias: UnsafePointer<Float>? = nil) {
    precondition(packedB == nil || !transA, "sgemmAVX512: a packed B needs A untransposed")
    precondition(bias == nil || packedB != nil, "sgemmAVX512: a bias goes with a packed B")
    let threads = gemmThreads(work: m * n * max(k, 1))
    // With B packed beforehand only A is packed here: cutting the rows gives each thread half of A to
    // pack (cutting the columns, every thread packs all of A), as long as each keeps enough rows for
    // the B panels' reuse.
    let splitRows = packedB != nil ? m >= 240 * threads : m >= n
    // Rows against a packed weight go in parts claimed as threads come free (no extra packing); other
    // products one part per thread (each part packs its own B, or all of A).
    let guided = splitRows && packedB != nil ? gemmGuidedRowUnits : nil
    forEachGemmPart(splitRows ? m : n, unit: splitRows ? 12 : 32, threads: threads, guidedMinimum: guided) { lo, hi in
        let pm = splitRows ? hi - lo : m, pn = splitRows ? n : hi - lo
        let workspace = Workspace(count: jpgen_sgemm_workspace_floats(pm, pn, k))
        defer { workspace.release() }
        // Row block lo..<hi of op(A) and C, or column block of op(B) and C.
        let ap = splitRows ? (transA ? a + lo : a + lo * lda) : a
        let cp = splitRows ? c + lo * ldc : c + lo
        if let packedB {
            jpgen_sgemm_avx512_packed_b(n, splitRows ? 0 : lo, pm, pn, k, alpha, ap, lda, packedB, beta,
                                        bias.map { splitRows ? $0 : $0 + lo }, cp, ldc, workspace.pointer)
        } else {
            let bp = splitRows ? b! : (transB ? b! + lo * ldb : b! + lo)
            jpgen_sgemm_avx512(transA ? 1 : 0, transB ? 1 : 0, pm, pn, k, alpha, ap, lda, bp, ldb, beta,
                               cp, ldc, workspace.pointer)
        }
    }
}

/// Threads for a product of `work` multiply-adds: one inside a serial-BLAS region, else one per
/// gemmWorkPerThread, at most kernelThreadCount.
func gemmThreads(work: Int) -> Int {
    serialBLASDepth > 0 ? 1 : max(1, min(kernelThreadCount, work / gemmWorkPerThread))
}

/// 0 ..< count cut into parts of whole `unit`s (the micro-kernel's 12 rows or 32 columns), body(lo, hi)
/// for each: on the caller when there is one thread, else on up to `threads` threads. Without
/// `guidedMinimum`, one part per thread. With it, each thread takes a part as it comes free, a quarter
/// of what is left per thread but at least `guidedMinimum` units: a thread the host stalls (on this
/// 2-core VM, 13% of an SDXL step's products had one thread finish over 10% after the other, by up to
/// 45 ms) then leaves the rest of the work to the others.
func forEachGemmPart(_ count: Int, unit: Int, threads: Int, guidedMinimum: Int? = nil,
                     _ body: (_ lo: Int, _ hi: Int) -> Void) {
    let units = (count + unit - 1) / unit
    let workers = min(threads, units)
    if workers <= 1 {
        if count > 0 { body(0, count) }
        return
    }
    guard let guidedMinimum else {
        DispatchQueue.concurrentPerform(iterations: workers) { part in
            let lo = part * units / workers * unit, hi = min((part + 1) * units / workers * unit, count)
            if lo < hi { body(lo, hi) }
        }
        return
    }
    let counter = WorkCounter()
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
        while let part = counter.claimRange(total: units, share: 4 * workers, minimum: guidedMinimum) {
            body(part.lowerBound * unit, min(part.upperBound * unit, count))
        }
    }
}

/// The smallest part, in 12-row units, of a product's rows against a weight packed beforehand when
/// threads claim them as they come free: each part streams the whole weight past its rows, and 48 rows
/// still use each of its panels for 4 micro-tiles.
let gemmGuidedRowUnits = 4

/// Matrix product with optional transposes of the stored operands.
/// a: [M, K] or [..., M, K] (stored [K, M] / [..., K, M] when transposeA),
/// b: [K, N] or [..., K, N] (stored [N, K] / [..., N, K] when transposeB) -> [..., M, N].
/// The batch dimensions must match, or one operand is rank 2 (or has batch size 1 and no more batch
/// dimensions than the other) and broadcasts over the other's batch.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank >= 2 operands, got \(a.shape) and \(b.shape)")
    let aRows = a.shape[a.rank - 2], aCols = a.shape[a.rank - 1]
    let bRows = b.shape[b.rank - 2], bCols = b.shape[b.rank - 1]
    let m = transposeA ? aCols : aRows, k = transposeA ? aRows : aCols
    let kb = transposeB ? bCols : bRows, n = transposeB ? bRows : bCols
    precondition(k == kb, "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") x \(b.shape)\(transposeB ? "ᵀ" : "")")
    // A batch of total size 1 (e.g. [1, K, N]) broadcasts like a rank-2 operand.
    var aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
    if aBatch.reduce(1, *) == 1 && aBatch.count <= bBatch.count { aBatch = [] }
    if bBatch.reduce(1, *) == 1 && bBatch.count <= aBatch.count { bBatch = [] }
    precondition(aBatch.isEmpty || bBatch.isEmpty || aBatch == bBatch,
                 "matmul batch dimensions differ: \(a.shape) and \(b.shape)")
    let batchShape = aBatch.isEmpty ? bBatch : aBatch
    let batch = batchShape.reduce(1, *)
    let out = Tensor(uninitializedShape: batchShape + [m, n])
    let lda = aCols, ldb = bCols
    let aStep = aBatch.isEmpty ? 0 : aRows * aCols
    let bStep = bBatch.isEmpty ? 0 : bRows * bCols

    if bStep == 0 && !transposeA && batch > 1 {
        // [B, M, K] x [K, N]: one product with B*M rows.
        sgemm(transA: false, transB: transposeB, m: batch * m, n: n, k: k,
              a: a.base, lda: lda, b: b.base, ldb: ldb, c: out.fresh, ldc: n)
        return out
    }
    for i in 0..<batch {
        sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
              a: a.base + i * aStep, lda: lda, b: b.base + i * bStep, ldb: ldb,
              c: out.fresh + i * m * n, ldc: n)
    }
    return out
}

/// PyTorch's nn.Linear: y = x W^T + b.
/// x: [..., in], weight: [out, in], bias: [out] or nil -> [..., out].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
    let outFeatures = weight.shape[0], inFeatures = weight.shape[1]
    precondition(x.rank >= 1 && x.shape[x.rank - 1] == inFeatures,
                 "linear input \(x.shape) does not end in \(inFeatures) (weight \(weight.shape))")
    let (out, rows, beta) = linearOutput(x, outFeatures: outFeatures, bias: bias)
    sgemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
          a: x.base, lda: inFeatures, b: weight.base, ldb: inFeatures,
          beta: beta, c: out.fresh, ldc: outFeatures)
    return out
}

/// The output [..., out] of a linear layer over x [..., in] (its rows), holding the bias in every row,
/// for a product that then adds with `beta` 1 (else, or with `fillBias` false, uninitialized, beta 0).
func linearOutput(_ x: Tensor, outFeatures: Int, bias: Tensor?,
                  fillBias: Bool = true) -> (out: Tensor, rows: Int, beta: Float) {
    let rows = x.count / max(x.shape[x.rank - 1], 1)
    let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
    if let bias {
        precondition(bias.count == outFeatures, "linear bias has shape \(bias.shape), expected [\(outFeatures)]")
    }
    guard let bias, fillBias else { return (out, rows, 0) }
    let dst = out.fresh, src = bias.base
    for r in 0..<rows { (dst + r * outFeatures).update(from: src, count: outFeatures) }
    return (out, rows, 1)
}
