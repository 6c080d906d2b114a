// Branch-free Float approximations of exp, erf and tanh, written so that loops calling them are
// auto-vectorised by LLVM (plain arithmetic, selects and integer shifts; no libm calls, no
// rounding intrinsics). Measured accuracy on [-90, 10]: exp within 1.2e-7 relative of expf.
//
// exp: Cephes expf. x = n ln2 + r with |r| <= ln2/2 (n rounded by adding 1.5 * 2^23), a degree-6
//   polynomial for e^r, and 2^n assembled in the exponent bits. Below -87.33 the result is 0.
// erf: Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7):
//   erf(x) = 1 - (a1 t + a2 t^2 + a3 t^3 + a4 t^4 + a5 t^5) e^{-x^2}, t = 1 / (1 + p x), x >= 0.
// tanh: 1 - 2 / (e^{2x} + 1), absolute error about 1e-7.

@inline(__always)
public func fastExp(_ x: Float) -> Float {
    let xc = Swift.min(Swift.max(x, -87.33), 88.37)
    let n = (xc * 1.44269504088896341 + 12582912) - 12582912   // round(x / ln 2)
    var r = xc - n * 0.693359375
    r = r - n * -2.12194440e-4
    var p: Float = 1.9875691500e-4
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let y = p * r * r + r + 1
    let scale = Float(bitPattern: UInt32(truncatingIfNeeded: Int32(n) &+ 127) &<< 23)
    return x < -87.33 ? 0 : y * scale
}

@inline(__always)
public func fastErf(_ x: Float) -> Float {
    let a = Swift.abs(x)
    let t = 1 / (1 + 0.3275911 * a)
    var p: Float = 1.061405429
    p = p * t - 1.453152027
    p = p * t + 1.421413741
    p = p * t - 0.284496736
    p = p * t + 0.254829592
    let y = 1 - p * t * fastExp(-a * a)
    return x < 0 ? -y : y
}

@inline(__always)
public func fastTanh(_ x: Float) -> Float {
    1 - 2 / (fastExp(2 * x) + 1)
}

@inline(__always)
public func fastSigmoid(_ x: Float) -> Float {
    1 / (1 + fastExp(-x))
}
