// Merge methods on one tensor at a time (flat Float32 buffers of equal length). Each follows the
// method as mergekit implements it (mergekit/merge_methods, mergekit/sparsify.py), with the paper's
// formula in the comment. "models" are the non-base inputs; "base" is the model task vectors are
// taken against.

import Foundation
import Kernels

public enum MergeMethod: String, Codable, CaseIterable, Sendable {
    case linear, addDifference = "add_difference", taskArithmetic = "task_arithmetic", ties
    case dareLinear = "dare_linear", dareTies = "dare_ties", slerp
    /// One input copied as it is (with `loras:`, a LoRA fusion stage).
    case passthrough

    /// Whether the method needs a `base` input.
    public var needsBase: Bool {
        switch self {
        case .linear, .passthrough: return false
        case .addDifference, .taskArithmetic, .ties, .dareLinear, .dareTies, .slerp: return true
        }
    }
}

/// How DARE rescales the kept entries of a task vector.
public enum DARERescale: String, Codable, Sendable {
    /// x / density: the DARE paper's rescale (Yu et al. 2023, eq. 2), keeping each entry's expectation.
    case density
    /// to the task vector's L1 norm before the drop (mergekit's `rescale: true`).
    case l1
    case none
}

/// Linear / weighted sum: out = sum_i w_i x_i, divided by sum_i w_i when `normalize`.
public func mergeLinear(_ inputs: [UnsafeBufferPointer<Float>], weights: [Float], normalize: Bool,
                        into out: UnsafeMutableBufferPointer<Float>) {
    let total = weights.reduce(0, +)
    let scale: Float = normalize && abs(total) > 1e-8 ? 1 / total : 1
    parallelChunks(out.count) { range in
        for i in range { out[i] = 0 }
        for (x, w) in zip(inputs, weights) {
            let ws = w * scale
            for i in range { out[i] += ws * x[i] }
        }
    }
}

/// Add difference: out = a + alpha (b - c)  (the "add difference" of the A1111 checkpoint merger).
public func mergeAddDifference(a: UnsafeBufferPointer<Float>, b: UnsafeBufferPointer<Float>, c: UnsafeBufferPointer<Float>,
                               alpha: Float, into out: UnsafeMutableBufferPointer<Float>) {
    for i in 0..<out.count { out[i] = a[i] + alpha * (b[i] - c[i]) }
}

/// Parameters of the task-vector family (task arithmetic, TIES, DARE), per non-base model.
public struct TaskVectorOptions: Sendable {
    public var weights: [Float]
    public var densities: [Float]          // 1 = keep everything
    public var sparsify: Sparsify
    public var consensus: Bool             // TIES sign election
    public var normalize: Bool
    public var lambda: Float
    public var rescale: DARERescale
    public var seed: UInt64                // DARE's mask stream for this tensor

    public enum Sparsify: Sendable { case none, magnitude, random }

    public init(weights: [Float], densities: [Float], sparsify: Sparsify, consensus: Bool, normalize: Bool,
                lambda: Float = 1, rescale: DARERescale = .density, seed: UInt64 = 0) {
        self.weights = weights
        self.densities = densities
        self.sparsify = sparsify
        self.consensus = consensus
        self.normalize = normalize
        self.lambda = lambda
        self.rescale = rescale
        self.seed = seed
    }
}

/// Task arithmetic (Ilharco et al. 2023), TIES (Yadav et al. 2023) and DARE (Yu et al. 2023):
///   d_i = x_i - base;  d_i = sparsify(d_i, density_i)  (TIES: keep the top-k |d|; DARE: Bernoulli keep + rescale)
///   d_i *= w_i
///   TIES sign election: s = sign(sum_i d_i) (>= 0 counts as +); keep only entries with sign(d_i) == s
///   mixed = sum_i d_i [kept];  normalize: / sum_i w_i [kept] (1 where nothing is kept)
///   out = base + lambda * mixed
public func mergeTaskVectors(base: UnsafeBufferPointer<Float>, models: [UnsafeBufferPointer<Float>],
                             options: TaskVectorOptions, into out: UnsafeMutableBufferPointer<Float>) {
    let n = out.count
    var deltas = models.map { m in (0..<n).map { m[$0] - base[$0] } }
    for k in deltas.indices {
        switch options.sparsify {
        case .none: break
        case .magnitude: keepLargestMagnitudes(&deltas[k], density: options.densities[k])
        case .random:
            var rng = SplitMix64(seed: options.seed &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15)
            dropAndRescale(&deltas[k], density: options.densities[k], rescale: options.rescale, rng: &rng)
        }
        let w = options.weights[k]
        for i in 0..<n { deltas[k][i] *= w }
    }
    let deltaViews = deltas
    parallelChunks(n) { range in
      for i in range {
        var sum: Float = 0
        for d in deltaViews { sum += d[i] }
        let majority: Float = sum >= 0 ? 1 : -1
        var mixed: Float = 0, divisor: Float = 0
        for (k, d) in deltas.enumerated() {
            let sign: Float = d[i] > 0 ? 1 : (d[i] < 0 ? -1 : 0)
            if !options.consensus || sign == majority {
                mixed += d[i]
                divisor += options.weights[k]
            }
        }
        if options.normalize {
            if options.consensus {
                if divisor == 0 { divisor = 1 }
            } else if abs(divisor) < 1e-8 {
                divisor = 1
            }
            mixed /= divisor
        }
        out[i] = base[i] + options.lambda * mixed
      }
    }
}

/// Runs `body` over slices of 0..<count on the Kernels worker threads (serially for small counts).
func parallelChunks(_ count: Int, _ body: (Range<Int>) -> Void) {
    let workers = count >= 1 << 16 ? max(kernelThreadCount, 1) : 1
    let step = (count + workers - 1) / max(workers, 1)
    if workers == 1 { body(0..<count); return }
    parallelFor(workers) { w in
        let start = w * step
        if start < count { body(start..<min(start + step, count)) }
    }
}

/// mergekit's `magnitude`: keep the max(1, floor(density * n)) entries of largest |x|, zero the rest.
func keepLargestMagnitudes(_ x: inout [Float], density: Float) {
    if density >= 1 { return }
    if density <= 0 || x.isEmpty {
        for i in x.indices { x[i] = 0 }
        return
    }
    let k = max(1, Int(density * Float(x.count)))
    // The k-th largest magnitude, then keep entries above it and as many equal to it as fit, in index order.
    var magnitudes = x.map(abs)
    let threshold = nthLargest(&magnitudes, k)
    var keepEqual = k - x.reduce(0) { $0 + (abs($1) > threshold ? 1 : 0) }
    for i in x.indices {
        let m = abs(x[i])
        if m > threshold { continue }
        if m == threshold && keepEqual > 0 {
            keepEqual -= 1
            continue
        }
        x[i] = 0
    }
}

/// The k-th largest value (1-based) by quickselect; reorders `values`.
func nthLargest(_ values: inout [Float], _ k: Int) -> Float {
    var lo = 0, hi = values.count - 1
    let target = k - 1
    var state: UInt64 = 0x2545_F491_4F6C_DD1D
    while lo < hi {
        state = state &* 6_364_136_223_846_793_005 &+ 1
        let pivot = values[lo + Int(state >> 33) % (hi - lo + 1)]
        var i = lo, j = hi
        while i <= j {
            while values[i] > pivot { i += 1 }
            while values[j] < pivot { j -= 1 }
            if i <= j {
                values.swapAt(i, j)
                i += 1
                j -= 1
            }
        }
        if target <= j { hi = j } else if target >= i { lo = i } else { return values[target] }
    }
    return values[target]
}

/// DARE: keep each entry with probability `density` (a seeded Bernoulli draw), then rescale.
func dropAndRescale(_ x: inout [Float], density: Float, rescale: DARERescale, rng: inout SplitMix64) {
    if density >= 1 { return }
    let before = x.reduce(Float(0)) { $0 + abs($1) }
    for i in x.indices where rng.nextUniform() >= Double(density) { x[i] = 0 }
    switch rescale {
    case .none: break
    case .density:
        if density > 0 { for i in x.indices { x[i] /= density } }
    case .l1:
        let after = x.reduce(Float(0)) { $0 + abs($1) }
        if before >= 1e-7 && after >= 1e-7 { for i in x.indices { x[i] *= before / after } }
    }
}

/// SLERP as mergekit: for each row (leading axis) of a and b, the angle between the normalised rows;
/// rows closer than `dotThreshold` to parallel (or antiparallel) are interpolated linearly.
///   out = sin((1 - t) theta) / sin(theta) a + sin(t theta) / sin(theta) b,  theta = acos(a.b / |a||b|)
public func mergeSlerp(a: UnsafeBufferPointer<Float>, b: UnsafeBufferPointer<Float>, t: Float, rows: Int,
                       dotThreshold: Double = 0.9995, into out: UnsafeMutableBufferPointer<Float>) {
    let rows = max(rows, 1), width = out.count / rows
    let eps = 1e-8
    for r in 0..<rows {
        let start = r * width
        var na = 0.0, nb = 0.0
        for i in start..<(start + width) {
            na += Double(a[i]) * Double(a[i])
            nb += Double(b[i]) * Double(b[i])
        }
        na = na.squareRoot()
        nb = nb.squareRoot()
        if na <= eps { na = 1 }
        if nb <= eps { nb = 1 }
        var dot = 0.0
        for i in start..<(start + width) { dot += (Double(a[i]) / na) * (Double(b[i]) / nb) }
        dot = min(max(dot, -1), 1)
        var ca = 1 - Double(t), cb = Double(t)
        if abs(dot) <= dotThreshold {
            let theta = acos(dot), s = sin(theta)
            ca = sin((1 - Double(t)) * theta) / s
            cb = sin(Double(t) * theta) / s
        }
        for i in start..<(start + width) { out[i] = Float(ca * Double(a[i]) + cb * Double(b[i])) }
    }
}

/// A small seedable generator (splitmix64) for DARE's masks: the same seed, tensor and model always
/// drop the same entries.
public struct SplitMix64 {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func nextUniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
