// RGB8Image: 8-bit interleaved RGB pixels, and conversion to and from [3, H, W] Float tensors.
//
// Float -> byte follows diffusers' `numpy_to_pil`: clamp to [0, 1], then round(x * 255)
// (NaN -> 0). Byte -> Float is x / 255.

import Kernels

public struct RGB8Image: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// Row-major, interleaved R, G, B: pixel (x, y) starts at 3 * (y * width + x).
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw ImagingError.invalidPixelBuffer(width: width, height: height, bytes: pixels.count)
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image from a tensor x: [3, H, W] or [1, 3, H, W] with values in [0, 1] (clamped).
    public init(tensor x: Tensor) throws {
        let shape = x.shape
        let dims: [Int]
        if shape.count == 3 { dims = shape } else if shape.count == 4, shape[0] == 1 { dims = Array(shape[1...]) } else { dims = [] }
        guard dims.count == 3, dims[0] == 3, dims[1] > 0, dims[2] > 0 else {
            throw ImagingError.invalidTensorShape(shape: shape)
        }
        let h = dims[1], w = dims[2], plane = h * w
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        x.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                for c in 0..<3 {
                    for i in 0..<plane { dst[3 * i + c] = unitFloatToByte(src[c * plane + i]) }
                }
            }
        }
        try self.init(width: w, height: h, pixels: pixels)
    }

    /// The image as a tensor: [3, H, W] with values in [0, 1].
    public var tensor: Tensor {
        let plane = width * height
        return pixels.withUnsafeBufferPointer { src in
            Tensor(shape: [3, height, width]) { dst in
                for c in 0..<3 {
                    for i in 0..<plane { dst[c * plane + i] = Float(src[3 * i + c]) / 255 }
                }
            }
        }
    }

    /// The RGB bytes at (x, y).
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = 3 * (y * width + x)
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}

/// round(clamp(x, 0, 1) * 255), halves to even as numpy.round; NaN -> 0.
@inline(__always)
func unitFloatToByte(_ x: Float) -> UInt8 {
    guard x > 0 else { return 0 }  // also NaN
    guard x < 1 else { return 255 }
    return UInt8((x * 255).rounded(.toNearestOrEven))
}
