// Winograd convolution for 3x3 kernels, stride 1, padding 1 (Lavin & Gray 2016, "Fast Algorithms
// for Convolutional Neural Networks", F(m x m, 3 x 3)). Each m x m output tile is
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A
// from an alpha x alpha input tile d (alpha = m + 2, overlapping by 2) and the 3x3 kernel g.
// Summed over input channels, the elementwise product at each of the alpha^2 transform positions p
// is a matrix product, so a layer is:
// 1. U[p, o, c] = (G g[o, c] G^T)[p]                   per call into a huge-page scratch, or kept
//                                                      (`winogradFilter`, WinogradFilterCache)
// 2. V[c, p, t] = (B^T d[c, t] B)[p]                   per block of tiles t
// 3. M[:, p, :] = U[p] [O, C] x V[:, p, :] [C, tiles]   alpha^2 sgemms
// 4. out[o, tile t] = A^T M[o, :, t] A + bias[o]
// m = 2 multiplies 2.25x fewer, m = 4 4x fewer than direct convolution; the transforms are additions
// (memory-bound), and float32 rounding grows with m (measured in Conv2dWinogradTests: relative to
// the output's peak, 1e-5 for F(4x4) against 4e-7 for the GEMM path).
// Transforms run on 16 tiles at a time (SIMD16 lanes); blocks of `winogradBlockTiles` tiles keep the
// V and M buffers small. Blocks run on worker threads (each one transform, sgemms, output transform,
// single-threaded sgemm; blocks claimed one at a time so a descheduled worker does not hold up the
// others), or, with fewer blocks than threads, one after another with the channels and positions
// split over threads. A per-call filter whose tiles all fit one block (low resolution, many
// channels), or whose whole V and M take less memory than the filter and the blocks' buffers, is
// never made whole: workers transform, pack and multiply it a chunk of output channels at a time
// against V in the micro-kernel's packed form (`conv2dWinogradByOutputChunks`).

import CKernels
import Foundation

typealias WinogradVector = SIMD16<Float>
private let winogradLanes = 16

/// Whether the input and output transforms run through CKernels' AVX-512 versions where the CPU has
/// AVX-512 (false: the Swift ones everywhere, for tests; the two agree bit for bit).
nonisolated(unsafe) var winogradTransformsInC = true

/// Tiles per block (the sgemms' column count), or nil for `winogradDefaultBlockTiles`. Buffers per
/// worker: alpha^2 (C + O) tiles floats.
nonisolated(unsafe) public var winogradBlockTiles: Int? = nil

/// Tiles per block by channel counts, measured with `jpbench conv -t 1 --cache-filter` (F(4x4),
/// share of a square sgemm's GFLOP/s on one core; direct convolution would be ~95%): 128 channels
/// 215% with 32 tiles, 205-215% with 16-48, 170-180% with 128-256; 256 channels 250% with 128,
/// 200-230% with 64, 96 or 192; 512 channels 285% with 128, 265% with 64, 240% with 256.
func winogradDefaultBlockTiles(c: Int, o: Int) -> Int {
    c + o <= 256 ? 32 : 128
}

/// A 3x3 weight in the Winograd domain for output tiles of `tile` x `tile`.
public struct WinogradFilter {
    /// Output tile size m (2 or 4); the transform uses alpha = m + 2.
    public let tile: Int
    public let outChannels: Int
    public let inChannels: Int
    /// U: [alpha^2, O, C]
    public let transformed: Tensor
}

// Transform matrices (Lavin & Gray 2016, section 4.1 for F(2x2, 3x3), 4.2 for F(4x4, 3x3)), written
// out as 1-D transforms of vectors of 16 lanes below: G (filter), B^T (input), A^T (output).

/// U = G g G^T for every (o, c). weight: [O, C, 3, 3] -> U [alpha^2, O, C], alpha = tile + 2.
public func winogradFilter(_ weight: Tensor, tile: Int) -> WinogradFilter {
    precondition(weight.rank == 4 && weight.shape[2] == 3 && weight.shape[3] == 3,
                 "winogradFilter needs a [O, C, 3, 3] weight, got \(weight.shape)")
    precondition(tile == 2 || tile == 4, "winogradFilter: tile \(tile) is not 2 or 4")
    let o = weight.shape[0], c = weight.shape[1]
    let u = Tensor(uninitializedShape: [(tile + 2) * (tile + 2), o, c])
    winogradTransformFilter(weight.base, o: o, c: c, tile: tile, into: u.fresh)
    return WinogradFilter(tile: tile, outChannels: o, inChannels: c, transformed: u)
}

/// Writes U [alpha^2, O, C] of a [O, C, 3, 3] weight at `src` into `dst`.
private func winogradTransformFilter(_ src: UnsafePointer<Float>, o: Int, c: Int, tile: Int,
                                     into dst: UnsafeMutablePointer<Float>) {
    parallelFor(o) { oc in
        let vec = WinogradFilterScratch(tile: tile)
        defer { vec.release() }
        winogradTransformFilterRow(src, oc: oc, c: c, tile: tile, scratch: vec, into: dst + oc * c, plane: o * c)
    }
}

/// Per-thread vectors of one filter transform: the kernel of 16 input channels, G g, then U.
private struct WinogradFilterScratch {
    let vec: UnsafeMutablePointer<WinogradVector>

    init(tile: Int) {
        let alpha = tile + 2, count = 9 + 3 * alpha + alpha * alpha
        vec = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<WinogradVector>.stride, alignment: 64)
            .bindMemory(to: WinogradVector.self, capacity: count)
    }

    func release() { UnsafeMutableRawPointer(vec).deallocate() }
}

/// U of output channel `oc` for every input channel: dst[q * plane + c] = (G g[oc, c] G^T)[q].
private func winogradTransformFilterRow(_ src: UnsafePointer<Float>, oc: Int, c: Int, tile: Int,
                                        scratch: WinogradFilterScratch, into dst: UnsafeMutablePointer<Float>,
                                        plane: Int) {
    let alpha = tile + 2, a2 = alpha * alpha, lanes = winogradLanes
    let vec = scratch.vec
    let lane = UnsafeMutableRawPointer(vec).assumingMemoryBound(to: Float.self)
    let gg = vec + 9, uu = gg + 3 * alpha
    for c0 in stride(from: 0, to: c, by: lanes) {
        let live = Swift.min(lanes, c - c0)
        let k = src + (oc * c + c0) * 9
        for e in 0..<9 {
            for l in 0..<live { lane[e * lanes + l] = k[l * 9 + e] }
            for l in live..<lanes { lane[e * lanes + l] = 0 }
        }
        // gg[i, b] = sum_a G[i, a] g[a, b]; uu[i, j] = sum_b gg[i, b] G[j, b]
        for b in 0..<3 {
            if tile == 4 { winogradFilter4(vec + b, 3, gg + b, 3) } else { winogradFilter2(vec + b, 3, gg + b, 3) }
        }
        for i in 0..<alpha {
            if tile == 4 { winogradFilter4(gg + 3 * i, 1, uu + alpha * i, 1) } else { winogradFilter2(gg + 3 * i, 1, uu + alpha * i, 1) }
        }
        let d = dst + c0
        for q in 0..<a2 {
            if live == lanes {
                UnsafeMutableRawPointer(d + q * plane).storeBytes(of: uu[q], as: WinogradVector.self)
            } else {
                let from = UnsafeMutableRawPointer(uu + q).assumingMemoryBound(to: Float.self)
                (d + q * plane).update(from: from, count: live)
            }
        }
    }
}

/// A weight's Winograd filters, made on first use and then kept (one per tile size). Shared by
/// copies of the struct that holds it; thread-safe.
public final class WinogradFilterCache: @unchecked Sendable {
    private let lock = NSLock()
    private var filters: [Int: WinogradFilter] = [:]

    public init() {}

    /// The cached filter of `weight` for `tile`, transformed now if it is not cached yet.
    public func filter(for weight: Tensor, tile: Int) -> WinogradFilter {
        lock.lock()
        defer { lock.unlock() }
        if let f = filters[tile], f.outChannels == weight.shape[0], f.inChannels == weight.shape[1] { return f }
        let f = winogradFilter(weight, tile: tile)
        filters[tile] = f
        return f
    }

    /// Floats held by the cached filters.
    public var cachedCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return filters.values.reduce(0) { $0 + $1.transformed.count }
    }
}

/// G g for F(2, 3): G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]; g = p[0], p[s], p[2s]
/// -> q[0], q[t], ..., q[3t].
@inline(__always)
private func winogradFilter2(_ p: UnsafePointer<WinogradVector>, _ s: Int, _ q: UnsafeMutablePointer<WinogradVector>, _ t: Int) {
    let g0 = p[0], g1 = p[s], g2 = p[2 * s], e = 0.5 * (g0 + g2), f = 0.5 * g1
    q[0] = g0
    q[t] = e + f
    q[2 * t] = e - f
    q[3 * t] = g2
}

/// G g for F(4, 3): G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6],
/// [1/24, -1/12, 1/6], [0, 0, 1]]; g = p[0], p[s], p[2s] -> q[0], q[t], ..., q[5t].
@inline(__always)
private func winogradFilter4(_ p: UnsafePointer<WinogradVector>, _ s: Int, _ q: UnsafeMutablePointer<WinogradVector>, _ t: Int) {
    let g0 = p[0], g1 = p[s], g2 = p[2 * s]
    let e = (-1.0 / 6) * (g0 + g2), f = (-1.0 / 6) * g1
    let h = (1.0 / 24) * g0 + (1.0 / 6) * g2, k = (1.0 / 12) * g1
    q[0] = 0.25 * g0
    q[t] = e + f
    q[2 * t] = e - f
    q[3 * t] = h + k
    q[4 * t] = h - k
    q[5 * t] = g2
}

// 1-D transforms of `alpha` vectors p[0], p[s], ..., in place (the 2-D transform applies one along
// columns, then along rows).

/// B^T d for F(2, 3): B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
@inline(__always)
private func winogradInput2(_ p: UnsafeMutablePointer<WinogradVector>, _ s: Int) {
    let d0 = p[0], d1 = p[s], d2 = p[2 * s], d3 = p[3 * s]
    p[0] = d0 - d2
    p[s] = d1 + d2
    p[2 * s] = d2 - d1
    p[3 * s] = d1 - d3
}

/// B^T d for F(4, 3): B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
/// [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]].
@inline(__always)
private func winogradInput4(_ p: UnsafeMutablePointer<WinogradVector>, _ s: Int) {
    let d0 = p[0], d1 = p[s], d2 = p[2 * s], d3 = p[3 * s], d4 = p[4 * s], d5 = p[5 * s]
    let e = d4 - 4 * d2, f = d3 - 4 * d1      // rows 1, 2
    let g = d4 - d2, h = 2 * (d3 - d1)        // rows 3, 4
    p[0] = 4 * d0 - 5 * d2 + d4
    p[s] = e + f
    p[2 * s] = e - f
    p[3 * s] = g + h
    p[4 * s] = g - h
    p[5 * s] = 4 * d1 - 5 * d3 + d5
}

/// A^T m for F(2, 3): A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].
@inline(__always)
private func winogradOutput2(_ p: UnsafeMutablePointer<WinogradVector>, _ s: Int) {
    let m0 = p[0], m1 = p[s], m2 = p[2 * s], m3 = p[3 * s]
    p[0] = m0 + m1 + m2
    p[s] = m1 - m2 - m3
}

/// A^T m for F(4, 3): A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
/// [0, 1, -1, 8, -8, 1]].
@inline(__always)
private func winogradOutput4(_ p: UnsafeMutablePointer<WinogradVector>, _ s: Int) {
    let m0 = p[0], m1 = p[s], m2 = p[2 * s], m3 = p[3 * s], m4 = p[4 * s], m5 = p[5 * s]
    let a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4
    p[0] = m0 + a + c
    p[s] = b + 2 * d
    p[2 * s] = a + 4 * c
    p[3 * s] = b + 8 * d + m5
}

/// Sizes of one Winograd convolution.
struct WinogradPlan {
    let n, c, h, w, o, m, alpha: Int
    let tilesX, tilesPerImage, tileCount: Int

    init(n: Int, c: Int, h: Int, w: Int, o: Int, m: Int) {
        (self.n, self.c, self.h, self.w, self.o, self.m, alpha) = (n, c, h, w, o, m, m + 2)
        tilesX = (w + m - 1) / m
        tilesPerImage = ((h + m - 1) / m) * tilesX
        tileCount = n * tilesPerImage
    }
}

/// Floats from one position's plane of V to the next, for planes of `floats` floats: whole cache
/// lines, an odd number of them. The input transform writes all alpha^2 planes at once, one line
/// each; planes a multiple of 4 KiB apart (SDXL's 320 channels by 128 tiles: 160 KiB) fell into one
/// L1 set and a few L2 sets and kept evicting each other's lines (the transform of SDXL's 128x128
/// layers took 40% longer so). The filter transform writes its alpha^2 positions at once too: its
/// planes are spaced the same way (at 4 KiB multiples the transform took twice as long).
func winogradPlaneStride(_ floats: Int) -> Int {
    let lines = (floats + 15) / 16
    return (lines | 1) * 16
}

/// Where the transformed input V[ch, q, col] (channel, transform position, tile of the block) lives.
/// Plain: [C, alpha^2, ld], a channel's transforms together, the sgemms reading V[:, q, :] as a
/// [C, tiles] matrix with leading dimension alpha^2 ld. Packed (AVX-512): each position's [C, tiles]
/// matrix in the micro-kernel's packed-B form (jpgen_sgemm_pack_b), so that the products pack
/// nothing: packing it there, per product, was 1.2% of an SDXL step, and several times per position
/// in `conv2dWinogradByOutputChunks`.
struct WinogradVLayout {
    /// Floats from position q to q + 1 of the same channel and tile.
    let positionStride: Int
    /// Floats in all.
    let count: Int
    /// Tiles (columns) per position that it holds.
    var tiles: Int { ld }
    private let c, ld, alpha2: Int
    private let packedColumns: Int?   // packed: the tiles padded to the micro-kernel's 32 columns
    private let kBlock: Int

    static func plain(alpha2: Int, c: Int, ld: Int) -> WinogradVLayout {
        WinogradVLayout(positionStride: ld, count: c * alpha2 * ld, c: c, ld: ld, alpha2: alpha2, packedColumns: nil,
                        kBlock: 1)
    }

    static func packed(alpha2: Int, c: Int, tiles: Int) -> WinogradVLayout {
        let perPosition = winogradPlaneStride(jpgen_sgemm_packed_b_floats(tiles, c))
        return WinogradVLayout(positionStride: perPosition, count: alpha2 * perPosition, c: c, ld: tiles,
                               alpha2: alpha2, packedColumns: (tiles + 31) / 32 * 32, kBlock: jpgen_sgemm_k_block())
    }

    /// Offset of V[ch, 0, col].
    func offset(channel ch: Int, column col: Int) -> Int {
        guard let padded = packedColumns else { return ch * alpha2 * ld + col }
        let pc = ch / kBlock * kBlock, kc = Swift.min(kBlock, c - pc)
        return pc * padded + (col / 32) * kc * 32 + (ch - pc) * 32 + col % 32
    }

    /// Whether columns col ..< col + n of one channel and position are contiguous.
    func isContiguous(column col: Int, count n: Int) -> Bool { packedColumns == nil || col % 32 + n <= 32 }
}

/// V[ch, q, t - t0] = (B^T d B)[q] for the channels `channels` and tiles t0..<t1, x: [N, C, H, W].
private func winogradInputBlock(_ p: WinogradPlan, x: UnsafePointer<Float>, channels: Range<Int>, t0: Int, t1: Int,
                                v: UnsafeMutablePointer<Float>, layout: WinogradVLayout) {
    let a = p.alpha, a2 = a * a, m = p.m, lanes = winogradLanes
    let stride = layout.positionStride
    if useAVX512GEMM && winogradTransformsInC {
        // CKernels' AVX-512 transform, 16 tiles at a time (split where the columns leave a packed
        // panel of 32), every channel of one group of tiles before the next group: each position's
        // plane is then written as one stream (a group's lines for successive channels lie 128 bytes
        // apart), where channel by channel the writes of a block (4-8 panels 32 KB apart in each of
        // the 36 planes) were scattered; the transform took half as long so (SDXL's 128x128 layers).
        var t = t0
        while t < t1 {
            let img = t / p.tilesPerImage, r = t % p.tilesPerImage, ty = r / p.tilesX, tx0 = r % p.tilesX
            let count = Swift.min(p.tilesX - tx0, t1 - t)
            var g = 0
            while g < count {
                let col = t - t0 + g
                var live = Swift.min(lanes, count - g)
                if !layout.isContiguous(column: col, count: live) { live = 32 - col % 32 }
                for ch in channels {
                    let plane = x + (img * p.c + ch) * p.h * p.w
                    jpgen_winograd_input_tiles(plane, p.h, p.w, Int32(m), ty, tx0 + g, live,
                                               v + layout.offset(channel: ch, column: col), stride)
                }
                g += live
            }
            t += count
        }
        return
    }
    // The alpha input rows of a tile row, split by column phase so that lane l of d[i, j] (tile
    // tx0 + g + l) is phases[i, j % m, g + l + j / m]: rows[i, r, k] = x[m ty - 1 + i, m (tx0 + k) - 1 + r].
    let phaseLength = ((Swift.min(p.tilesX, t1 - t0) + lanes - 1) / lanes) * lanes + 1
    let phases = UnsafeMutablePointer<Float>.allocate(capacity: a * m * phaseLength)
    defer { phases.deallocate() }
    let vec = UnsafeMutableRawPointer.allocate(byteCount: a2 * MemoryLayout<WinogradVector>.stride, alignment: 64)
        .bindMemory(to: WinogradVector.self, capacity: a2)
    defer { vec.deallocate() }
    let lane = UnsafeMutableRawPointer(vec).assumingMemoryBound(to: Float.self)
    for ch in channels {
        var t = t0
        while t < t1 {
            let img = t / p.tilesPerImage, r = t % p.tilesPerImage, ty = r / p.tilesX, tx0 = r % p.tilesX
            let count = Swift.min(p.tilesX - tx0, t1 - t)   // tiles of this tile row in the block
            let plane = x + (img * p.c + ch) * p.h * p.w
            let kCount = ((count + lanes - 1) / lanes) * lanes + 1
            let xStart = m * tx0 - 1
            // Columns m k + xStart + r inside the image for k in kLo..<kHi, for every phase r.
            let kLo = Swift.min(kCount, (Swift.max(0, -xStart) + m - 1) / m)
            let kHi = Swift.max(kLo, Swift.min(kCount, p.w - xStart - m >= 0 ? (p.w - xStart - m) / m + 1 : 0))
            for i in 0..<a {
                let y = m * ty - 1 + i
                let rowPhases = phases + i * m * phaseLength
                if y < 0 || y >= p.h {
                    for ph in 0..<m { (rowPhases + ph * phaseLength).update(repeating: 0, count: kCount) }
                    continue
                }
                let src = plane + y * p.w + xStart
                for ph in 0..<m {
                    let dst = rowPhases + ph * phaseLength
                    for k in 0..<kLo { let xi = m * k + ph; dst[k] = xStart + xi >= 0 && xStart + xi < p.w ? src[xi] : 0 }
                    if m == 4 {
                        for k in kLo..<kHi { dst[k] = src[4 * k + ph] }
                    } else {
                        for k in kLo..<kHi { dst[k] = src[2 * k + ph] }
                    }
                    for k in kHi..<kCount { let xi = m * k + ph; dst[k] = xStart + xi < p.w ? src[xi] : 0 }
                }
            }
            var g = 0
            while g < count {
                let live = Swift.min(lanes, count - g)
                for i in 0..<a {
                    for j in 0..<a {
                        let src = phases + (i * m + j % m) * phaseLength + g + j / m
                        vec[i * a + j] = UnsafeRawPointer(src).loadUnaligned(as: WinogradVector.self)
                    }
                }
                if m == 4 {
                    for j in 0..<a { winogradInput4(vec + j, a) }
                    for i in 0..<a { winogradInput4(vec + i * a, 1) }
                } else {
                    for j in 0..<a { winogradInput2(vec + j, a) }
                    for i in 0..<a { winogradInput2(vec + i * a, 1) }
                }
                let col = t - t0 + g
                let dst = v + layout.offset(channel: ch, column: col)
                if live == lanes && layout.isContiguous(column: col, count: lanes) {
                    for q in 0..<a2 { UnsafeMutableRawPointer(dst + q * stride).storeBytes(of: vec[q], as: WinogradVector.self) }
                } else if layout.isContiguous(column: col, count: live) {
                    for q in 0..<a2 { for l in 0..<live { dst[q * stride + l] = lane[q * lanes + l] } }
                } else {
                    for l in 0..<live {
                        let d = v + layout.offset(channel: ch, column: col + l)
                        for q in 0..<a2 { d[q * stride] = lane[q * lanes + l] }
                    }
                }
                g += live
            }
            t += count
        }
    }
}

/// out[img, oc, tile t] = A^T M[:, oc, t - t0] A + bias[oc] for the output channels `channels` and
/// tiles t0..<t1. mm: [O, alpha^2, ldm] (readable 16 floats past its end); out: [N, O, H, W].
private func winogradOutputBlock(_ p: WinogradPlan, mm: UnsafePointer<Float>, ldm: Int, channels: Range<Int>,
                                 t0: Int, t1: Int, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
    let a = p.alpha, a2 = a * a, m = p.m, lanes = winogradLanes
    let vec = UnsafeMutableRawPointer.allocate(byteCount: a2 * MemoryLayout<WinogradVector>.stride, alignment: 64)
        .bindMemory(to: WinogradVector.self, capacity: a2)
    defer { vec.deallocate() }
    let lane = UnsafeMutableRawPointer(vec).assumingMemoryBound(to: Float.self)
    for oc in channels {
        let b = WinogradVector(repeating: bias?[oc] ?? 0)
        var t = t0
        while t < t1 {
            let img = t / p.tilesPerImage, r = t % p.tilesPerImage, ty = r / p.tilesX, tx0 = r % p.tilesX
            let count = Swift.min(p.tilesX - tx0, t1 - t)
            let plane = out + (img * p.o + oc) * p.h * p.w
            if useAVX512GEMM && winogradTransformsInC {
                var g = 0
                while g < count {
                    let live = Swift.min(lanes, count - g)
                    jpgen_winograd_output_tiles(mm + oc * a2 * ldm + t - t0 + g, ldm, Int32(m), bias?[oc] ?? 0, live,
                                                plane, p.h, p.w, ty, tx0 + g)
                    g += live
                }
                t += count
                continue
            }
            let rowsLeft = Swift.min(m, p.h - m * ty)
            var g = 0
            while g < count {
                let live = Swift.min(lanes, count - g)
                let col = t - t0 + g
                // (lanes past `live` read finite leftovers or the slack, and are never stored)
                let src = mm + oc * a2 * ldm + col
                for q in 0..<a2 { vec[q] = UnsafeRawPointer(src + q * ldm).loadUnaligned(as: WinogradVector.self) }
                if m == 4 {
                    for j in 0..<a { winogradOutput4(vec + j, a) }
                    for i in 0..<m { winogradOutput4(vec + i * a, 1) }
                } else {
                    for j in 0..<a { winogradOutput2(vec + j, a) }
                    for i in 0..<m { winogradOutput2(vec + i * a, 1) }
                }
                // y[i, j] at lane[(i, j), l] for tile tx0 + g + l: out[m ty + i, m (tx0 + g + l) + j]
                let xFirst = m * (tx0 + g)
                let fullWidth = xFirst + m * live <= p.w
                for i in 0..<rowsLeft {
                    let row = plane + (m * ty + i) * p.w + xFirst
                    for j in 0..<m { vec[i * a + j] += b }
                    if fullWidth {
                        if m == 4 {
                            for l in 0..<live {
                                let s = lane + (i * a) * lanes + l, d = row + 4 * l
                                d[0] = s[0]; d[1] = s[lanes]; d[2] = s[2 * lanes]; d[3] = s[3 * lanes]
                            }
                        } else {
                            for l in 0..<live {
                                let s = lane + (i * a) * lanes + l, d = row + 2 * l
                                d[0] = s[0]; d[1] = s[lanes]
                            }
                        }
                    } else {
                        for l in 0..<live {
                            for j in 0..<m where xFirst + m * l + j < p.w { row[m * l + j] = lane[(i * a + j) * lanes + l] }
                        }
                    }
                }
                g += live
            }
            t += count
        }
    }
}

/// The filter U [alpha^2, O, C] in the AVX-512 product's packed form (nil without AVX-512): each
/// position's [O, C] matrix packed once per call, where every block of tiles would otherwise pack
/// it again (measured: packing was 40% of the micro-kernel's time in an SD1.5 UNet step).
private struct WinogradPackedFilter {
    let storage: Workspace
    let perPosition: Int

    init?(u: UnsafePointer<Float>, positions: Int, o: Int, c: Int) {
        guard useAVX512GEMM else { return nil }
        perPosition = jpgen_sgemm_packed_a_floats(o, c)
        storage = Workspace(count: positions * perPosition)
        let dst = storage.pointer, each = perPosition
        parallelFor(positions) { q in jpgen_sgemm_pack_a(0, o, c, u + q * o * c, c, dst + q * each) }
    }

    /// The packed filter of a [O, C, 3, 3] weight, transformed straight into the packed form (no U
    /// in between), 12 output channels at a time over the threads.
    init?(weight: UnsafePointer<Float>, tile: Int, o: Int, c: Int) {
        guard useAVX512GEMM else { return nil }
        perPosition = winogradPlaneStride(jpgen_sgemm_packed_a_floats(o, c))
        storage = Workspace(count: (tile + 2) * (tile + 2) * perPosition)
        let dst = storage.pointer, each = perPosition
        parallelFor((o + 11) / 12) { panel in
            jpgen_winograd_filter_pack(weight, c, Int32(tile), 0, o, panel, panel + 1, dst, each)
        }
    }

    func position(_ q: Int) -> UnsafePointer<Float> { UnsafePointer(storage.pointer + q * perPosition) }
}

/// M[:, p, :] = U[p] V[:, p, :] for the transform positions `positions`: with the packed filter, V
/// in the packed layout (nothing packed here); else with the calling thread's sgemm, V plain.
/// u: [alpha^2, O, C], v: V of `tiles` columns in `layout`, mm: [O, alpha^2, ldm].
@inline(__always)
private func winogradMultiply(_ p: WinogradPlan, u: UnsafePointer<Float>?, packed: WinogradPackedFilter?,
                              v: UnsafePointer<Float>, layout: WinogradVLayout,
                              mm: UnsafeMutablePointer<Float>, ldm: Int, tiles: Int, positions: StrideTo<Int>) {
    let a2 = p.alpha * p.alpha
    for q in positions {
        if let packed {
            jpgen_sgemm_avx512_packed_ab(p.o, 0, p.o, layout.tiles, 0, tiles, p.c, 1, packed.position(q),
                                         v + q * layout.positionStride, 0, nil, mm + q * ldm, a2 * ldm)
        } else {
            sgemm(transA: false, transB: false, m: p.o, n: tiles, k: p.c,
                  a: u! + q * p.o * p.c, lda: p.c, b: v + q * layout.positionStride, ldb: a2 * layout.tiles,
                  beta: 0, c: mm + q * ldm, ldc: a2 * ldm)
        }
    }
}

/// Convolution with kernel 3x3, stride 1, padding 1 through a Winograd-domain filter.
/// x: [N, C, H, W], filter: U of a [O, C, 3, 3] weight, bias: [O] or nil -> [N, O, H, W].
public func conv2dWinograd(_ x: Tensor, filter: WinogradFilter, bias: Tensor?) -> Tensor {
    precondition(x.rank == 4 && x.shape[1] == filter.inChannels,
                 "conv2dWinograd: x \(x.shape) for a filter with \(filter.inChannels) input channels")
    let u = filter.transformed.base
    let packed = WinogradPackedFilter(u: u, positions: filter.transformed.shape[0], o: filter.outChannels,
                                      c: filter.inChannels)
    defer { packed?.storage.release() }
    return conv2dWinograd(x, u: u, packed: packed, o: filter.outChannels, tile: filter.tile, bias: bias)
}

/// The same with the filter transformed for this call only, into a scratch buffer that is
/// returned at the end (no cache): weight [O, C, 3, 3].
public func conv2dWinograd(_ x: Tensor, weight: Tensor, tile: Int, bias: Tensor?) -> Tensor {
    precondition(weight.rank == 4 && weight.shape[2] == 3 && weight.shape[3] == 3 && x.rank == 4
                 && x.shape[1] == weight.shape[1],
                 "conv2dWinograd: x \(x.shape) and weight \(weight.shape) (needs [O, C, 3, 3])")
    precondition(tile == 2 || tile == 4, "conv2dWinograd: tile \(tile) is not 2 or 4")
    let o = weight.shape[0], c = weight.shape[1]
    if let out = conv2dWinogradByOutputChunks(x, weight: weight, tile: tile, bias: bias) { return out }
    if let packed = WinogradPackedFilter(weight: weight.base, tile: tile, o: o, c: c) {
        defer { packed.storage.release() }
        return conv2dWinograd(x, u: nil, packed: packed, o: o, tile: tile, bias: bias)
    }
    let u = Workspace(count: (tile + 2) * (tile + 2) * o * c)
    defer { u.release() }
    winogradTransformFilter(weight.base, o: o, c: c, tile: tile, into: u.pointer)
    return conv2dWinograd(x, u: u.pointer, packed: nil, o: o, tile: tile, bias: bias)
}

/// Output channels per chunk of `conv2dWinogradByOutputChunks`: a multiple of the AVX-512
/// micro-kernel's 12 rows, with the U chunk [alpha^2, rows, C] at most 16 MiB where 12 rows allow,
/// and the chunks a multiple of the thread count so that the workers finish together.
func winogradChunkRows(alpha2: Int, c: Int, o: Int, threads: Int) -> Int {
    let most = Swift.max(12, (4 << 20) / Swift.max(1, alpha2 * c) / 12 * 12)
    let t = Swift.max(1, threads)
    let chunks = ((Swift.max(t, (o + most - 1) / most) + t - 1) / t) * t
    return Swift.min(most, Swift.max(12, ((o + chunks - 1) / chunks + 11) / 12 * 12))
}

/// Layers with at most this many tiles (all images) take the streamed-filter products of
/// `conv2dWinogradByOutputChunks`.
let winogradStreamedFilterMaxTiles = 64

/// Input channels per slice of the streamed filter (a divisor of the micro-kernel's k block).
let winogradStreamedKBlock = 128

/// The streamed-filter path's chunks of output channels: whole 12-row panels, at most 6 to a chunk (a
/// slice of 128 channels of the filter, 36 x 72 x 128 floats, and M for 72 channels and 64 tiles, 36 x
/// 72 x 64 floats, together 2 MB, the size of L2), as many chunks as a multiple of the thread count,
/// sizes differing by at most one panel. Measured with `jpbench conv` at 32x32 (1280 -> 1280 and 2560
/// -> 1280 channels, 2 threads): 2, 4, 6, 8 and 11 panels with slices of 32, 64, 128 and 256 channels;
/// 6 panels by 128 channels was fastest, 2-4% ahead of 4 or 8 panels, 15% ahead of 2.
func winogradStreamedChunks(o: Int, threads: Int) -> [Range<Int>] {
    let panels = (o + 11) / 12, t = Swift.max(1, threads)
    let count = Swift.min(panels, ((panels + 5) / 6 + t - 1) / t * t)
    return (0..<count).map { i in
        Swift.min(o, i * panels / count * 12) ..< Swift.min(o, (i + 1) * panels / count * 12)
    }
}

/// The per-call path for layers whose tiles all fit one block (low resolutions, many channels:
/// SD1.5's 32x32 and 16x16 layers), where the filter, not the tiles, is the large operand: a full
/// U [alpha^2, O, C] and its packed copy would be 60-240 MB of fresh pages per call (their page
/// clearing took a sixth of an SD1.5 UNet step). Here V is transformed once, then each worker takes
/// chunks of output channels: transforms and packs that chunk's filter into a small buffer of its
/// own, multiplies it at every position, and writes the chunk's output tiles. Also taken where V and
/// M of all tiles are smaller than the block path's buffers (the whole filter and each worker's V
/// and M blocks): SDXL's 64x64 layers, 47 against 106 MB at 640 channels. nil otherwise (the block
/// path, whose filter is small next to its tiles).
/// x: [N, C, H, W], weight: [O, C, 3, 3], bias: [O] or nil -> [N, O, H, W].
func conv2dWinogradByOutputChunks(_ x: Tensor, weight: Tensor, tile: Int, bias: Tensor?) -> Tensor? {
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], o = weight.shape[0]
    guard n * c * h * w > 0 && o > 0 else { return nil }
    let p = WinogradPlan(n: n, c: c, h: h, w: w, o: o, m: tile)
    let target = Swift.max(1, winogradBlockTiles ?? winogradDefaultBlockTiles(c: c, o: o))
    let blocks = (p.tileCount + target - 1) / target
    let chunkFloats = (c + o) * p.tileCount, blockFloats = o * c + Swift.min(kernelThreadCount, blocks) * (c + o) * target
    guard p.tileCount <= target || chunkFloats <= blockFloats else { return nil }
    if let bias { precondition(bias.count == o, "conv2dWinograd bias \(bias.shape) for \(o) output channels") }
    let a2 = p.alpha * p.alpha, tiles = p.tileCount, threads = kernelThreadCount
    let out = Tensor(uninitializedShape: [n, o, h, w])
    let dst = out.fresh, b = bias?.base, src = x.base, weights = weight.base
    // v: V in its layout, mm: [O, alpha^2, tiles]
    let layout = useAVX512GEMM ? WinogradVLayout.packed(alpha2: a2, c: c, tiles: tiles)
        : .plain(alpha2: a2, c: c, ld: tiles)
    let workspace = Workspace(count: layout.count + a2 * o * tiles + winogradLanes)
    defer { workspace.release() }
    let v = workspace.pointer, mm = v + layout.count
    parallelRanges(c, grain: 1) { r in
        winogradInputBlock(p, x: src, channels: r, t0: 0, t1: tiles, v: v, layout: layout)
    }
    if useAVX512GEMM && tiles <= winogradStreamedFilterMaxTiles {
        // Few tiles (SDXL's 32x32 layers: 64): the filter, 4x the weight, is the large operand. Each chunk
        // of output channels transforms it a slice of input channels at a time into a buffer that stays in
        // L2 and multiplies the slice at once, the chunk's M staying in L2 too. Written whole per chunk
        // (15 MB at 1280 channels) and read back, it went through L3 three times (write, its read for
        // ownership, the products' read): 1280 -> 1280 channels at 32x32 took twice its products' time.
        let chunks = winogradStreamedChunks(o: o, threads: threads)
        let kb = winogradStreamedKBlock, most = chunks.map(\.count).max() ?? 0
        let next = WorkCounter()
        parallelWorkersWithSerialBLAS(Swift.min(threads, chunks.count)) { _ in
            let buffer = Workspace(count: jpgen_winograd_chunk_buffer_floats(most, kb, Int32(tile)))
            defer { buffer.release() }
            while let chunk = next.claim(below: chunks.count) {
                let rows = chunks[chunk]
                let done = jpgen_winograd_chunk_products(weights, c, Int32(tile), rows.lowerBound, rows.count, v,
                                                         layout.positionStride, tiles, kb, mm + rows.lowerBound * a2 * tiles,
                                                         a2 * tiles, tiles, buffer.pointer)
                precondition(done != 0, "conv2dWinograd: the AVX-512 chunk products refused k block \(kb)")
                winogradOutputBlock(p, mm: mm, ldm: tiles, channels: rows, t0: 0, t1: tiles, bias: b, out: dst)
            }
        }
        return out
    }
    let rows = winogradChunkRows(alpha2: a2, c: c, o: o, threads: threads)
    let chunks = (o + rows - 1) / rows
    let next = WorkCounter()
    parallelWorkersWithSerialBLAS(Swift.min(threads, chunks)) { _ in
        // With AVX-512 the chunk's filter is transformed straight into the micro-kernel's packed form
        // (jpgen_winograd_filter_pack), one packed [rows, C] matrix per position; else U [alpha^2, rows, C].
        let perPosition = useAVX512GEMM ? winogradPlaneStride(jpgen_sgemm_packed_a_floats(rows, c)) : rows * c
        let filter = useAVX512GEMM ? nil : WinogradFilterScratch(tile: tile)
        let u = Workspace(count: a2 * perPosition)
        defer { filter?.release(); u.release() }
        while let chunk = next.claim(below: chunks) {
            let o0 = chunk * rows, live = Swift.min(rows, o - o0)
            if let filter {
                for oc in o0..<(o0 + live) {
                    winogradTransformFilterRow(weights, oc: oc, c: c, tile: tile, scratch: filter,
                                               into: u.pointer + (oc - o0) * c, plane: live * c)
                }
            } else {
                jpgen_winograd_filter_pack(weights, c, Int32(tile), o0, live, 0, (live + 11) / 12, u.pointer, perPosition)
            }
            for q in 0..<a2 {
                // M[o0 ..< o0 + live, q, :] = U[q] [live, C] x V[:, q, :] [C, tiles]
                let out = mm + o0 * a2 * tiles + q * tiles
                if useAVX512GEMM {
                    jpgen_sgemm_avx512_packed_ab(live, 0, live, layout.tiles, 0, tiles, c, 1, u.pointer + q * perPosition,
                                                 v + q * layout.positionStride, 0, nil, out, a2 * tiles)
                } else {
                    let a = u.pointer + q * live * c
                    sgemm(transA: false, transB: false, m: live, n: tiles, k: c, a: a, lda: c,
                          b: v + q * tiles, ldb: a2 * tiles, beta: 0, c: out, ldc: a2 * tiles)
                }
            }
            winogradOutputBlock(p, mm: mm, ldm: tiles, channels: o0..<(o0 + live), t0: 0, t1: tiles, bias: b, out: dst)
        }
    }
    return out
}

/// x: [N, C, H, W], the filter as U [alpha^2, O, C] or packed (at least one of them), bias: [O] or
/// nil -> [N, O, H, W].
private func conv2dWinograd(_ x: Tensor, u: UnsafePointer<Float>?, packed: WinogradPackedFilter?, o: Int, tile: Int,
                            bias: Tensor?) -> Tensor {
    precondition(u != nil || packed != nil, "conv2dWinograd: no filter")
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    if let bias { precondition(bias.count == o, "conv2dWinograd bias \(bias.shape) for \(o) output channels") }
    let out = Tensor(uninitializedShape: [n, o, h, w])
    if out.count == 0 { return out }
    let dst = out.fresh, b = bias?.base
    if c == 0 {
        parallelFor(n * o) { j in (dst + j * h * w).update(repeating: b?[j % o] ?? 0, count: h * w) }
        return out
    }
    let p = WinogradPlan(n: n, c: c, h: h, w: w, o: o, m: tile)
    let a2 = p.alpha * p.alpha, threads = kernelThreadCount
    let src = x.base
    let target = Swift.max(1, winogradBlockTiles ?? winogradDefaultBlockTiles(c: c, o: o))
    var blocks = (p.tileCount + target - 1) / target
    // V of a block: packed for the micro-kernel with the packed filter (packing it per product was
    // 0.6% of an SDXL step), else plain for sgemm.
    func vLayout(_ blockTiles: Int) -> WinogradVLayout {
        packed == nil ? .plain(alpha2: a2, c: c, ld: blockTiles) : .packed(alpha2: a2, c: c, tiles: blockTiles)
    }
    if threads > 1 && blocks >= threads {
        // Worker blocks: as many as threads at least, a multiple of threads when that costs little.
        blocks = ((blocks + threads - 1) / threads) * threads
        let blockTiles = (p.tileCount + blocks - 1) / blocks
        blocks = (p.tileCount + blockTiles - 1) / blockTiles
        let layout = vLayout(blockTiles)
        let perWorker = layout.count + a2 * o * blockTiles + winogradLanes
        let workers = Swift.min(threads, blocks)
        let workspace = Workspace(count: workers * perWorker)
        defer { workspace.release() }
        let buffers = workspace.pointer
        let next = WorkCounter()
        parallelWorkersWithSerialBLAS(workers) { worker in
            let v = buffers + worker * perWorker, mm = v + layout.count
            while let block = next.claim(below: blocks) {
                let t0 = block * blockTiles, t1 = Swift.min(p.tileCount, t0 + blockTiles)
                winogradInputBlock(p, x: src, channels: 0..<c, t0: t0, t1: t1, v: v, layout: layout)
                winogradMultiply(p, u: u, packed: packed, v: v, layout: layout, mm: mm, ldm: blockTiles,
                                 tiles: t1 - t0, positions: stride(from: 0, to: a2, by: 1))
                winogradOutputBlock(p, mm: mm, ldm: blockTiles, channels: 0..<o, t0: t0, t1: t1, bias: b, out: dst)
            }
        }
    } else {
        // Few tiles: blocks one after another, each step split over threads (channels for the
        // transforms, transform positions for the sgemms).
        let blockTiles = (p.tileCount + blocks - 1) / blocks
        let layout = vLayout(blockTiles)
        let workspace = Workspace(count: layout.count + a2 * o * blockTiles + winogradLanes)
        defer { workspace.release() }
        let v = workspace.pointer
        let mm = v + layout.count
        for block in 0..<blocks {
            let t0 = block * blockTiles, t1 = Swift.min(p.tileCount, t0 + blockTiles)
            parallelRanges(c, grain: 1) { r in
                winogradInputBlock(p, x: src, channels: r, t0: t0, t1: t1, v: v, layout: layout)
            }
            parallelWorkersWithSerialBLAS(Swift.min(threads, a2)) { worker in
                winogradMultiply(p, u: u, packed: packed, v: v, layout: layout, mm: mm, ldm: blockTiles,
                                 tiles: t1 - t0, positions: stride(from: worker, to: a2, by: Swift.min(threads, a2)))
            }
            parallelRanges(o, grain: 1) { r in
                winogradOutputBlock(p, mm: mm, ldm: blockTiles, channels: r, t0: t0, t1: t1, bias: b, out: dst)
            }
        }
    }
    return out
}

/// Whether conv2d takes the Winograd path for 3x3, stride-1, padding-1 convolutions: `.automatic`
/// where it measured faster (`conv2dWinogradTile`), `.off` never, `.f2` / `.f4` always with that tile.
/// The environment variable JPGEN_CONV2D_WINOGRAD (automatic, off, f2, f4) sets the starting value.
public enum Conv2dWinogradMode: String, CaseIterable, Sendable {
    case automatic, off, f2, f4
}

nonisolated(unsafe) public var conv2dWinograd: Conv2dWinogradMode = {
    guard let s = ProcessInfo.processInfo.environment["JPGEN_CONV2D_WINOGRAD"] else { return .automatic }
    return Conv2dWinogradMode(rawValue: s.lowercased()) ?? .automatic
}()

/// The Winograd tile size (2 or 4) conv2d uses for x: [N, C, H, W] and a [O, C, kh, kw] weight, or
/// nil when it takes a GEMM path (always nil unless 3x3, stride 1, padding 1).
public func conv2dWinogradTile(n: Int, c: Int, h: Int, w: Int, o: Int, kh: Int, kw: Int,
                               stride: Int, padding: Int) -> Int? {
    guard kh == 3 && kw == 3 && stride == 1 && padding == 1 && n * c * h * w > 0 && o > 0 else { return nil }
    switch conv2dWinograd {
    case .off: return nil
    case .f2: return 2
    case .f4: return 4
    case .automatic:
        // A formulation forced through conv2dAlgorithm (tests, benchmarks) keeps the GEMM paths.
        guard conv2dAlgorithm == .automatic && c >= 32 && o >= 32 else { return nil }
        // Measured with `jpbench conv` (filter transformed per call, share of square sgemm's
        // GFLOP/s; the GEMM paths reach 92-98%): F(4x4) 320 ch at 64x64 235%, 640 at 32x32 185%,
        // 512 at 128x128 265%, but 1280 at 16x16 81% (16 tiles), where F(2x2) gives 100-108%.
        if n * h * w >= 32 * 32 { return 4 }
        if n * h * w >= 16 * 16 && c >= 512 && o >= 512 { return 2 }
        return nil
    }
}

/// Whether conv2d keeps the Winograd filters in the `WinogradFilterCache` its caller passes (the
/// networks' conv weights hold one each). Off by default: a kept F(4x4) filter is 4x its weight
/// (e.g. +1.3 GB for the SD1.5 UNet's 64x64 and 32x32 layers), while transforming per call costs
/// 2-10% of such a convolution. JPGEN_WINOGRAD_KEEP_FILTERS=1 sets it at start.
nonisolated(unsafe) public var winogradKeepsFilters: Bool =
    ProcessInfo.processInfo.environment["JPGEN_WINOGRAD_KEEP_FILTERS"] == "1"
