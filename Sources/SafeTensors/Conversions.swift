// Conversions between the stored dtypes and Float32.
//
// f16 <-> f32 use Fabian Giesen's exponent-rebias bit tricks (IEEE round-to-nearest-even, checked
// against Swift's Float16 in the tests); f32 -> bf16 rounds to nearest even
// as torch's `round_to_nearest_even` in c10/util/BFloat16.h (NaN -> 0x7FC0). Integers convert
// exactly up to 2^24 and round to nearest beyond, as `tensor.float()` does. float -> integer
// truncates toward zero (torch's `.to(int)`), clamped to the integer's range, NaN -> 0.
// Source bytes may be unaligned (the data section starts wherever the header ends), so loads
// are `loadUnaligned`. Host byte order is assumed little-endian, as in the file.

import Kernels

/// Converts `src` (elements of `dtype`, little-endian) to Float32 in `into`.
public func convertToFloat32(
    _ src: UnsafeRawBufferPointer, dtype: SafeTensorsDType, into dst: UnsafeMutableBufferPointer<Float>
) throws {
    let n = dst.count
    guard src.count == n * dtype.byteSize else {
        throw SafeTensorsError.bufferSizeMismatch(expectedBytes: n * dtype.byteSize, actualBytes: src.count)
    }
    guard n > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
    // Large tensors: split into chunks over the cores (memory-bound loops).
    parallelRanges(n, grain: 1 << 16) { range in
        convertChunkToFloat32(s, dtype: dtype, d, range)
    }
}

@inline(__always)
func convertChunkToFloat32(_ s: UnsafeRawPointer, dtype: SafeTensorsDType, _ d: UnsafeMutablePointer<Float>, _ r: Range<Int>) {
    switch dtype {
    case .F32:
        (d + r.lowerBound).withMemoryRebound(to: UInt8.self, capacity: r.count * 4) {
            $0.update(from: (s + r.lowerBound * 4).assumingMemoryBound(to: UInt8.self), count: r.count * 4)
        }
    case .F16:
        for i in r { d[i] = float16BitsToFloat(s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    case .BF16:
        for i in r { d[i] = Float(bitPattern: UInt32(s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
    case .F64:
        for i in r { d[i] = Float(s.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
    case .I64:
        for i in r { d[i] = Float(s.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
    case .U64:
        for i in r { d[i] = Float(s.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
    case .I32:
        for i in r { d[i] = Float(s.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
    case .U32:
        for i in r { d[i] = Float(s.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
    case .I16:
        for i in r { d[i] = Float(s.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
    case .U16:
        for i in r { d[i] = Float(s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    case .I8:
        for i in r { d[i] = Float(s.load(fromByteOffset: i, as: Int8.self)) }
    case .U8:
        for i in r { d[i] = Float(s.load(fromByteOffset: i, as: UInt8.self)) }
    case .BOOL:
        for i in r { d[i] = s.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
    case .F8_E4M3:
        let table = float8E4M3Table
        for i in r { d[i] = table[Int(s.load(fromByteOffset: i, as: UInt8.self))] }
    case .F8_E5M2:
        // E5M2 is the top byte of an IEEE half.
        for i in r { d[i] = float16BitsToFloat(UInt16(s.load(fromByteOffset: i, as: UInt8.self)) << 8) }
    }
}

/// Converts Float32 values to `dtype` (little-endian) in `into`. F8 types are read-only.
public func convertFromFloat32(
    _ src: UnsafeBufferPointer<Float>, to dtype: SafeTensorsDType, into dst: UnsafeMutableRawBufferPointer
) throws {
    let n = src.count
    guard dst.count == n * dtype.byteSize else {
        throw SafeTensorsError.bufferSizeMismatch(expectedBytes: n * dtype.byteSize, actualBytes: dst.count)
    }
    if dtype == .F8_E4M3 || dtype == .F8_E5M2 {
        throw SafeTensorsError.unsupportedConversion(from: "F32", to: dtype.rawValue)
    }
    guard n > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
    parallelRanges(n, grain: 1 << 16) { range in
        convertChunkFromFloat32(s, d, dtype: dtype, range)
    }
}

@inline(__always)
func convertChunkFromFloat32(_ s: UnsafePointer<Float>, _ d: UnsafeMutableRawPointer, dtype: SafeTensorsDType, _ r: Range<Int>) {
    switch dtype {
    case .F32:
        (d + 4 * r.lowerBound).copyMemory(from: s + r.lowerBound, byteCount: 4 * r.count)
    case .F16:
        for i in r { d.storeBytes(of: floatToFloat16Bits(s[i]), toByteOffset: 2 * i, as: UInt16.self) }
    case .BF16:
        for i in r { d.storeBytes(of: floatToBFloat16Bits(s[i]), toByteOffset: 2 * i, as: UInt16.self) }
    case .F64:
        for i in r { d.storeBytes(of: Double(s[i]), toByteOffset: 8 * i, as: Double.self) }
    case .I64:
        for i in r { d.storeBytes(of: truncatingClamped(s[i], Int64.self), toByteOffset: 8 * i, as: Int64.self) }
    case .U64:
        for i in r { d.storeBytes(of: truncatingClamped(s[i], UInt64.self), toByteOffset: 8 * i, as: UInt64.self) }
    case .I32:
        for i in r { d.storeBytes(of: truncatingClamped(s[i], Int32.self), toByteOffset: 4 * i, as: Int32.self) }
    case .U32:
        for i in r { d.storeBytes(of: truncatingClamped(s[i], UInt32.self), toByteOffset: 4 * i, as: UInt32.self) }
    case .I16:
        for i in r { d.storeBytes(of: truncatingClamped(s[i], Int16.self), toByteOffset: 2 * i, as: Int16.self) }
    case .U16:
        for i in r { d.storeBytes(of: truncatingClamped(s[i], UInt16.self), toByteOffset: 2 * i, as: UInt16.self) }
    case .I8:
        for i in r { d.storeBytes(of: truncatingClamped(s[i], Int8.self), toByteOffset: i, as: Int8.self) }
    case .U8:
        for i in r { d.storeBytes(of: truncatingClamped(s[i], UInt8.self), toByteOffset: i, as: UInt8.self) }
    case .BOOL:
        for i in r { d.storeBytes(of: s[i] != 0 ? 1 : 0, toByteOffset: i, as: UInt8.self) }
    case .F8_E4M3, .F8_E5M2:
        break  // refused above
    }
}

/// IEEE half bits -> Float: rebias the exponent; subnormals through one float subtraction.
@inline(__always)
public func float16BitsToFloat(_ h: UInt16) -> Float {
    let shiftedExponent: UInt32 = 0x7C00 << 13
    var o = UInt32(h & 0x7FFF) << 13
    let exponent = o & shiftedExponent
    o &+= (127 - 15) << 23
    if exponent == shiftedExponent {
        o &+= (128 - 16) << 23  // Inf / NaN
    } else if exponent == 0 {
        o &+= 1 << 23  // zero / subnormal: renormalise
        o = (Float(bitPattern: o) - Float(bitPattern: 113 << 23)).bitPattern
    }
    return Float(bitPattern: o | UInt32(h & 0x8000) << 16)
}

/// Float -> IEEE half bits, round to nearest even; overflow -> Inf, NaN -> 0x7E00 with its sign
/// (as c10's fp16_ieee_from_fp32_value). Bit arithmetic after Fabian Giesen's
/// "float_to_half_fast3_rtne", so the loop vectorises (Swift's Float16(x) is a library call here).
@inline(__always)
public func floatToFloat16Bits(_ x: Float) -> UInt16 {
    let f32Infinity: UInt32 = 255 << 23
    let f16Overflow: UInt32 = (127 + 16) << 23  // smallest float that rounds to half Inf
    let denormMagic: UInt32 = ((127 - 15) + (23 - 10) + 1) << 23
    var f = x.bitPattern
    let sign = f & 0x8000_0000
    f ^= sign
    var o: UInt32
    if f >= f16Overflow {
        o = f > f32Infinity ? 0x7E00 : 0x7C00
    } else if f < (113 << 23) {
        // Subnormal half or zero: let the FPU round by adding a magic number.
        o = (Float(bitPattern: f) + Float(bitPattern: denormMagic)).bitPattern &- denormMagic
    } else {
        let mantissaOdd = (f >> 13) & 1
        f = f &+ (UInt32(bitPattern: Int32(15 - 127)) << 23) &+ 0xFFF  // rebias, add rounding bias
        f = f &+ mantissaOdd  // ties to even
        o = f >> 13
    }
    return UInt16(truncatingIfNeeded: o | (sign >> 16))
}

/// Float -> bfloat16 bits, round to nearest even; NaN -> 0x7FC0 (c10::detail::round_to_nearest_even).
@inline(__always)
public func floatToBFloat16Bits(_ x: Float) -> UInt16 {
    if x.isNaN { return 0x7FC0 }
    let bits = x.bitPattern
    let roundingBias: UInt32 = 0x7FFF &+ ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
}

@inline(__always)
func truncatingClamped<I: FixedWidthInteger>(_ x: Float, _: I.Type) -> I {
    if x.isNaN { return 0 }
    if x <= Float(I.min) { return I.min }
    if x >= Float(I.max) { return I.max }
    return I(x.rounded(.towardZero))
}

/// F8_E4M3 (the "fn" variant: bias 7, no infinities, S.1111.111 is NaN) for all 256 bytes.
let float8E4M3Table: [Float] = (0..<256).map { (b: Int) -> Float in
    let sign: Float = b & 0x80 != 0 ? -1 : 1
    let e = (b >> 3) & 0xF, m = b & 0x7
    if e == 0xF && m == 0x7 { return .nan }
    if e == 0 { return sign * Float(m) * 0x1p-9 }
    return sign * (1 + Float(m) / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
}
