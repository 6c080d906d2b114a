// CLIP image preprocessing as transformers' CLIPImageProcessor (Pillow backend,
// `CLIPImageProcessorPil`): resize so the shortest edge is `size.shortest_edge` (the long edge
// truncated to an integer), Pillow resampling (bicubic by default), centre crop to `crop_size`, rescale
// by 1/255 (computed in double, stored in float32) and normalise with the per-channel mean and std in
// float32. Configured by a model's `preprocessor_config.json`.

import Foundation
import Kernels

public struct CLIPImageProcessorConfig: Codable, Equatable, Sendable {
    public struct Size: Codable, Equatable, Sendable {
        public var shortestEdge: Int?
        public var height: Int?
        public var width: Int?

        enum CodingKeys: String, CodingKey {
            case shortestEdge = "shortest_edge", height, width
        }

        public init(shortestEdge: Int? = nil, height: Int? = nil, width: Int? = nil) {
            self.shortestEdge = shortestEdge
            self.height = height
            self.width = width
        }

        public init(from decoder: Decoder) throws {
            // Old configs give a bare integer.
            if let value = try? decoder.singleValueContainer().decode(Int.self) {
                self.init(shortestEdge: value)
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(shortestEdge: try c.decodeIfPresent(Int.self, forKey: .shortestEdge),
                      height: try c.decodeIfPresent(Int.self, forKey: .height),
                      width: try c.decodeIfPresent(Int.self, forKey: .width))
        }
    }

    public var doResize = true
    public var size = Size(shortestEdge: 224)
    public var resample = ResampleFilter.bicubic
    public var doCenterCrop = true
    public var cropSize = Size(height: 224, width: 224)
    public var doRescale = true
    public var rescaleFactor = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean: [Double] = [0.48145466, 0.4578275, 0.40821073]
    public var imageStd: [Double] = [0.26862954, 0.26130258, 0.27577711]

    enum CodingKeys: String, CodingKey {
        case doResize = "do_resize", size, resample, doCenterCrop = "do_center_crop", cropSize = "crop_size"
        case doRescale = "do_rescale", rescaleFactor = "rescale_factor", doNormalize = "do_normalize"
        case imageMean = "image_mean", imageStd = "image_std"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPImageProcessorConfig()
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? d.doResize
        size = try c.decodeIfPresent(Size.self, forKey: .size) ?? d.size
        resample = try c.decodeIfPresent(ResampleFilter.self, forKey: .resample) ?? d.resample
        doCenterCrop = try c.decodeIfPresent(Bool.self, forKey: .doCenterCrop) ?? d.doCenterCrop
        cropSize = try c.decodeIfPresent(Size.self, forKey: .cropSize) ?? d.cropSize
        if cropSize.height == nil, let edge = cropSize.shortestEdge { cropSize = Size(height: edge, width: edge) }
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? d.doRescale
        rescaleFactor = try c.decodeIfPresent(Double.self, forKey: .rescaleFactor) ?? d.rescaleFactor
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? d.doNormalize
        imageMean = try c.decodeIfPresent([Double].self, forKey: .imageMean) ?? d.imageMean
        imageStd = try c.decodeIfPresent([Double].self, forKey: .imageStd) ?? d.imageStd
    }

    /// Reads `preprocessor_config.json`; a missing file means the OpenAI CLIP defaults.
    public static func load(folder: URL) throws -> CLIPImageProcessorConfig {
        let url = folder.appendingPathComponent("preprocessor_config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return CLIPImageProcessorConfig() }
        do {
            let config = try JSONDecoder().decode(CLIPImageProcessorConfig.self, from: Data(contentsOf: url))
            guard config.imageMean.count == 3, config.imageStd.count == 3, config.imageStd.allSatisfy({ $0 != 0 }) else {
                throw ImagingError.cannotRead(file: url.path, reason: "image_mean and image_std need 3 values each, std non-zero")
            }
            return config
        } catch let error as ImagingError {
            throw error
        } catch {
            throw ImagingError.cannotRead(file: url.path, reason: "invalid preprocessor config: \(error)")
        }
    }
}

public struct CLIPImageProcessor: Sendable {
    public var config: CLIPImageProcessorConfig

    public init(config: CLIPImageProcessorConfig = CLIPImageProcessorConfig()) {
        self.config = config
    }

    /// The resized (not yet cropped) size for an image of `width` x `height`, as transformers computes it.
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        if let edge = config.size.shortestEdge {
            let short = min(width, height), long = max(width, height)
            let newLong = Int(Double(edge) * Double(long) / Double(short))
            return width <= height ? (edge, newLong) : (newLong, edge)
        }
        return (config.size.width ?? width, config.size.height ?? height)
    }

    /// pixel_values: [1, 3, cropHeight, cropWidth] (or the resized size without centre crop).
    public func callAsFunction(_ image: RGB8Image) throws -> Tensor {
        var image = image
        if config.doResize {
            let size = resizedSize(width: image.width, height: image.height)
            image = try image.resized(width: size.width, height: size.height, filter: config.resample)
        }
        if config.doCenterCrop, let h = config.cropSize.height, let w = config.cropSize.width {
            image = try image.centerCropped(width: w, height: h)
        }
        let h = image.height, w = image.width, plane = h * w
        let mean = config.imageMean.map { Float($0) }, std = config.imageStd.map { Float($0) }
        let scale = config.rescaleFactor
        return image.pixels.withUnsafeBufferPointer { src in
            Tensor(shape: [1, 3, h, w]) { dst in
                for c in 0..<3 {
                    for i in 0..<plane {
                        var v = config.doRescale ? Float(Double(src[3 * i + c]) * scale) : Float(src[3 * i + c])
                        if config.doNormalize { v = (v - mean[c]) / std[c] }
                        dst[c * plane + i] = v
                    }
                }
            }
        }
    }
}
