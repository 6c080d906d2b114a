// 2-D convolution (torch.nn.functional.conv2d, groups = 1, dilation = 1) as GEMMs.
// x: [N, C, H, W], weight: [O, C, kh, kw] -> [N, O, H', W'],
//   H' = (H + 2 padding - kh) / stride + 1, W' likewise.
//
// Three paths, all with sgemm on the calling thread and copies spread by parallelFor:
// 1. 1x1, stride 1, no padding: out[n] = W[O, C] x[n][C, H*W], no copy at all.
// 2. stride 1, k > 1 ("row-shift"): copy only the kw horizontal shifts of each input row,
//    buf[(c, dx), y, x'] = xpad[c, y, x' + dx], then for each kernel row dy the columns starting
//    at row dy form a strided matrix, and out += W_dy[O, C*kw] buf[:, dy..dy+rows]: kh sgemms
//    with beta 1. It copies kw/(kh*kw) of what im2col copies, plus a reordered weight
//    [kh, O, C*kw], so it is chosen when that total is smaller than im2col's copy.
// 3. otherwise im2col: buf[(c, dy, dx), (y', x')] and one sgemm with W as [O, C*kh*kw].
// Paths 2 and 3 tile over output rows so the buffer stays under `convBufferBudget` floats.

/// Largest im2col / row-shift buffer (floats) one convolution may use: 4 Mi floats = 16 MiB.
nonisolated(unsafe) public var convBufferBudget = 1 << 22

/// Convolution. x: [N, C, H, W], weight: [O, C, kh, kw], bias: [O] or nil -> [N, O, H', W'].
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 4, "conv2d needs x [N, C, H, W] and weight [O, C, kh, kw], got \(x.shape), \(weight.shape)")
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let o = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    precondition(weight.shape[1] == c, "conv2d: weight \(weight.shape) expects \(weight.shape[1]) input channels, x \(x.shape) has \(c)")
    precondition(stride >= 1 && padding >= 0, "conv2d: stride \(stride), padding \(padding)")
    if let bias { precondition(bias.count == o, "conv2d bias \(bias.shape) for \(o) output channels") }
    let hp = h + 2 * padding, wp = w + 2 * padding
    precondition(hp >= kh && wp >= kw, "conv2d: kernel \(kh)x\(kw) larger than padded input \(hp)x\(wp)")
    let ho = (hp - kh) / stride + 1, wo = (wp - kw) / stride + 1
    let out = Tensor(uninitializedShape: [n, o, ho, wo])
    if out.count == 0 { return out }
    let plane = ho * wo
    let dst = out.fresh
    // Start every output from its bias (or zero); every sgemm then accumulates with beta 1.
    let b = bias?.base
    parallelFor(n * o) { j in (dst + j * plane).update(repeating: b?[j % o] ?? 0, count: plane) }
    if c == 0 { return out }

    if kh == 1 && kw == 1 && stride == 1 && padding == 0 {
        for i in 0..<n {
            sgemm(transA: false, transB: false, m: o, n: plane, k: c,
                  a: weight.base, lda: c, b: x.base + i * c * h * w, ldb: h * w,
                  beta: 1, c: dst + i * o * plane, ldc: plane)
        }
        return out
    }
    let im2colCopy = c * kh * kw * plane
    let rowShiftCopy = c * kw * (ho + kh - 1) * wo + o * c * kh * kw
    if stride == 1 && kh > 1 && rowShiftCopy < im2colCopy {
        conv2dRowShift(x, weight: weight, out: dst, padding: padding, ho: ho, wo: wo)
    } else {
        conv2dIm2col(x, weight: weight, out: dst, stride: stride, padding: padding, ho: ho, wo: wo)
    }
    return out
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
        for xo in 0..<count {
            let ix = xo * stride + shift
            dst[xo] = ix >= 0 && ix < w ? src[ix] : 0
        }
    }
}

/// Path 3: im2col tiled over output rows, one sgemm per tile. out: [N, O, ho, wo] pre-filled.
private func conv2dIm2col(_ x: Tensor, weight: Tensor, out: UnsafeMutablePointer<Float>,
                          stride: Int, padding: Int, ho: Int, wo: Int) {
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let o = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    let k = c * kh * kw
    let tileRows = Swift.max(1, Swift.min(ho, convBufferBudget / Swift.max(k * wo, 1)))
    let buf = UnsafeMutablePointer<Float>.allocate(capacity: k * tileRows * wo)
    defer { buf.deallocate() }
    let src = x.base
    for i in 0..<n {
        let image = src + i * c * h * w
        var r0 = 0
        while r0 < ho {
            let rows = Swift.min(tileRows, ho - r0), cols = rows * wo
            // buf: [C*kh*kw, rows*wo]
            parallelFor(c) { ch in
                for dy in 0..<kh {
                    for dx in 0..<kw {
                        let row = buf + ((ch * kh + dy) * kw + dx) * cols
                        for yo in 0..<rows {
                            let iy = (r0 + yo) * stride - padding + dy
                            let line: UnsafePointer<Float>? = iy >= 0 && iy < h ? image + (ch * h + iy) * w : nil
                            copyShiftedRow(row + yo * wo, count: wo, src: line, w: w, shift: dx - padding, stride: stride)
                        }
                    }
                }
            }
            sgemm(transA: false, transB: false, m: o, n: cols, k: k,
                  a: weight.base, lda: k, b: buf, ldb: cols,
                  beta: 1, c: out + i * o * ho * wo + r0 * wo, ldc: ho * wo)
            r0 += rows
        }
    }
}

/// Path 2: stride-1 row-shift convolution tiled over output rows, kh sgemms per tile.
private func conv2dRowShift(_ x: Tensor, weight: Tensor, out: UnsafeMutablePointer<Float>,
                            padding: Int, ho: Int, wo: Int) {
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let o = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    let k = c * kw
    // wr: [kh, O, C*kw], wr[dy, o, c*kw + dx] = weight[o, c, dy, dx]
    let wr = UnsafeMutablePointer<Float>.allocate(capacity: kh * o * k)
    defer { wr.deallocate() }
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
    let perRow = k * wo
    let tileRows = Swift.max(1, Swift.min(ho, convBufferBudget / Swift.max(perRow, 1) - (kh - 1)))
    let spanMax = tileRows + kh - 1
    let buf = UnsafeMutablePointer<Float>.allocate(capacity: k * spanMax * wo)
    defer { buf.deallocate() }
    let src = x.base
    for i in 0..<n {
        let image = src + i * c * h * w
        var r0 = 0
        while r0 < ho {
            let rows = Swift.min(tileRows, ho - r0), span = rows + kh - 1, cols = span * wo
            // buf: [C*kw, span*wo], buf[(c, dx), py, x'] = xpad[c, r0 + py, x' + dx]
            parallelFor(c) { ch in
                for dx in 0..<kw {
                    let row = buf + (ch * kw + dx) * cols
                    for py in 0..<span {
                        let iy = r0 + py - padding
                        let line: UnsafePointer<Float>? = iy >= 0 && iy < h ? image + (ch * h + iy) * w : nil
                        copyShiftedRow(row + py * wo, count: wo, src: line, w: w, shift: dx - padding, stride: 1)
                    }
                }
            }
            for dy in 0..<kh {
                sgemm(transA: false, transB: false, m: o, n: rows * wo, k: k,
                      a: wr + dy * o * k, lda: k, b: buf + dy * wo, ldb: cols,
                      beta: 1, c: out + i * o * ho * wo + r0 * wo, ldc: ho * wo)
            }
            r0 += rows
        }
    }
}
