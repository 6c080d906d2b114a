// conv2d against a direct 7-loop convolution in Double, through each of its three paths
// (1x1, row-shift, im2col) and with tiling forced by a tiny buffer budget.
// Tolerance: 1e-4 absolute (K = C*kh*kw <= 200, inputs in [-1, 1)).

import XCTest
@testable import Kernels

final class Conv2dTests: XCTestCase {
    struct Case { let n, c, h, w, o, kh, kw, stride, padding: Int; let bias: Bool }

    let cases: [Case] = [
        Case(n: 1, c: 6, h: 5, w: 7, o: 4, kh: 1, kw: 1, stride: 1, padding: 0, bias: true),   // 1x1 path
        Case(n: 2, c: 4, h: 9, w: 9, o: 5, kh: 3, kw: 3, stride: 1, padding: 1, bias: true),   // row-shift
        Case(n: 1, c: 3, h: 8, w: 11, o: 6, kh: 3, kw: 3, stride: 1, padding: 0, bias: false), // row-shift, no pad
        Case(n: 1, c: 8, h: 4, w: 4, o: 64, kh: 3, kw: 3, stride: 1, padding: 1, bias: true),  // im2col (small plane)
        Case(n: 2, c: 5, h: 9, w: 8, o: 7, kh: 3, kw: 3, stride: 2, padding: 1, bias: true),   // stride 2
        Case(n: 1, c: 3, h: 10, w: 9, o: 4, kh: 5, kw: 5, stride: 1, padding: 2, bias: true),  // 5x5
        Case(n: 1, c: 2, h: 6, w: 7, o: 3, kh: 1, kw: 3, stride: 1, padding: 1, bias: false),  // 1x3 padded
        Case(n: 1, c: 4, h: 7, w: 7, o: 3, kh: 1, kw: 1, stride: 2, padding: 0, bias: true),   // 1x1 stride 2
        Case(n: 1, c: 3, h: 4, w: 4, o: 2, kh: 4, kw: 4, stride: 4, padding: 0, bias: true),   // patchify
        Case(n: 2, c: 3, h: 5, w: 6, o: 130, kh: 3, kw: 3, stride: 1, padding: 1, bias: true), // channels split over workers
    ]

    func run(_ cs: Case, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let x = randomTensor([cs.n, cs.c, cs.h, cs.w], &rng)
        let w = randomTensor([cs.o, cs.c, cs.kh, cs.kw], &rng)
        let b = cs.bias ? randomTensor([cs.o], &rng) : nil
        let got = conv2d(x, weight: w, bias: b, stride: cs.stride, padding: cs.padding)
        let want = naiveConv2d(x, w, b, stride: cs.stride, padding: cs.padding)
        assertClose(got, want, tol: 1e-4, "\(cs)")
    }

    /// Runs every case under each formulation and each way of spreading tiles.
    func runAllModes(seed: UInt64) {
        let (savedAlgorithm, savedWorkers) = (conv2dAlgorithm, conv2dWorkerTiles)
        defer { conv2dAlgorithm = savedAlgorithm; conv2dWorkerTiles = savedWorkers }
        for algorithm in Conv2dAlgorithm.allCases {
            for workers in [nil, false, true] as [Bool?] {
                conv2dAlgorithm = algorithm
                conv2dWorkerTiles = workers
                for (i, cs) in cases.enumerated() { run(cs, seed: seed + UInt64(i)) }
            }
        }
    }

    func testAllPathsAgainstNaive() {
        runAllModes(seed: 10)
    }

    func testTiledOverOutputRows() {
        // A budget of a few rows forces many tiles (and ragged last tiles) in every mode.
        let (savedBudget, savedColumns) = (convBufferBudget, convMinimumTileColumns)
        defer { convBufferBudget = savedBudget; convMinimumTileColumns = savedColumns }
        convBufferBudget = 300
        convMinimumTileColumns = 1
        runAllModes(seed: 40)
    }

    func testSDLikeShapeSmallPlane() {
        // 64 -> 32 channels at 12x12 with padding: K = 576, tolerance 5e-4.
        var rng = SeededGenerator(seed: 77)
        let x = randomTensor([1, 64, 12, 12], &rng), w = randomTensor([32, 64, 3, 3], &rng, lo: -0.1, hi: 0.1)
        let b = randomTensor([32], &rng)
        assertClose(conv2d(x, weight: w, bias: b, stride: 1, padding: 1),
                    naiveConv2d(x, w, b, stride: 1, padding: 1), tol: 5e-4, "64->32 3x3")
    }
}
