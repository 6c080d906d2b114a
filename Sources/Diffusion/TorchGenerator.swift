// TorchGenerator: the numbers of `torch.Generator("cpu").manual_seed(seed)` and
// `torch.randn(shape, generator=g)` (float32), value for value, so a seed gives the image a diffusers
// user gets (PyTorch: aten/src/ATen/core/MT19937RNGEngine.h, CPUGeneratorImpl.cpp,
// native/cpu/DistributionTemplates.h, avx_mathfun.h).
//
// 1. Engine: mt19937 seeded with the low 32 bits of the seed; random() is one 32-bit draw,
//    random64() is two draws, the first the high half.
// 2. Uniform float in [0, 1): (random() & (2^24 - 1)) * 2^-24.  Uniform double: random64()'s low 53 bits * 2^-53.
// 3. randn of n >= 16 float32 values: n uniform floats, then each block of 16 turned into normals by
//    Box-Muller (u1 = 1 - d[j], u2 = d[j + 8], j < 8): d[j] = r cos(t), d[j + 8] = r sin(t) with
//    r = sqrt(-2 log u1), t = 2 pi u2. If n is not a multiple of 16, 16 more uniforms are drawn and
//    the last 16 values recomputed from them. On x86-64 PyTorch computes the block with AVX2 and the
//    Cephes-style log/sincos of avx_mathfun.h (with the FMA contractions GCC applies); we evaluate the
//    same polynomials in the same order.
// 4. randn of n < 16: one double normal per value (Box-Muller on two uniform doubles, the sine half
//    cached in the generator for the next draw), rounded to float32.

import Foundation
import Kernels

public struct TorchGenerator {
    var state = [UInt32](repeating: 0, count: 624)
    var index = 624
    var cachedDoubleNormal: Double?

    /// `torch.Generator("cpu").manual_seed(seed)`.
    public init(seed: UInt64) {
        state[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<624 {
            state[j] = 1_812_433_253 &* (state[j - 1] ^ (state[j - 1] >> 30)) &+ UInt32(j)
        }
    }

    /// One 32-bit draw of mt19937.
    public mutating func random() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    public mutating func random64() -> UInt64 {
        let high = UInt64(random()), low = UInt64(random())
        return (high << 32) | low
    }

    mutating func twist() {
        for k in 0..<624 {
            let y = (state[k] & 0x8000_0000) | (state[(k + 1) % 624] & 0x7FFF_FFFF)
            state[k] = state[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
        }
        index = 0
    }

    mutating func uniformFloat() -> Float {
        Float(Double(random() & 0xFF_FFFF) * 0x1.0p-24)
    }

    mutating func uniformDouble() -> Double {
        Double(random64() & ((1 << 53) - 1)) * 0x1.0p-53
    }

    /// at::normal_distribution<double>: Box-Muller, the sine half kept for the next call.
    mutating func normalDouble() -> Double {
        if let cached = cachedDoubleNormal {
            cachedDoubleNormal = nil
            return cached
        }
        let u1 = uniformDouble(), u2 = uniformDouble()
        let r = (-2 * Foundation.log1p(-u2)).squareRoot()
        let theta = 2 * Double.pi * u1
        cachedDoubleNormal = r * Foundation.sin(theta)
        return r * Foundation.cos(theta)
    }

    /// `torch.randn(count, generator=g)` as float32 values.
    public mutating func normals(count n: Int) -> [Float] {
        guard n >= 16 else { return (0..<n).map { _ in Float(normalDouble()) } }
        var data = (0..<n).map { _ in uniformFloat() }
        data.withUnsafeMutableBufferPointer { d in
            var i = 0
            while i + 16 <= n {
                boxMuller16(d.baseAddress! + i)
                i += 16
            }
        }
        if n % 16 != 0 {
            for k in 0..<16 { data[n - 16 + k] = uniformFloat() }
            data.withUnsafeMutableBufferPointer { d in boxMuller16(d.baseAddress! + n - 16) }
        }
        return data
    }

    /// `torch.randn(shape, generator=g)`.
    public mutating func randn(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, data: normals(count: shape.reduce(1, *)))
    }
}

// MARK: the AVX2 block of PyTorch's normal_fill, lane by lane

@inline(__always)
private func boxMuller16(_ d: UnsafeMutablePointer<Float>) {
    let twoPi = Float(2 * Double.pi)
    for j in 0..<8 {
        let u1 = 1 - d[j], u2 = d[j + 8]
        let radius = (-2 * cephesLog(u1)).squareRoot()
        let (s, c) = cephesSinCos(twoPi * u2)
        d[j] = radius * c
        d[j + 8] = radius * s
    }
}

/// log(x) for x > 0 as avx_mathfun's log256_ps (Cephes logf), FMA where GCC contracts.
@inline(__always)
func cephesLog(_ input: Float) -> Float {
    guard input > 0 else { return input == 0 ? -.infinity : .nan }
    var x = max(input, Float.leastNormalMagnitude)
    let bits = x.bitPattern
    let exponent = Int32(bitPattern: bits >> 23) - 0x7F
    x = Float(bitPattern: (bits & ~0x7F80_0000) | Float(0.5).bitPattern)   // mantissa in [0.5, 1)
    var e = Float(exponent) + 1
    let below = x < 0.707106781186547524
    let tmp: Float = below ? x : 0
    x = x - 1
    e = e - (below ? 1 : 0)
    x = x + tmp
    let z = x * x
    var y: Float = 7.0376836292e-2
    y = (-1.1514610310e-1 as Float).addingProduct(y, x)
    y = (1.1676998740e-1 as Float).addingProduct(y, x)
    y = (-1.2420140846e-1 as Float).addingProduct(y, x)
    y = (1.4249322787e-1 as Float).addingProduct(y, x)
    y = (-1.6668057665e-1 as Float).addingProduct(y, x)
    y = (2.0000714765e-1 as Float).addingProduct(y, x)
    y = (-2.4999993993e-1 as Float).addingProduct(y, x)
    y = (3.3333331174e-1 as Float).addingProduct(y, x)
    y = y * x
    y = (e * -2.12194440e-4).addingProduct(y, z)      // y * z + e * q1
    y = y.addingProduct(z, -0.5)                       // y - z * 0.5
    x = x + y
    return x.addingProduct(e, 0.693359375)             // x + e * q2
}

/// (sin x, cos x) as avx_mathfun's sincos256_ps (Cephes sinf/cosf with 3-part pi/4 reduction).
@inline(__always)
func cephesSinCos(_ input: Float) -> (Float, Float) {
    var signSin = input.bitPattern & 0x8000_0000
    var x = abs(input)
    var j = Int32(x * 1.27323954473516)       // 4 / pi, truncated
    j = (j + 1) & ~1
    let y = Float(j)
    let swapSin = UInt32(bitPattern: (j & 4) << 29)
    let polynomialIsSine = (j & 2) == 0
    x = x.addingProduct(y, -0.78515625)
    x = x.addingProduct(y, -2.4187564849853515625e-4)
    x = x.addingProduct(y, -3.77489497744594108e-8)
    let signCos = UInt32(bitPattern: (~(j - 2) & 4) << 29)
    signSin ^= swapSin
    let z = x * x
    var cosine: Float = 2.443315711809948e-5
    cosine = (-1.388731625493765e-3 as Float).addingProduct(cosine, z)
    cosine = (4.166664568298827e-2 as Float).addingProduct(cosine, z)
    cosine = cosine * z
    cosine = (z * -0.5).addingProduct(cosine, z)       // cosine * z - z * 0.5
    cosine = cosine + 1
    var sine: Float = -1.9515295891e-4
    sine = (8.3321608736e-3 as Float).addingProduct(sine, z)
    sine = (-1.6666654611e-1 as Float).addingProduct(sine, z)
    sine = sine * z
    sine = x.addingProduct(sine, x)                    // sine * x + x
    let s = polynomialIsSine ? sine : cosine
    let c = polynomialIsSine ? cosine : sine
    return (Float(bitPattern: s.bitPattern ^ signSin), Float(bitPattern: c.bitPattern ^ signCos))
}
