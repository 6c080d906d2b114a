// 2-D convolution (torch.nn.functional.conv2d, groups = 1, dilation = 1) as GEMMs.
// x: [N, C, H, W], weight: [O, C, kh, kw] -> [N, O, H', W'],
//   H' = (H + 2 padding - kh) / stride + 1, W' likewise.
//
// Formulations (every output tile starts from its bias, and every sgemm accumulates with beta = 1):
// 1. 1x1, stride 1, no padding: out[n] = W[O, C] x[n][C, H*W], no copy at all.
// 2. im2col: buf[(c, dy, dx), (y', x')] = xpad[c, y' s + dy, x' s + dx]; out = W[O, C*kh*kw] buf.
// 3. row-shift (stride 1): copy only the kw horizontal shifts of each padded input row,
//    buf[(c, dx), y, x'] = xpad[c, y, x' + dx]. For kernel row dy, the columns of buf starting at
//    row dy are a strided [C*kw, rows*W'] matrix, and out += W_dy[O, C*kw] buf[:, dy...]: kh sgemms
//    on a weight reordered to [kh, O, C*kw]. It copies 1/kh of im2col's buffer plus the weight,
//    so `.automatic` takes it when that is cheaper (large planes, few channels).
// 4. Winograd F(m x m, 3 x 3) for 3x3, stride 1, padding 1 with enough channels: Conv2dWinograd.swift.
// Formulations 2 and 3 tile over output rows so a buffer stays under `convBufferBudget` floats
// (or one tile of `convMinimumTileColumns` output pixels, if that is larger).
// Tiles run either one after another (copies spread by parallelFor, sgemm on OpenBLAS's threads) or,
// when there are at least as many tiles as threads, on worker threads that each copy and multiply
// their own tiles with a single-threaded sgemm (no oversubscription: OpenBLAS is set to 1 thread).

/// im2col / row-shift buffer (floats) per worker thread: 1 Mi floats = 4 MiB, unless a tile would
/// then have fewer than `convMinimumTileColumns` columns. (Measured on 2 cores, 128 channels at
/// 256x256: 80% of square sgemm with 4 MiB per worker, 60-67% with 16 MiB per worker; and tiles
/// of under 512 columns, e.g. 160 for 640 channels at 32x32, fall to 40-70%.)
nonisolated(unsafe) public var convBufferBudget = 1 << 20

/// Fewest output columns (output pixels) per tile, which keeps each sgemm efficient. The buffer
/// bound is therefore max(convBufferBudget, C*kh*kw * convMinimumTileColumns) floats per worker.
nonisolated(unsafe) public var convMinimumTileColumns = 512

/// Which GEMM formulation conv2d uses (for tests and benchmarks; `.automatic` picks by copy cost).
public enum Conv2dAlgorithm: String, CaseIterable, Sendable {
    case automatic, im2col, rowShift
}

/// The formulation conv2d uses; `.rowShift` applies only to stride 1 (others fall back to im2col).
nonisolated(unsafe) public var conv2dAlgorithm = Conv2dAlgorithm.automatic

/// How tiles are spread over cores: nil = automatic, true = worker threads, false = one after another.
nonisolated(unsafe) public var conv2dWorkerTiles: Bool? = nil

/// Convolution. x: [N, C, H, W], weight: [O, C, kh, kw], bias: [O] or nil -> [N, O, H', W'].
/// 3x3, stride 1, padding 1 goes through Winograd (Conv2dWinograd.swift) where `conv2dWinogradTile`
/// says it pays, with the filter from `winograd` (kept there when `winogradKeepsFilters`) or
/// transformed for this call.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0,
                   winograd: WinogradFilterCache? = nil) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 4, "conv2d needs x [N, C, H, W] and weight [O, C, kh, kw], got \(x.shape), \(weight.shape)")
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let o = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    precondition(weight.shape[1] == c, "conv2d: weight \(weight.shape) expects \(weight.shape[1]) input channels, x \(x.shape) has \(c)")
    precondition(stride >= 1 && padding >= 0, "conv2d: stride \(stride), padding \(padding)")
    if let bias { precondition(bias.count == o, "conv2d bias \(bias.shape) for \(o) output channels") }
    if let tile = conv2dWinogradTile(n: n, c: c, h: h, w: w, o: o, kh: kh, kw: kw, stride: stride, padding: padding) {
        if let winograd, winogradKeepsFilters {
            return conv2dWinograd(x, filter: winograd.filter(for: weight, tile: tile), bias: bias)
        }
        return conv2dWinograd(x, weight: weight, tile: tile, bias: bias)
    }
    let hp = h + 2 * padding, wp = w + 2 * padding
    precondition(hp >= kh && wp >= kw, "conv2d: kernel \(kh)x\(kw) larger than padded input \(hp)x\(wp)")
    let ho = (hp - kh) / stride + 1, wo = (wp - kw) / stride + 1
    let out = Tensor(uninitializedShape: [n, o, ho, wo])
    if out.count == 0 { return out }
    let plane = ho * wo
    let dst = out.fresh
    let b = bias?.base
    if c == 0 || (kh == 1 && kw == 1 && stride == 1 && padding == 0) {
        parallelFor(n * o) { j in (dst + j * plane).update(repeating: b?[j % o] ?? 0, count: plane) }
    }
    if c == 0 { return out }

    if kh == 1 && kw == 1 && stride == 1 && padding == 0 {
        for i in 0..<n {
            sgemm(transA: false, transB: false, m: o, n: plane, k: c,
                  a: weight.base, lda: c, b: x.base + i * c * h * w, ldb: h * w,
                  beta: 1, c: dst + i * o * plane, ldc: plane)
        }
        return out
    }
    let geometry = ConvGeometry(n: n, c: c, h: h, w: w, o: o, kh: kh, kw: kw,
                                stride: stride, padding: padding, ho: ho, wo: wo)
    let im2colCopy = c * kh * kw * plane
    let rowShiftCopy = c * kw * (ho + kh - 1) * wo + 2 * o * c * kh * kw  // the weight reorder counts double
    let rowShift: Bool
    switch conv2dAlgorithm {
    case .automatic: rowShift = stride == 1 && kh > 1 && rowShiftCopy < im2colCopy
    case .im2col: rowShift = false
    case .rowShift: rowShift = stride == 1
    }
    if rowShift {
        // wr: [kh, O, C*kw], wr[dy, o, c*kw + dx] = weight[o, c, dy, dx]
        let k = c * kw
        let wrWorkspace = Workspace(count: kh * o * k)
        defer { wrWorkspace.release() }
        let wr = wrWorkspace.pointer
        let wsrc = weight.base
        parallelFor(o) { oc in
            for ch in 0..<c {
                for dy in 0..<kh {
                    let s = wsrc + ((oc * c + ch) * kh + dy) * kw
                    let d = wr + (dy * o + oc) * k + ch * kw
                    for dx in 0..<kw { d[dx] = s[dx] }
                }
            }
        }
        runConvTiles(geometry, x: x.base, weight: UnsafePointer(wr), bias: b, out: dst, rowShift: true)
    } else {
        runConvTiles(geometry, x: x.base, weight: weight.base, bias: b, out: dst, rowShift: false)
    }
    return out
}

/// Sizes of one convolution call.
struct ConvGeometry {
    let n, c, h, w, o, kh, kw, stride, padding, ho, wo: Int
}

/// Copies `count` elements of an input row into `dst` for output columns x' = 0..<count, reading
/// src[x' * stride + shift] (shift may be negative) and writing 0 where that falls outside 0..<w.
@inline(__always)
private func copyShiftedRow(_ dst: UnsafeMutablePointer<Float>, count: Int, src: UnsafePointer<Float>?,
                            w: Int, shift: Int, stride: Int) {
    guard let src else { dst.update(repeating: 0, count: count); return }
    if stride == 1 {
        let lo = Swift.min(count, Swift.max(0, -shift))
        let hi = Swift.max(lo, Swift.min(count, w - shift))
        dst.update(repeating: 0, count: lo)
        (dst + lo).update(from: src + lo + shift, count: hi - lo)
        (dst + hi).update(repeating: 0, count: count - hi)
    } else {
        // Valid outputs: 0 <= xo * stride + shift < w.
        let lo = Swift.min(count, shift >= 0 ? 0 : (-shift + stride - 1) / stride)
        let hi = Swift.max(lo, Swift.min(count, w - shift <= 0 ? 0 : (w - shift + stride - 1) / stride))
        dst.update(repeating: 0, count: lo)
        let s = src + shift
        for xo in lo..<hi { dst[xo] = s[xo * stride] }
        (dst + hi).update(repeating: 0, count: count - hi)
    }
}

/// Fills the buffer rows of input channel `ch` for output rows r0..<r0+rows of one image.
/// im2col: rows (ch, dy, dx) of length rows*wo. row-shift: rows (ch, dx) of length (rows+kh-1)*wo.
@inline(__always)
private func fillConvChannel(_ g: ConvGeometry, image: UnsafePointer<Float>, ch: Int, r0: Int, rows: Int,
                             buf: UnsafeMutablePointer<Float>, rowShift: Bool) {
    if rowShift {
        let span = rows + g.kh - 1, cols = span * g.wo
        for dx in 0..<g.kw {
            let row = buf + (ch * g.kw + dx) * cols
            for py in 0..<span {
                let iy = r0 + py - g.padding
                let line: UnsafePointer<Float>? = iy >= 0 && iy < g.h ? image + (ch * g.h + iy) * g.w : nil
                copyShiftedRow(row + py * g.wo, count: g.wo, src: line, w: g.w, shift: dx - g.padding, stride: 1)
            }
        }
    } else {
        let cols = rows * g.wo
        for dy in 0..<g.kh {
            for dx in 0..<g.kw {
                let row = buf + ((ch * g.kh + dy) * g.kw + dx) * cols
                for yo in 0..<rows {
                    let iy = (r0 + yo) * g.stride - g.padding + dy
                    let line: UnsafePointer<Float>? = iy >= 0 && iy < g.h ? image + (ch * g.h + iy) * g.w : nil
                    copyShiftedRow(row + yo * g.wo, count: g.wo, src: line, w: g.w, shift: dx - g.padding, stride: g.stride)
                }
            }
        }
    }
}

/// Starts output channel `oc`'s rows r0..<r0+rows of one image at its bias (or 0), just before the
/// tile's sgemms accumulate into them (so the writes are still in cache when sgemm reads them).
@inline(__always)
private func fillTileBias(_ g: ConvGeometry, out: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                          oc: Int, r0: Int, rows: Int) {
    (out + oc * g.ho * g.wo + r0 * g.wo).update(repeating: bias?[oc] ?? 0, count: rows * g.wo)
}

/// out[image][channels, r0*wo ..< (r0+rows)*wo] += weight[channels] x buf, for a filled buffer and
/// the output channels `channels` (all of them, or one worker's share).
/// weight: [O, C*kh*kw] (im2col) or the reordered [kh, O, C*kw] (row-shift).
@inline(__always)
private func multiplyConvTile(_ g: ConvGeometry, weight: UnsafePointer<Float>, buf: UnsafePointer<Float>,
                              out: UnsafeMutablePointer<Float>, r0: Int, rows: Int, rowShift: Bool,
                              channels: Range<Int>? = nil) {
    let ldc = g.ho * g.wo
    let oc = channels ?? 0..<g.o
    if oc.isEmpty { return }
    let c = out + oc.lowerBound * ldc + r0 * g.wo
    if rowShift {
        let k = g.c * g.kw, ldb = (rows + g.kh - 1) * g.wo
        for dy in 0..<g.kh {
            sgemm(transA: false, transB: false, m: oc.count, n: rows * g.wo, k: k,
                  a: weight + (dy * g.o + oc.lowerBound) * k, lda: k, b: buf + dy * g.wo, ldb: ldb,
                  beta: 1, c: c, ldc: ldc)
        }
    } else {
        let k = g.c * g.kh * g.kw
        sgemm(transA: false, transB: false, m: oc.count, n: rows * g.wo, k: k,
              a: weight + oc.lowerBound * k, lda: k, b: buf, ldb: rows * g.wo, beta: 1, c: c, ldc: ldc)
    }
}

/// Plans the tiles (image, first output row, rows) and runs them, in sequence or on workers.
private func runConvTiles(_ g: ConvGeometry, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                          bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, rowShift: Bool) {
    let perRow = (rowShift ? g.c * g.kw : g.c * g.kh * g.kw) * g.wo   // buffer floats per output row
    let halo = rowShift ? g.kh - 1 : 0                                 // extra input rows per tile
    let threads = kernelThreadCount
    // Worker tiles need enough columns per thread for an efficient sgemm (measured: 1280 channels
    // at 16x16 runs better as one 256-column tile with its output channels split over workers).
    let workerMode: Bool
    if let forced = conv2dWorkerTiles { workerMode = forced && threads > 1 } else {
        workerMode = threads > 1 && g.n * g.ho * g.wo >= threads * convMinimumTileColumns
    }
    // Each worker has its own buffer; tiles run one after another share one buffer of the
    // threads' budgets together. A tile never has fewer than convMinimumTileColumns columns.
    let budget = workerMode ? convBufferBudget : convBufferBudget * threads
    let budgetRows = Swift.max(1, budget / Swift.max(perRow, 1) - halo,
                               (convMinimumTileColumns + g.wo - 1) / g.wo)
    var tilesPerImage = (g.ho + budgetRows - 1) / budgetRows
    // Round the worker tile count up to a multiple of threads so that no worker idles at the end.
    if workerMode && (g.n * tilesPerImage) % threads != 0 {
        let total = ((g.n * tilesPerImage + threads - 1) / threads) * threads
        tilesPerImage = Swift.min(g.ho, (total + g.n - 1) / g.n)
    }
    let rowsPerTile = (g.ho + tilesPerImage - 1) / tilesPerImage
    tilesPerImage = (g.ho + rowsPerTile - 1) / rowsPerTile
    let bufferSize = (rowsPerTile + halo) * perRow
    let tileCount = g.n * tilesPerImage
    let imageSize = g.c * g.h * g.w, outSize = g.o * g.ho * g.wo

    if workerMode {
        let workers = Swift.min(threads, tileCount)
        let workspace = Workspace(count: workers * bufferSize)
        defer { workspace.release() }
        let bufs = workspace.pointer
        parallelWorkersWithSerialBLAS(workers) { worker in
            let buf = bufs + worker * bufferSize
            var t = worker
            while t < tileCount {
                let i = t / tilesPerImage, r0 = (t % tilesPerImage) * rowsPerTile
                let rows = Swift.min(rowsPerTile, g.ho - r0)
                for ch in 0..<g.c {
                    fillConvChannel(g, image: x + i * imageSize, ch: ch, r0: r0, rows: rows, buf: buf, rowShift: rowShift)
                }
                for oc in 0..<g.o { fillTileBias(g, out: out + i * outSize, bias: bias, oc: oc, r0: r0, rows: rows) }
                multiplyConvTile(g, weight: weight, buf: buf, out: out + i * outSize, r0: r0, rows: rows, rowShift: rowShift)
                t += workers
            }
        }
    } else {
        let workspace = Workspace(count: bufferSize)
        defer { workspace.release() }
        let buf = workspace.pointer
        for t in 0..<tileCount {
            let i = t / tilesPerImage, r0 = (t % tilesPerImage) * rowsPerTile
            let rows = Swift.min(rowsPerTile, g.ho - r0)
            parallelFor(g.c) { ch in
                fillConvChannel(g, image: x + i * imageSize, ch: ch, r0: r0, rows: rows, buf: buf, rowShift: rowShift)
            }
            parallelFor(g.o) { oc in fillTileBias(g, out: out + i * outSize, bias: bias, oc: oc, r0: r0, rows: rows) }
            if threads > 1 && g.o >= 64 * threads {
                // Few columns, many output channels: each worker multiplies its share of the
                // channels with a single-threaded sgemm (measured better than OpenBLAS's own split
                // of a 256-column product).
                parallelWorkersWithSerialBLAS(threads) { w in
                    let share = ((g.o * w / threads) / 16 * 16)..<(w == threads - 1 ? g.o : (g.o * (w + 1) / threads) / 16 * 16)
                    multiplyConvTile(g, weight: weight, buf: buf, out: out + i * outSize, r0: r0, rows: rows,
                                     rowShift: rowShift, channels: share)
                }
            } else {
                multiplyConvTile(g, weight: weight, buf: buf, out: out + i * outSize, r0: r0, rows: rows, rowShift: rowShift)
            }
        }
    }
}
