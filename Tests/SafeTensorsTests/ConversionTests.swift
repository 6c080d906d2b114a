// Conversion tests: f16 decoding exhaustively and f16 encoding on 17M float32 bit patterns against
// Swift's Float16 (IEEE, exact), and Float32 ->
// f16 / bf16 rounding against torch's bit patterns (exact, tolerance 0), plus integers.

import Foundation
import XCTest
@testable import SafeTensors

final class ConversionTests: XCTestCase {
    func testFloat16DecodeAllBitPatterns() {
        for bits in 0...UInt16.max {
            let want = Float(Float16(bitPattern: bits))
            let got = float16BitsToFloat(bits)
            if want.isNaN {
                XCTAssertTrue(got.isNaN, "\(bits)")
            } else if got.bitPattern != want.bitPattern {
                XCTFail("f16 \(bits): \(got) != \(want)")
                return
            }
        }
    }

    func testFloat16EncodeMatchesIEEEOnManyBitPatterns() {
        // Every 251st float32 bit pattern (17M values) plus the exact ties in [1, 2).
        var mismatches = 0
        for bits in stride(from: UInt32(0), through: UInt32.max - 250, by: 251) {
            let x = Float(bitPattern: bits)
            let got = floatToFloat16Bits(x)
            if x.isNaN {
                if !Float16(bitPattern: got).isNaN || got & 0x8000 != UInt16(bits >> 16) & 0x8000 { mismatches += 1 }
            } else if got != Float16(x).bitPattern {
                mismatches += 1
            }
        }
        for k in 0..<1024 {
            // Exact ties: 1 + (k + 0.5) * 2^-10 (a half's spacing in [1, 2) is 2^-10 = 1 << 13 float ulps).
            let x = Float(bitPattern: (127 << 23) | UInt32(k) << 13 | 1 << 12)
            if floatToFloat16Bits(x) != Float16(x).bitPattern { mismatches += 1 }
            if floatToFloat16Bits(-x) != Float16(-x).bitPattern { mismatches += 1 }
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testRoundingMatchesTorch() throws {
        let data = try loadJSON(safeTensorsFixtures.appendingPathComponent("rounding.json")) as! [String: [Int]]
        let xs = data["f32_bits"]!.map { Float(bitPattern: UInt32($0)) }
        var f16 = [UInt8](repeating: 0, count: xs.count * 2)
        var bf16 = [UInt8](repeating: 0, count: xs.count * 2)
        try xs.withUnsafeBufferPointer { src in
            try f16.withUnsafeMutableBytes { try convertFromFloat32(src, to: .F16, into: $0) }
            try bf16.withUnsafeMutableBytes { try convertFromFloat32(src, to: .BF16, into: $0) }
        }
        for i in xs.indices {
            let h = UInt16(f16[2 * i]) | UInt16(f16[2 * i + 1]) << 8
            let b = UInt16(bf16[2 * i]) | UInt16(bf16[2 * i + 1]) << 8
            XCTAssertEqual(Int(h), data["f16_bits"]![i], "f16 of \(xs[i])")
            XCTAssertEqual(Int(b), data["bf16_bits"]![i], "bf16 of \(xs[i])")
        }
        XCTAssertEqual(floatToBFloat16Bits(.nan), 0x7FC0)
    }

    func testRoundTripThroughEveryWritableDType() throws {
        let xs: [Float] = [0, 1, -2, 3.5, -7.25, 100, 0.5]
        for dtype in SafeTensorsDType.allCases where dtype != .F8_E4M3 && dtype != .F8_E5M2 {
            var raw = [UInt8](repeating: 0, count: xs.count * dtype.byteSize)
            try xs.withUnsafeBufferPointer { src in try raw.withUnsafeMutableBytes { try convertFromFloat32(src, to: dtype, into: $0) } }
            var back = [Float](repeating: .nan, count: xs.count)
            try raw.withUnsafeBytes { r in try back.withUnsafeMutableBufferPointer { try convertToFloat32(r, dtype: dtype, into: $0) } }
            let want: [Float]
            switch dtype {
            case .F64, .F32, .F16, .BF16: want = xs
            case .BOOL: want = xs.map { $0 != 0 ? 1 : 0 }
            case .U8, .U16, .U32, .U64: want = xs.map { max(0, $0.rounded(.towardZero)) }
            default: want = xs.map { $0.rounded(.towardZero) }
            }
            XCTAssertEqual(back, want, dtype.rawValue)
        }
    }

    func testLargeBufferParallelConversionAndUnalignedSource() throws {
        // 300k elements spans several parallel chunks; offset 1 makes every load unaligned.
        let n = 300_000
        var raw = [UInt8](repeating: 0, count: 2 * n + 1)
        for i in 0..<n {
            let h = Float16(Float(i % 2048) - 1024).bitPattern
            raw[1 + 2 * i] = UInt8(h & 0xFF)
            raw[2 + 2 * i] = UInt8(h >> 8)
        }
        var out = [Float](repeating: 0, count: n)
        try raw.withUnsafeBytes { r in
            try out.withUnsafeMutableBufferPointer { try convertToFloat32(UnsafeRawBufferPointer(rebasing: r[1...]), dtype: .F16, into: $0) }
        }
        for i in stride(from: 0, to: n, by: 997) { XCTAssertEqual(out[i], Float(i % 2048) - 1024) }
        XCTAssertEqual(out[n - 1], Float((n - 1) % 2048) - 1024)
    }

    func testSizeMismatchAndReadOnlyDTypes() {
        var out = [Float](repeating: 0, count: 3)
        let raw = [UInt8](repeating: 0, count: 5)
        XCTAssertThrowsError(try raw.withUnsafeBytes { r in try out.withUnsafeMutableBufferPointer { try convertToFloat32(r, dtype: .F16, into: $0) } }) {
            XCTAssertEqual(caseName($0), "bufferSizeMismatch")
        }
        var dst = [UInt8](repeating: 0, count: 3)
        XCTAssertThrowsError(try out.withUnsafeBufferPointer { s in try dst.withUnsafeMutableBytes { try convertFromFloat32(s, to: .F8_E4M3, into: $0) } }) {
            XCTAssertEqual(caseName($0), "unsupportedConversion")
        }
    }
}
