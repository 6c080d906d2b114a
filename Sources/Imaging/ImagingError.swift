// ImagingError: every way reading or writing an image can be refused.

import Foundation

public enum ImagingError: LocalizedError, Equatable {
    case cannotRead(file: String, reason: String)
    case notPNG(file: String)
    case invalidPNG(file: String, reason: String)
    case imageTooLarge(file: String, limit: Int)
    case invalidTensorShape(shape: [Int])
    case invalidPixelBuffer(width: Int, height: Int, bytes: Int)
    case invalidTextKey(key: String)
    case invalidText(key: String, reason: String)
    case encodeFailed(file: String, reason: String)
    case writeFailed(file: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case let .cannotRead(file, reason):
            return "\(file): cannot read image: \(reason)"
        case let .notPNG(file):
            return "\(file): not a PNG file (the 8-byte PNG signature is missing)"
        case let .invalidPNG(file, reason):
            return "\(file): invalid or truncated PNG: \(reason)"
        case let .imageTooLarge(file, limit):
            return "\(file): image is larger than the limit of \(limit) pixels per side"
        case let .invalidTensorShape(shape):
            return "an RGB image tensor must be [3, H, W] or [1, 3, H, W] with H, W > 0; got \(shape)"
        case let .invalidPixelBuffer(width, height, bytes):
            return "an RGB8 image of \(width)x\(height) needs \(width * height * 3) bytes; got \(bytes)"
        case let .invalidTextKey(key):
            return "invalid PNG text keyword '\(key)': it must be 1-79 Latin-1 characters without leading, trailing or double spaces"
        case let .invalidText(key, reason):
            return "invalid PNG text for '\(key)': \(reason)"
        case let .encodeFailed(file, reason):
            return "\(file): PNG encoding failed: \(reason)"
        case let .writeFailed(file, reason):
            return "\(file): write failed: \(reason)"
        }
    }
}
