// nn.Linear for few rows (text encoders: 77 tokens per prompt) over a weight packed once.
//
// cblas_sgemm packs its operands on every call; when the input has few rows, copying a
// [3072, 768] weight costs about as much as multiplying by it. `PackedLinearWeight` packs the
// weight once at load time into the layout the C kernel reads (CKernels/packed_linear.c: panels
// of 16 output features, k-major), and `linear(_:packed:bias:)` splits the panels over threads.
// For thousands of rows (UNet attention) OpenBLAS is as fast or faster, so layers opt in.

import CKernels

/// A linear layer's weight [out, in] (PyTorch's layout), packed for `linear(_:packed:bias:)`.
public struct PackedLinearWeight {
    public let outFeatures: Int
    public let inFeatures: Int
    let panels: Tensor   // [jpgen_packed_linear_floats(out, in)] in the kernel's layout

    /// Packs `weight` [out, in]; the packed copy is as large as the weight (plus padding of the
    /// last 16-feature panel).
    public init(_ weight: Tensor) {
        precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        let n = outFeatures, k = inFeatures
        let packed = Tensor(uninitializedShape: [jpgen_packed_linear_floats(n, k)])
        let panelCount = jpgen_packed_linear_panels(n)
        // Panels are independent: each thread packs its own.
        parallelRanges(panelCount, grain: max(1, (1 << 16) / max(16 * k, 1))) { range in
            let first = range.lowerBound * 16, rows = min(range.upperBound * 16, n) - first
            jpgen_pack_linear_weight(weight.base + first * k, rows, k, packed.fresh + first * k)
        }
        panels = packed
    }

    /// The weight [out, in] again (a copy; for inspection and tests).
    public func unpacked() -> Tensor {
        let out = Tensor(uninitializedShape: [outFeatures, inFeatures])
        jpgen_unpack_linear_weight(panels.base, outFeatures, inFeatures, out.fresh)
        return out
    }
}

/// PyTorch's nn.Linear over a packed weight: y = x W^T + b.
/// x: [..., in], bias: [out] or nil -> [..., out].
public func linear(_ x: Tensor, packed weight: PackedLinearWeight, bias: Tensor?) -> Tensor {
    let n = weight.outFeatures, k = weight.inFeatures
    precondition(x.rank >= 1 && x.shape[x.rank - 1] == k,
                 "linear input \(x.shape) does not end in \(k) (weight [\(n), \(k)])")
    if let bias {
        precondition(bias.count == n, "linear bias has shape \(bias.shape), expected [\(n)]")
    }
    let m = x.count / max(k, 1)
    let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [n])
    if m == 0 || n == 0 { return out }
    let rows = Workspace(count: jpgen_packed_rows_floats(m, k))
    defer { rows.release() }
    jpgen_pack_linear_rows(x.base, m, k, rows.pointer)
    let panelCount = jpgen_packed_linear_panels(n)
    let biasPointer = bias?.base
    // About 2^22 multiply-adds per thread before a second thread pays for its start-up.
    let grain = max(1, (1 << 22) / max(m * k * 16, 1))
    parallelRanges(panelCount, grain: grain) { range in
        jpgen_packed_linear(rows.pointer, m, k, weight.panels.base, n, biasPointer, out.fresh,
                            range.lowerBound, range.upperBound)
    }
    return out
}

/// A linear layer's weight [out, in] packed once in the AVX-512 sgemm's own B panels (32 output
/// features by 256 inputs), for products with many rows (UNet tokens): `sgemm` packs the weight on
/// every call, once per thread (2.8% of an SDXL UNet step). Exactly the same arithmetic as `linear`.
public struct GemmPackedWeight {
    public let outFeatures: Int
    public let inFeatures: Int
    let panels: Tensor   // [jpgen_sgemm_packed_b_floats(out, in)]

    /// nil without the AVX-512 sgemm (`useAVX512GEMM`), where `linear` takes the weight as it is.
    public init?(_ weight: Tensor) {
        precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
        self.init(stacking: [weight])
    }

    /// Weights [n_i, in] stacked into one [n_1 + n_2 + ..., in] (a self-attention's q, k and v), packed
    /// from the parts themselves: no stacked copy is made (it would stay behind in the buffer pool). Every
    /// part but the last has a multiple of 32 rows. nil without the AVX-512 sgemm.
    public init?(stacking parts: [Tensor]) {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.rank == 2 && $0.shape[1] == parts[0].shape[1] },
                     "stacked linear weights must be [out, in] with one `in`, got \(parts.map(\.shape))")
        precondition(parts.dropLast().allSatisfy { $0.shape[0] % 32 == 0 },
                     "stacked linear weights: every part but the last needs a multiple of 32 rows, got \(parts.map(\.shape))")
        guard useAVX512GEMM else { return nil }
        let n = parts.reduce(0) { $0 + $1.shape[0] }, k = parts[0].shape[1]
        outFeatures = n
        inFeatures = k
        let packed = Tensor(uninitializedShape: [Swift.max(1, jpgen_sgemm_packed_b_floats(n, k))])
        let dst = packed.fresh
        var row0 = 0
        for part in parts {
            let first = row0, rows = part.shape[0], src = part.base
            parallelRanges((rows + 31) / 32, grain: Swift.max(1, (1 << 16) / Swift.max(32 * k, 1))) { range in
                jpgen_sgemm_pack_b_rows(n, k, first, rows, src, k, first / 32 + range.lowerBound, first / 32 + range.upperBound, dst)
            }
            row0 += rows
        }
        panels = packed
    }

    /// The weight [out, in] again (a copy; for inspection and tests).
    public func unpacked() -> Tensor {
        let n = outFeatures, k = inFeatures, padded = (n + 31) / 32 * 32, block = jpgen_sgemm_k_block()
        let out = Tensor(uninitializedShape: [n, k])
        let dst = out.fresh, src = panels.base
        for pc in stride(from: 0, to: k, by: block) {
            let kc = Swift.min(block, k - pc)
            for j in 0..<n {
                let panel = src + pc * padded + (j / 32) * kc * 32 + j % 32
                for kk in 0..<kc { dst[j * k + pc + kk] = panel[kk * 32] }
            }
        }
        return out
    }
}

/// x [..., in] -> [..., out] = x weight^T + bias, through the AVX-512 sgemm with the weight packed
/// beforehand; the micro-kernel adds the bias as it first stores each tile (no pass that fills the
/// output with it, and no read of that output before the first store).
public func linear(_ x: Tensor, gemmPacked weight: GemmPackedWeight, bias: Tensor?) -> Tensor {
    let n = weight.outFeatures, k = weight.inFeatures
    precondition(x.rank >= 1 && x.shape[x.rank - 1] == k,
                 "linear input \(x.shape) does not end in \(k) (weight [\(n), \(k)])")
    let (out, rows, _) = linearOutput(x, outFeatures: n, bias: bias, fillBias: false)
    if rows == 0 || n == 0 { return out }
    sgemmAVX512(transA: false, transB: true, m: rows, n: n, k: k, alpha: 1, a: x.base, lda: k, b: nil, ldb: k,
                beta: 0, c: out.fresh, ldc: n, packedB: weight.panels.base, bias: bias?.base)
    return out
}

/// residual [..., out] += x [..., in] weight^T + bias, in place: the micro-kernel adds each tile of
/// the product to the residual as it stores it (beta 1), so the product is never written on its own
/// and there is no separate addition pass (a transformer block's attention outputs and feed-forward).
/// The sum equals `residual + linear(x, gemmPacked:)` up to float32 rounding: the residual joins the
/// first k block's partial sum instead of the finished product.
public func linear(_ x: Tensor, gemmPacked weight: GemmPackedWeight, bias: Tensor?, addingTo residual: inout Tensor) {
    let n = weight.outFeatures, k = weight.inFeatures
    precondition(x.rank >= 1 && x.shape[x.rank - 1] == k,
                 "linear input \(x.shape) does not end in \(k) (weight [\(n), \(k)])")
    precondition(residual.shape == Array(x.shape.dropLast()) + [n],
                 "linear residual \(residual.shape) for input \(x.shape) and \(n) outputs")
    if let bias { precondition(bias.count == n, "linear bias has shape \(bias.shape), expected [\(n)]") }
    let rows = x.count / Swift.max(k, 1)
    if rows == 0 || n == 0 || k == 0 {
        if k == 0, rows > 0, let bias { addInPlace(&residual, bias) }
        return
    }
    let a = x.base, b = bias?.base
    residual.withUnsafeMutableBufferPointer { c in
        sgemmAVX512(transA: false, transB: true, m: rows, n: n, k: k, alpha: 1, a: a, lda: k, b: nil, ldb: k,
                    beta: 1, c: c.baseAddress!, ldc: n, packedB: weight.panels.base, bias: b)
    }
}

/// diffusers' GEGLU after its projection, fused: x [..., in] -> [..., out / 2] = h * gelu(g), where
/// [h | g] = x weight^T + bias. The AVX-512 kernel computes each 32-column strip of h and of g into a
/// small tile and combines them at once, so the [..., out] projection is never written (SDXL: 40 MB per
/// 1024 tokens, and its GEGLU pass was 0.9% of a step). Bit for bit `geglu(linear(x, gemmPacked:))`.
/// nil where it does not apply (out / 2 not a multiple of 32, or no inputs): use the two steps.
public func linearGEGLU(_ x: Tensor, gemmPacked weight: GemmPackedWeight, bias: Tensor?) -> Tensor? {
    guard let f = fusedGEGLUColumns(x, weight, bias) else { return nil }
    let rows = x.count / weight.inFeatures
    let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [f])
    if rows == 0 || f == 0 { return out }
    let dst = out.fresh
    fusedGEGLU(x, weight, bias) { lo, hi, j0, j1, workspace in
        jpgen_linear_geglu_packed(hi - lo, f, weight.inFeatures, j0, j1, x.base + lo * weight.inFeatures,
                                  weight.inFeatures, weight.panels.base, bias?.base, dst + lo * f, f, nil, 0, 0, workspace)
    }
    return out
}

/// Rows [..., k] in the micro-kernel's packed-A layout (jpgen_sgemm_pack_a), as the fused GEGLU writes
/// its result for the product after it (`linear(_:gemmPacked:bias:addingTo:)` on packed rows).
public struct GemmPackedRows {
    /// The rows' shape: the leading dimensions and k.
    public let shape: [Int]
    let panels: Workspace   // jpgen_sgemm_packed_a_floats(rows, k) floats
    var rows: Int { shape.dropLast().reduce(1, *) }
    var k: Int { shape[shape.count - 1] }

    /// Gives the panels back to the buffer pool; the rows are unusable afterwards.
    public func release() { panels.release() }
}

/// `linearGEGLU` with the result written straight into the packed-A layout of the product that follows
/// (a transformer block's feed-forward output: SDXL's [tokens, 5120] GEGLU output was written, then read
/// and packed again by that product: 36% of all the A packing in a step). nil where `linearGEGLU` is
/// nil, or without the AVX-512 kernels.
public func linearGEGLUPacked(_ x: Tensor, gemmPacked weight: GemmPackedWeight, bias: Tensor?) -> GemmPackedRows? {
    guard let f = fusedGEGLUColumns(x, weight, bias) else { return nil }
    let rows = x.count / weight.inFeatures
    let packed = GemmPackedRows(shape: Array(x.shape.dropLast()) + [f],
                                panels: Workspace(count: Swift.max(1, jpgen_sgemm_packed_a_floats(rows, f))))
    if rows == 0 || f == 0 { return packed }
    let dst = packed.panels.pointer
    fusedGEGLU(x, weight, bias) { lo, hi, j0, j1, workspace in
        jpgen_linear_geglu_packed(hi - lo, f, weight.inFeatures, j0, j1, x.base + lo * weight.inFeatures,
                                  weight.inFeatures, weight.panels.base, bias?.base, nil, 0, dst, rows, lo, workspace)
    }
    return packed
}

/// The fused GEGLU's output columns (out / 2), or nil where it does not apply; checks the shapes.
private func fusedGEGLUColumns(_ x: Tensor, _ weight: GemmPackedWeight, _ bias: Tensor?) -> Int? {
    let twoF = weight.outFeatures, k = weight.inFeatures
    guard twoF % 64 == 0 && k > 0 else { return nil }
    precondition(x.rank >= 1 && x.shape[x.rank - 1] == k,
                 "linear input \(x.shape) does not end in \(k) (weight [\(twoF), \(k)])")
    if let bias { precondition(bias.count == twoF, "linear bias \(bias.shape) for \(twoF) outputs") }
    return twoF / 2
}

/// Weights of at least this many bytes ([2f, k]) have the fused GEGLU split over threads by output
/// columns: each thread owns a share of the columns and takes its rows in parts (240 rows, as the kernel
/// blocks them anyway, then smaller ones to finish), then helps with the other shares' remaining parts
/// (a thread the host stalls leaves its work to the others, as the guided row parts allowed). Each part
/// streams only its share of the weight: split by rows, every part streamed the whole weight (SDXL's 52
/// MB [10240, 1280] weight 16 times per 1024 tokens, against 7 halves here). Smaller weights keep the
/// guided row parts. (`var` so that tests can lower it.)
nonisolated(unsafe) var gegluColumnSplitMinimumBytes = 32 << 20

/// Runs the fused GEGLU kernel over x: `kernel(lo, hi, j0, j1, workspace)` for rows lo ..< hi (lo a
/// multiple of 12) and output columns j0 ..< j1 (multiples of 32), with
/// jpgen_linear_geglu_workspace_floats(hi - lo, k) floats; by guided row parts, or by columns (above).
private func fusedGEGLU(_ x: Tensor, _ weight: GemmPackedWeight, _ bias: Tensor?,
                        _ kernel: (_ lo: Int, _ hi: Int, _ j0: Int, _ j1: Int,
                                   _ workspace: UnsafeMutablePointer<Float>) -> Int32) {
    let k = weight.inFeatures, rows = x.count / k, f = weight.outFeatures / 2
    let threads = gemmThreads(work: rows * weight.outFeatures * k)
    func run(_ lo: Int, _ hi: Int, _ j0: Int, _ j1: Int) {
        let workspace = Workspace(count: jpgen_linear_geglu_workspace_floats(hi - lo, k))
        defer { workspace.release() }
        let done = kernel(lo, hi, j0, j1, workspace.pointer)   // (not inside precondition: -Ounchecked drops it)
        precondition(done != 0, "linearGEGLU: the AVX-512 kernel refused f = \(f)")
    }
    let byColumns = threads > 1 && rows >= 240 && f >= 32 * threads
        && weight.outFeatures * k * MemoryLayout<Float>.size >= gegluColumnSplitMinimumBytes
    guard byColumns else {
        forEachGemmPart(rows, unit: 12, threads: threads, guidedMinimum: gemmGuidedRowUnits) { lo, hi in
            run(lo, hi, 0, f)
        }
        return
    }
    // f >= 32 * threads: every share has columns
    let units = (rows + 11) / 12, strips = f / 32, blockUnits = 240 / 12   // the kernel's row block
    let counters = (0..<threads).map { _ in WorkCounter() }
    parallelFor(threads) { worker in
        for step in 0..<threads {
            let share = (worker + step) % threads
            let j0 = share * strips / threads * 32, j1 = (share + 1) * strips / threads * 32
            // whole row blocks while more than two are left, then halves of what is left down to 48
            // rows: small parts for the finish
            while let part = counters[share].claimRange(total: units, share: 2, minimum: gemmGuidedRowUnits,
                                                        maximum: blockUnits) {
                run(part.lowerBound * 12, Swift.min(rows, part.upperBound * 12), j0, j1)
            }
        }
    }
}

/// residual [..., out] += x weight^T + bias for x in packed rows (from `linearGEGLUPacked`), the
/// addition fused into the product as in `linear(_:gemmPacked:bias:addingTo:)`, whose result this is
/// bit for bit for the same rows.
public func linear(_ x: GemmPackedRows, gemmPacked weight: GemmPackedWeight, bias: Tensor?,
                   addingTo residual: inout Tensor) {
    let n = weight.outFeatures, k = weight.inFeatures, rows = x.rows
    precondition(x.k == k, "linear input rows \(x.shape) do not end in \(k) (weight [\(n), \(k)])")
    precondition(residual.shape == Array(x.shape.dropLast()) + [n],
                 "linear residual \(residual.shape) for input rows \(x.shape) and \(n) outputs")
    if let bias { precondition(bias.count == n, "linear bias has shape \(bias.shape), expected [\(n)]") }
    if rows == 0 || n == 0 { return }
    let a = UnsafePointer(x.panels.pointer), panels = weight.panels.base, b = bias?.base
    let threads = gemmThreads(work: rows * n * Swift.max(k, 1))
    let splitRows = rows >= 240 * threads
    residual.withUnsafeMutableBufferPointer { buffer in
        let c = buffer.baseAddress!
        forEachGemmPart(splitRows ? rows : n, unit: splitRows ? 12 : 32, threads: threads,
                        guidedMinimum: splitRows ? gemmGuidedRowUnits : nil) { lo, hi in
            if splitRows {
                jpgen_sgemm_avx512_packed_ab(rows, lo, hi - lo, n, 0, n, k, 1, a, panels, 1, b, c + lo * n, n)
            } else {
                jpgen_sgemm_avx512_packed_ab(rows, 0, rows, n, lo, hi - lo, k, 1, a, panels, 1, b.map { $0 + lo },
                                             c + lo, n)
            }
        }
    }
}
