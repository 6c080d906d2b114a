// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution (Conv2dWinograd.swift) against the direct
// 7-loop convolution in Double: odd plane sizes (partial tiles at the right and bottom edges),
// planes smaller than one tile, 1..40 channels, batch 1..3, with and without bias, blocks on
// worker threads and one after another, one thread and all. Inputs and weights uniform in [-1, 1).
// Tolerance: 2e-6 * K (F(2x2)) and 1e-5 * K (F(4x4)) absolute, K = 9 C (largest errors measured:
// 5.2e-6 and 1.2e-4, at K = 297, where the tolerances are 5.9e-4 and 3.0e-3); at an SD-like scale
// the error relative to the output's peak is stated in testSDLikeLayerError.

import XCTest
@testable import Kernels

final class Conv2dWinogradTests: XCTestCase {
    struct Case { let n, c, h, w, o: Int; let bias: Bool }

    let cases: [Case] = [
        Case(n: 1, c: 1, h: 1, w: 1, o: 1, bias: true),     // plane smaller than a tile
        Case(n: 1, c: 3, h: 2, w: 3, o: 2, bias: false),
        Case(n: 2, c: 4, h: 5, w: 7, o: 5, bias: true),     // partial tiles both ways, batch 2
        Case(n: 1, c: 33, h: 13, w: 17, o: 40, bias: true), // odd channel counts
        Case(n: 3, c: 8, h: 8, w: 8, o: 16, bias: true),    // whole tiles, batch 3
        Case(n: 1, c: 16, h: 37, w: 6, o: 3, bias: false),  // tall and narrow
        Case(n: 2, c: 5, h: 6, w: 41, o: 7, bias: true),    // wide: rows of more than 16 tiles
        Case(n: 1, c: 3, h: 5, w: 70, o: 4, bias: false),   // more than 16 tiles of 4 columns
    ]

    /// Largest |winograd - naive| over the cases for one tile size, failing beyond the tolerance.
    @discardableResult
    func runCases(tile: Int, seed: UInt64) -> Float {
        var worst: Float = 0
        for (i, cs) in cases.enumerated() {
            var rng = SeededGenerator(seed: seed + UInt64(i))
            let x = randomTensor([cs.n, cs.c, cs.h, cs.w], &rng)
            let w = randomTensor([cs.o, cs.c, 3, 3], &rng)
            let b = cs.bias ? randomTensor([cs.o], &rng) : nil
            let got = conv2dWinograd(x, filter: winogradFilter(w, tile: tile), bias: b)
            let want = naiveConv2d(x, w, b, stride: 1, padding: 1)
            let tol: Float = (tile == 2 ? 2e-6 : 1e-5) * Float(9 * cs.c)
            assertClose(got, want, tol: tol, "F(\(tile)) \(cs)")
            worst = max(worst, maxAbsDifference(got, want))
            // The per-call path: with AVX-512 the filter goes straight into the packed form (the block
            // path) or by output-channel chunks (tiles within one block), else through U.
            let perCall = conv2dWinograd(x, weight: w, tile: tile, bias: b)
            assertClose(perCall, want, tol: tol, "F(\(tile)) \(cs), filter transformed per call")
            assertClose(perCall, got, tol: 1e-6 * Float(9 * cs.c), "F(\(tile)) \(cs), per call vs kept filter")
            worst = max(worst, maxAbsDifference(perCall, want))
        }
        return worst
    }

    /// Every case with each tile, with blocks of many sizes (so both the worker and the sequential
    /// schedule, and blocks that end inside a tile row), on all threads and on one.
    func testAgainstNaive() {
        let savedBlock = winogradBlockTiles, savedThreads = kernelThreadCount
        defer { winogradBlockTiles = savedBlock; setThreadCount(savedThreads) }
        for threads in Set([1, max(2, savedThreads)]) {
            setThreadCount(threads)
            for block in [1, 3, 16, 17, 256] {
                winogradBlockTiles = block
                let e2 = runCases(tile: 2, seed: 100)
                let e4 = runCases(tile: 4, seed: 200)
                print("winograd threads \(threads) block \(block): max |diff| F(2x2) \(e2), F(4x4) \(e4)")
            }
        }
    }

    /// CKernels' AVX-512 input and output transforms against the Swift ones, bit for bit, through the block path
    /// (plain V) and the chunk path (V in packed panels, 16-tile groups that cross a 32-column panel).
    func testTransformsInCMatchSwift() throws {
        try XCTSkipUnless(useAVX512GEMM, "the AVX-512 transform is not used on this CPU")
        let savedBlock = winogradBlockTiles
        defer { winogradTransformsInC = true; winogradBlockTiles = savedBlock }
        winogradBlockTiles = 1024   // every case's tiles in one block: the chunk path takes them all
        for tile in [2, 4] {
            for (i, cs) in (cases + [Case(n: 1, c: 40, h: 9, w: 150, o: 24, bias: true)]).enumerated() {
                var rng = SeededGenerator(seed: 400 + UInt64(i))
                let x = randomTensor([cs.n, cs.c, cs.h, cs.w], &rng)
                let w = randomTensor([cs.o, cs.c, 3, 3], &rng)
                let b = cs.bias ? randomTensor([cs.o], &rng) : nil
                var outputs: [[Float]] = []
                for inC in [true, false] {
                    winogradTransformsInC = inC
                    outputs.append(conv2dWinograd(x, filter: winogradFilter(w, tile: tile), bias: b).scalars)
                    let chunks = try XCTUnwrap(conv2dWinogradByOutputChunks(x, weight: w, tile: tile, bias: b))
                    outputs.append(chunks.scalars)
                }
                XCTAssertFalse(outputs[0].isEmpty)
                XCTAssertEqual(outputs[0], outputs[2], "F(\(tile)) \(cs) block path")
                XCTAssertEqual(outputs[1], outputs[3], "F(\(tile)) \(cs) chunk path")
            }
        }
    }

    /// The per-call path by output-channel chunks (layers whose tiles fit one block): against the
    /// naive convolution and against the block path with a whole transformed filter, with several
    /// chunks and a short last one, F(2x2) and F(4x4), batch 1 and 2, on one thread and all.
    func testOutputChunkPath() {
        XCTAssertEqual(winogradStreamedChunks(o: 1280, threads: 2).count, 18)   // 107 panels: chunks of 5 and 6
        XCTAssertEqual(winogradStreamedChunks(o: 1280, threads: 2).map(\.count).max(), 72)
        XCTAssertEqual(winogradStreamedChunks(o: 1280, threads: 2).last, 1212 ..< 1280)
        XCTAssertEqual(winogradStreamedChunks(o: 29, threads: 2), [0 ..< 12, 12 ..< 29])
        XCTAssertEqual(winogradStreamedChunks(o: 5, threads: 4), [0 ..< 5])
        XCTAssertEqual(winogradChunkRows(alpha2: 36, c: 1200, o: 200, threads: 2), 60)   // 60, 60, 60, 20
        XCTAssertEqual(winogradChunkRows(alpha2: 16, c: 1280, o: 1280, threads: 2), 168)  // 8 chunks
        XCTAssertEqual(winogradChunkRows(alpha2: 36, c: 8, o: 5, threads: 2), 12)
        XCTAssertEqual(winogradChunkRows(alpha2: 36, c: 8, o: 40, threads: 1), 48)
        let savedThreads = kernelThreadCount
        defer { setThreadCount(savedThreads) }
        let cases = [Case(n: 1, c: 1200, h: 6, w: 7, o: 200, bias: true),
                     Case(n: 2, c: 96, h: 5, w: 9, o: 37, bias: false),
                     Case(n: 1, c: 8, h: 3, w: 3, o: 5, bias: true),
                     // slices of 128, 128 and 45 channels; F(2x2): 42 tiles, two column panels
                     Case(n: 1, c: 301, h: 12, w: 14, o: 29, bias: true)]
        for threads in Set([1, max(2, savedThreads)]) {
            setThreadCount(threads)
            for tile in [2, 4] {
                for (i, cs) in cases.enumerated() {
                    var rng = SeededGenerator(seed: 300 + UInt64(i))
                    let bound = 1 / Float(9 * cs.c).squareRoot()
                    let x = randomTensor([cs.n, cs.c, cs.h, cs.w], &rng)
                    let w = randomTensor([cs.o, cs.c, 3, 3], &rng, lo: -bound, hi: bound)
                    let b = cs.bias ? randomTensor([cs.o], &rng) : nil
                    guard let got = conv2dWinogradByOutputChunks(x, weight: w, tile: tile, bias: b) else {
                        return XCTFail("F(\(tile)) \(cs): the chunk path refused tiles that fit one block")
                    }
                    XCTAssertEqual(got.shape, [cs.n, cs.o, cs.h, cs.w])
                    let want = naiveConv2d(x, w, b, stride: 1, padding: 1)
                    let peak = want.scalars.reduce(Float(0)) { max($0, abs($1)) }
                    XCTAssertLessThan(maxAbsDifference(got, want) / peak, tile == 2 ? 2e-6 : 3e-5, "F(\(tile)) \(cs) vs naive")
                    let block = conv2dWinograd(x, filter: winogradFilter(w, tile: tile), bias: b)
                    // With AVX-512 and at most 64 tiles the filter is streamed in slices of 128 input channels,
                    // summed in that order: as accurate as the block path, not bit for bit the same.
                    let errorChunks = maxAbsDifference(got, want) / peak, errorBlock = maxAbsDifference(block, want) / peak
                    XCTAssertLessThan(maxAbsDifference(got, block) / peak, tile == 2 ? 1e-6 : 1e-5, "F(\(tile)) \(cs) vs block path")
                    XCTAssertLessThanOrEqual(errorChunks, 1.5 * errorBlock + 1e-7, "F(\(tile)) \(cs) no less accurate than the block path")
                    XCTAssertEqual(conv2dWinograd(x, weight: w, tile: tile, bias: b).scalars, got.scalars)
                }
            }
        }
        // Tiles beyond one block take the block path.
        let saved = winogradBlockTiles
        defer { winogradBlockTiles = saved }
        winogradBlockTiles = 3
        XCTAssertNil(conv2dWinogradByOutputChunks(Tensor(shape: [1, 4, 8, 8]), weight: Tensor(shape: [4, 4, 3, 3]), tile: 2, bias: nil))
    }

    /// An SD-like layer (256 -> 64 channels at 24x20, weights at PyTorch's default init scale):
    /// the error of each tile size next to that of the GEMM path, relative to the output's peak.
    func testSDLikeLayerError() {
        var rng = SeededGenerator(seed: 7)
        let c = 256, bound = 1 / Float(9 * c).squareRoot()
        let x = randomTensor([1, c, 24, 20], &rng)
        let w = randomTensor([64, c, 3, 3], &rng, lo: -bound, hi: bound)
        let b = randomTensor([64], &rng, lo: -bound, hi: bound)
        let want = naiveConv2d(x, w, b, stride: 1, padding: 1)
        let peak = want.scalars.reduce(Float(0)) { max($0, abs($1)) }
        let saved = conv2dWinograd
        defer { conv2dWinograd = saved }
        conv2dWinograd = .off
        let gemm = maxAbsDifference(conv2d(x, weight: w, bias: b, stride: 1, padding: 1), want) / peak
        let f2 = maxAbsDifference(conv2dWinograd(x, filter: winogradFilter(w, tile: 2), bias: b), want) / peak
        let f4 = maxAbsDifference(conv2dWinograd(x, filter: winogradFilter(w, tile: 4), bias: b), want) / peak
        print("256->64 at 24x20, max |diff| / peak \(peak): gemm \(gemm), F(2x2) \(f2), F(4x4) \(f4)")
        // Measured: gemm 3.8e-7, F(2x2) 6.6e-7, F(4x4) 1.03e-5 (its transforms' coefficients reach 8).
        XCTAssertLessThan(gemm, 2e-6, "GEMM path relative error")
        XCTAssertLessThan(f2, 2e-6, "F(2x2) relative error")
        XCTAssertLessThan(f4, 3e-5, "F(4x4) relative error")
    }

    /// conv2d's dispatch: Winograd only for 3x3 stride 1 padding 1, by mode; forced modes and the
    /// filter cache give the same numbers as a direct transform.
    func testDispatchAndCache() {
        let saved = conv2dWinograd
        defer { conv2dWinograd = saved }
        conv2dWinograd = .automatic
        XCTAssertEqual(conv2dWinogradTile(n: 1, c: 128, h: 64, w: 64, o: 128, kh: 3, kw: 3, stride: 1, padding: 1), 4)
        XCTAssertNil(conv2dWinogradTile(n: 1, c: 128, h: 64, w: 64, o: 128, kh: 3, kw: 3, stride: 2, padding: 1))
        XCTAssertNil(conv2dWinogradTile(n: 1, c: 128, h: 64, w: 64, o: 128, kh: 3, kw: 3, stride: 1, padding: 0))
        XCTAssertNil(conv2dWinogradTile(n: 1, c: 128, h: 64, w: 64, o: 128, kh: 1, kw: 1, stride: 1, padding: 0))
        XCTAssertNil(conv2dWinogradTile(n: 1, c: 4, h: 64, w: 64, o: 320, kh: 3, kw: 3, stride: 1, padding: 1))
        XCTAssertEqual(conv2dWinogradTile(n: 1, c: 1280, h: 16, w: 16, o: 1280, kh: 3, kw: 3, stride: 1, padding: 1), 2)
        XCTAssertEqual(conv2dWinogradTile(n: 4, c: 1280, h: 16, w: 16, o: 1280, kh: 3, kw: 3, stride: 1, padding: 1), 4)
        XCTAssertNil(conv2dWinogradTile(n: 1, c: 320, h: 16, w: 16, o: 320, kh: 3, kw: 3, stride: 1, padding: 1))
        XCTAssertNil(conv2dWinogradTile(n: 1, c: 1280, h: 8, w: 8, o: 1280, kh: 3, kw: 3, stride: 1, padding: 1))
        conv2dWinograd = .off
        XCTAssertNil(conv2dWinogradTile(n: 1, c: 128, h: 64, w: 64, o: 128, kh: 3, kw: 3, stride: 1, padding: 1))
        conv2dWinograd = .f2
        XCTAssertEqual(conv2dWinogradTile(n: 1, c: 1, h: 1, w: 1, o: 1, kh: 3, kw: 3, stride: 1, padding: 1), 2)
        XCTAssertNil(conv2dWinogradTile(n: 1, c: 8, h: 8, w: 8, o: 8, kh: 5, kw: 5, stride: 1, padding: 2))

        var rng = SeededGenerator(seed: 9)
        let x = randomTensor([2, 6, 9, 10], &rng), w = randomTensor([5, 6, 3, 3], &rng), b = randomTensor([5], &rng)
        let want = naiveConv2d(x, w, b, stride: 1, padding: 1)
        let cache = WinogradFilterCache()
        let savedKeep = winogradKeepsFilters
        defer { winogradKeepsFilters = savedKeep }
        winogradKeepsFilters = false
        conv2dWinograd = .f4
        _ = conv2d(x, weight: w, bias: b, stride: 1, padding: 1, winograd: cache)
        XCTAssertEqual(cache.cachedCount, 0, "filters are kept only when winogradKeepsFilters")
        winogradKeepsFilters = true
        for mode in [Conv2dWinogradMode.f2, .f4] {
            conv2dWinograd = mode
            let direct = conv2d(x, weight: w, bias: b, stride: 1, padding: 1)
            let cached = conv2d(x, weight: w, bias: b, stride: 1, padding: 1, winograd: cache)
            assertClose(direct, want, tol: 1e-3, "conv2d \(mode)")
            XCTAssertEqual(direct.scalars, cached.scalars, "cached filter \(mode)")
        }
        // One filter per tile size: 4^2 and 6^2 transform positions of 5 x 6.
        XCTAssertEqual(cache.cachedCount, (16 + 36) * 30)
        _ = conv2d(x, weight: w, bias: b, stride: 1, padding: 1, winograd: cache)
        XCTAssertEqual(cache.cachedCount, (16 + 36) * 30, "a second call reuses the cached filter")
    }
}
