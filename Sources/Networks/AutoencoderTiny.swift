// AutoencoderTiny (TAESD / TAESDXL; diffusers/models/autoencoders/autoencoder_tiny.py, vae.py
// EncoderTiny/DecoderTiny, unet_2d_blocks.py AutoencoderTinyBlock): a small conv-only VAE used for
// previews and for scoring many images. Weights by diffusers names (encoder.layers.N, decoder.layers.N).

import Foundation
import Kernels

public struct AutoencoderTinyConfig: Codable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var latentChannels: Int
    public var encoderBlockOutChannels: [Int]
    public var decoderBlockOutChannels: [Int]
    public var numEncoderBlocks: [Int]
    public var numDecoderBlocks: [Int]
    public var actFn: String
    public var upsamplingScalingFactor: Int
    public var upsampleFn: String
    public var scalingFactor: Float
    public var shiftFactor: Float

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", latentChannels = "latent_channels"
        case encoderBlockOutChannels = "encoder_block_out_channels", decoderBlockOutChannels = "decoder_block_out_channels"
        case numEncoderBlocks = "num_encoder_blocks", numDecoderBlocks = "num_decoder_blocks", actFn = "act_fn"
        case upsamplingScalingFactor = "upsampling_scaling_factor", upsampleFn = "upsample_fn"
        case scalingFactor = "scaling_factor", shiftFactor = "shift_factor"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChannels = try c.value(.inChannels, default: 3)
        outChannels = try c.value(.outChannels, default: 3)
        latentChannels = try c.value(.latentChannels, default: 4)
        encoderBlockOutChannels = try c.value(.encoderBlockOutChannels, default: [64, 64, 64, 64])
        decoderBlockOutChannels = try c.value(.decoderBlockOutChannels, default: [64, 64, 64, 64])
        numEncoderBlocks = try c.value(.numEncoderBlocks, default: [1, 3, 3, 3])
        numDecoderBlocks = try c.value(.numDecoderBlocks, default: [3, 3, 3, 1])
        actFn = try c.value(.actFn, default: "relu")
        upsamplingScalingFactor = try c.value(.upsamplingScalingFactor, default: 2)
        upsampleFn = try c.value(.upsampleFn, default: "nearest")
        scalingFactor = try c.value(.scalingFactor, default: 1)
        shiftFactor = try c.value(.shiftFactor, default: 0)
    }
}

/// AutoencoderTinyBlock: relu(conv(relu(conv(relu(conv(x))))) + skip(x)), skip a 1x1 conv when widths differ.
struct TinyBlock {
    var convs: [Conv2dWeights]
    var skip: Conv2dWeights?

    init(_ store: WeightStore, _ prefix: String, in c: Int, out o: Int) throws {
        convs = [
            try Conv2dWeights(store, prefix + ".conv.0", in: c, out: o, kernel: 3),
            try Conv2dWeights(store, prefix + ".conv.2", in: o, out: o, kernel: 3),
            try Conv2dWeights(store, prefix + ".conv.4", in: o, out: o, kernel: 3),
        ]
        skip = c == o ? nil : try Conv2dWeights(store, prefix + ".skip", in: c, out: o, kernel: 1, bias: false)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = relu(convs[0](x))
        h = relu(convs[1](h))
        h = convs[2](h)
        h += skip.map { $0(x) } ?? x
        return relu(h)
    }
}

/// One entry of the encoder's or decoder's nn.Sequential.
enum TinyLayer {
    case conv(Conv2dWeights)
    case block(TinyBlock)
    case relu
    case upsample

    func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .conv(let c): return c(x)
        case .block(let b): return b(x)
        case .relu: return Kernels.relu(x)
        case .upsample: return upsampleNearest2x(x)
        }
    }
}

public struct AutoencoderTiny {
    public let config: AutoencoderTinyConfig
    let encoder: [TinyLayer]
    let decoder: [TinyLayer]

    public init(folder: URL, variant: String? = nil) throws {
        let configURL = folder.appendingPathComponent("config.json")
        let config = try loadConfig(AutoencoderTinyConfig.self, from: configURL)
        let store = try WeightStore(folder: folder, variant: variant)
        try self.init(config: config, weights: store, configFile: configURL.path)
        try store.finish()
    }

    public init(config: AutoencoderTinyConfig, weights store: WeightStore, configFile: String = "config.json") throws {
        guard config.actFn == "relu" else { throw NetworksError.unsupportedArchitecture(file: configFile, name: "act_fn=\(config.actFn)") }
        guard config.upsamplingScalingFactor == 2, config.upsampleFn == "nearest" else {
            throw NetworksError.unsupportedArchitecture(file: configFile, name: "upsampling \(config.upsampleFn) x\(config.upsamplingScalingFactor)")
        }
        let ec = config.encoderBlockOutChannels, dc = config.decoderBlockOutChannels
        guard ec.count == config.numEncoderBlocks.count, dc.count == config.numDecoderBlocks.count, !ec.isEmpty, !dc.isEmpty else {
            throw NetworksError.invalidConfig(file: configFile, reason: "block channel and block count lists differ in length")
        }
        self.config = config
        // EncoderTiny: conv (stride 1 first, then stride 2 without bias), blocks, final conv to latents.
        var enc: [TinyLayer] = []
        func ep(_ i: Int) -> String { "encoder.layers.\(i)" }
        for (i, count) in config.numEncoderBlocks.enumerated() {
            let c = ec[i]
            if i == 0 {
                enc.append(.conv(try Conv2dWeights(store, ep(enc.count), in: config.inChannels, out: c, kernel: 3)))
            } else {
                enc.append(.conv(try Conv2dWeights(store, ep(enc.count), in: c, out: c, kernel: 3, stride: 2, bias: false)))
            }
            for _ in 0..<count { enc.append(.block(try TinyBlock(store, ep(enc.count), in: c, out: c))) }
        }
        enc.append(.conv(try Conv2dWeights(store, ep(enc.count), in: ec[ec.count - 1], out: config.latentChannels, kernel: 3)))
        encoder = enc
        // DecoderTiny: conv + relu, then per block: blocks, upsample (not last), conv (bias only on the last).
        var dec: [TinyLayer] = []
        func dp(_ i: Int) -> String { "decoder.layers.\(i)" }
        dec.append(.conv(try Conv2dWeights(store, dp(0), in: config.latentChannels, out: dc[0], kernel: 3)))
        dec.append(.relu)
        for (i, count) in config.numDecoderBlocks.enumerated() {
            let last = i == dc.count - 1, c = dc[i]
            for _ in 0..<count { dec.append(.block(try TinyBlock(store, dp(dec.count), in: c, out: c))) }
            if !last { dec.append(.upsample) }
            dec.append(.conv(try Conv2dWeights(store, dp(dec.count), in: c, out: last ? config.outChannels : c,
                                               kernel: 3, bias: last)))
        }
        decoder = dec
    }

    /// image: [B, Cin, H, W] in [-1, 1] -> latents [B, latent, H/8, W/8] (raw, as diffusers' encode returns them).
    public func encode(_ image: Tensor) throws -> Tensor {
        guard image.rank == 4, image.shape[1] == config.inChannels else {
            throw NetworksError.invalidInput("TAESD encode input \(image.shape): expected [B, \(config.inChannels), H, W]")
        }
        var h = (image + 1) * 0.5                    // [-1, 1] -> [0, 1]
        for layer in encoder { h = layer(h) }
        return h
    }

    /// latents: [B, latent, h, w] -> image [B, Cout, 8h, 8w] in about [-1, 1].
    public func decode(_ latents: Tensor) throws -> Tensor {
        guard latents.rank == 4, latents.shape[1] == config.latentChannels else {
            throw NetworksError.invalidInput("TAESD decode input \(latents.shape): expected [B, \(config.latentChannels), h, w]")
        }
        var h = Kernels.tanh(latents / 3) * 3         // soft clamp
        for layer in decoder { h = layer(h) }
        return h * 2 - 1                              // [0, 1] -> [-1, 1]
    }
}
