// Image resampling that equals Pillow's `Image.resize` value for value on 8-bit RGB images, so that
// CLIP preprocessing sees the pixels the reference sees (Pillow, src/libImaging/Resample.c):
// separable convolution, horizontal pass first, each output pixel a weighted sum of the source pixels
// within `support * max(scale, 1)` of its centre, the weights normalised and converted to 22-bit
// fixed point, each pass rounded and clamped to 8 bits.

import Foundation

/// Pillow's resampling filters (the numbers are PIL's `Image.Resampling` values).
public enum ResampleFilter: Int, Codable, Sendable {
    case nearest = 0, lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5

    var support: Double {
        switch self {
        case .nearest, .box: return 0.5
        case .bilinear, .hamming: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    func weight(_ t: Double) -> Double {
        let x = abs(t)
        switch self {
        case .nearest, .box:
            return t > -0.5 && t <= 0.5 ? 1 : 0
        case .bilinear:
            return x < 1 ? 1 - x : 0
        case .hamming:
            if x == 0 { return 1 }
            if x >= 1 { return 0 }
            let px = Double.pi * x
            return sin(px) / px * (0.54 + 0.46 * cos(px))
        case .bicubic:
            // Keys' cubic convolution with a = -0.5.
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .lanczos:
            func sinc(_ v: Double) -> Double { v == 0 ? 1 : sin(Double.pi * v) / (Double.pi * v) }
            return x < 3 ? sinc(x) * sinc(x / 3) : 0
        }
    }
}

private let precisionBits = 32 - 8 - 2

/// For each output index: the first source index and the fixed-point weights of the taps from there.
struct ResampleTaps {
    var first: [Int]
    var count: [Int]
    var weights: [Int32]   // outSize x maxTaps
    var maxTaps: Int

    init(inSize: Int, outSize: Int, filter: ResampleFilter) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        maxTaps = Int(support.rounded(.up)) * 2 + 1
        first = []
        count = []
        weights = Array(repeating: 0, count: outSize * maxTaps)
        var taps = [Double](repeating: 0, count: maxTaps)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let inverse = 1 / filterScale
            let xmin = max(Int(center - support + 0.5), 0)   // C truncation: both operands are >= -0.5 here
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var total = 0.0
            for x in 0..<max(xmax, 0) {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * inverse)
                taps[x] = w
                total += w
            }
            for x in 0..<max(xmax, 0) {
                let w = total != 0 ? taps[x] / total : taps[x]
                let fixed = w < 0 ? Int32(-0.5 + w * Double(1 << precisionBits))
                                  : Int32(0.5 + w * Double(1 << precisionBits))
                weights[xx * maxTaps + x] = fixed
            }
            first.append(xmin)
            count.append(max(xmax, 0))
        }
    }
}

@inline(__always)
private func clip8(_ value: Int32) -> UInt8 {
    if value >= (Int32(1) << precisionBits) << 8 { return 255 }
    if value <= 0 { return 0 }
    return UInt8(value >> precisionBits)
}

extension RGB8Image {
    /// This image resized to `width` x `height` exactly as Pillow's `resize((width, height), filter)`.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResampleFilter = .bicubic) throws -> RGB8Image {
        guard newWidth > 0, newHeight > 0 else {
            throw ImagingError.invalidPixelBuffer(width: newWidth, height: newHeight, bytes: 0)
        }
        if newWidth == width && newHeight == height { return self }
        if filter == .nearest { return nearest(width: newWidth, height: newHeight) }
        var image = self
        if newWidth != width { image = try image.horizontalPass(newWidth, ResampleTaps(inSize: width, outSize: newWidth, filter: filter)) }
        if newHeight != height { image = try image.verticalPass(newHeight, ResampleTaps(inSize: height, outSize: newHeight, filter: filter)) }
        return image
    }

    private func horizontalPass(_ newWidth: Int, _ taps: ResampleTaps) throws -> RGB8Image {
        var out = [UInt8](repeating: 0, count: newWidth * height * 3)
        pixels.withUnsafeBufferPointer { src in
            for y in 0..<height {
                let row = y * width * 3
                for xx in 0..<newWidth {
                    var s0 = Int32(1) << (precisionBits - 1), s1 = s0, s2 = s0
                    let base = xx * taps.maxTaps, x0 = taps.first[xx]
                    for k in 0..<taps.count[xx] {
                        let w = taps.weights[base + k], i = row + (x0 + k) * 3
                        s0 &+= Int32(src[i]) &* w
                        s1 &+= Int32(src[i + 1]) &* w
                        s2 &+= Int32(src[i + 2]) &* w
                    }
                    let o = (y * newWidth + xx) * 3
                    out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
                }
            }
        }
        return try RGB8Image(width: newWidth, height: height, pixels: out)
    }

    private func verticalPass(_ newHeight: Int, _ taps: ResampleTaps) throws -> RGB8Image {
        var out = [UInt8](repeating: 0, count: width * newHeight * 3)
        pixels.withUnsafeBufferPointer { src in
            for yy in 0..<newHeight {
                let base = yy * taps.maxTaps, y0 = taps.first[yy]
                for x in 0..<width {
                    var s0 = Int32(1) << (precisionBits - 1), s1 = s0, s2 = s0
                    for k in 0..<taps.count[yy] {
                        let w = taps.weights[base + k], i = ((y0 + k) * width + x) * 3
                        s0 &+= Int32(src[i]) &* w
                        s1 &+= Int32(src[i + 1]) &* w
                        s2 &+= Int32(src[i + 2]) &* w
                    }
                    let o = (yy * width + x) * 3
                    out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
                }
            }
        }
        return try RGB8Image(width: width, height: newHeight, pixels: out)
    }

    /// Pillow's nearest neighbour: source index floor((i + 0.5) * scale).
    private func nearest(width newWidth: Int, height newHeight: Int) -> RGB8Image {
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
        let sx = Double(width) / Double(newWidth), sy = Double(height) / Double(newHeight)
        for y in 0..<newHeight {
            let srcY = min(Int((Double(y) + 0.5) * sy), height - 1)
            for x in 0..<newWidth {
                let srcX = min(Int((Double(x) + 0.5) * sx), width - 1)
                for c in 0..<3 { out[(y * newWidth + x) * 3 + c] = pixels[(srcY * width + srcX) * 3 + c] }
            }
        }
        return try! RGB8Image(width: newWidth, height: newHeight, pixels: out)
    }

    /// The `cropWidth` x `cropHeight` window whose top-left corner is ((W - w) / 2, (H - h) / 2),
    /// rounded down, as transformers' `center_crop`; an image smaller than the window is padded with 0.
    public func centerCropped(width cropWidth: Int, height cropHeight: Int) throws -> RGB8Image {
        let top = (height - cropHeight) / 2, left = (width - cropWidth) / 2
        var out = [UInt8](repeating: 0, count: cropWidth * cropHeight * 3)
        for y in 0..<cropHeight {
            let sy = y + top
            guard sy >= 0, sy < height else { continue }
            for x in 0..<cropWidth {
                let sx = x + left
                guard sx >= 0, sx < width else { continue }
                for c in 0..<3 { out[(y * cropWidth + x) * 3 + c] = pixels[(sy * width + sx) * 3 + c] }
            }
        }
        return try RGB8Image(width: cropWidth, height: cropHeight, pixels: out)
    }
}
