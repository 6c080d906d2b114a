// AutoencoderKL (diffusers/models/autoencoders/autoencoder_kl.py and vae.py Encoder/Decoder):
// the SD/SDXL VAE. encode -> (mean, logvar) of the latent Gaussian; decode latents -> image in [-1, 1].
// Weights by diffusers names.

import Foundation
import Kernels

public struct AutoencoderKLConfig: Codable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var latentChannels: Int
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var normNumGroups: Int
    public var actFn: String
    public var scalingFactor: Float
    public var shiftFactor: Float?
    public var useQuantConv: Bool
    public var usePostQuantConv: Bool
    public var midBlockAddAttention: Bool
    public var downBlockTypes: [String]
    public var upBlockTypes: [String]

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", latentChannels = "latent_channels"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case normNumGroups = "norm_num_groups", actFn = "act_fn", scalingFactor = "scaling_factor"
        case shiftFactor = "shift_factor", useQuantConv = "use_quant_conv", usePostQuantConv = "use_post_quant_conv"
        case midBlockAddAttention = "mid_block_add_attention", downBlockTypes = "down_block_types"
        case upBlockTypes = "up_block_types"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChannels = try c.value(.inChannels, default: 3)
        outChannels = try c.value(.outChannels, default: 3)
        latentChannels = try c.value(.latentChannels, default: 4)
        blockOutChannels = try c.value(.blockOutChannels, default: [64])
        layersPerBlock = try c.value(.layersPerBlock, default: 1)
        normNumGroups = try c.value(.normNumGroups, default: 32)
        actFn = try c.value(.actFn, default: "silu")
        scalingFactor = try c.value(.scalingFactor, default: 0.18215)
        shiftFactor = try c.decodeIfPresent(Float.self, forKey: .shiftFactor)
        useQuantConv = try c.value(.useQuantConv, default: true)
        usePostQuantConv = try c.value(.usePostQuantConv, default: true)
        midBlockAddAttention = try c.value(.midBlockAddAttention, default: true)
        downBlockTypes = try c.value(.downBlockTypes, default: ["DownEncoderBlock2D"])
        upBlockTypes = try c.value(.upBlockTypes, default: ["UpDecoderBlock2D"])
    }

    func validate(file: String) throws {
        if actFn != "silu" && actFn != "swish" { throw NetworksError.unsupportedArchitecture(file: file, name: "act_fn=\(actFn)") }
        for t in downBlockTypes where t != "DownEncoderBlock2D" { throw NetworksError.unsupportedArchitecture(file: file, name: t) }
        for t in upBlockTypes where t != "UpDecoderBlock2D" { throw NetworksError.unsupportedArchitecture(file: file, name: t) }
        guard downBlockTypes.count == blockOutChannels.count, upBlockTypes.count == blockOutChannels.count else {
            throw NetworksError.invalidConfig(file: file, reason: "block type lists and block_out_channels differ in length")
        }
    }
}

/// The VAE mid-block attention (diffusers Attention with group_norm, one head of all channels,
/// biased q/k/v, residual). x: [B, C, H, W] -> same.
struct VAEAttention {
    var norm: GroupNormWeights
    var attn: AttentionWeights

    init(_ store: WeightStore, _ prefix: String, channels: Int, groups: Int) throws {
        norm = try GroupNormWeights(store, prefix + ".group_norm", channels: channels, groups: groups, eps: 1e-6)
        // Single-file (LDM) checkpoints keep q/k/v/proj_out as 1x1 convs [C, C, 1, 1].
        func proj(_ name: String) throws -> (weight: Tensor, bias: Tensor?) {
            let key = "\(prefix).\(name)"
            let conv = store.shape(of: key + ".weight")?.count == 4
            let w = try store.take(key + ".weight", shape: conv ? [channels, channels, 1, 1] : [channels, channels])
            return (w.reshaped([channels, channels]), try store.take(key + ".bias", shape: [channels]))
        }
        let out = try proj("to_out.0")
        attn = AttentionWeights(q: try proj("to_q"), k: try proj("to_k"), v: try proj("to_v"),
                                toOut: LinearWeights(weight: out.weight, bias: out.bias), heads: 1, selfAttention: true)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let tokens = permute(norm(x).reshaped([b, c, h * w]), [0, 2, 1])   // [B, HW, C]
        var out = permute(attn(tokens), [0, 2, 1]).reshaped([b, c, h, w])
        out += x
        return out
    }
}

/// UNetMidBlock2D of the VAE: resnet, attention, resnet (no time embedding, eps 1e-6).
struct VAEMidBlock {
    var resnets: [ResnetBlock2D]
    var attention: VAEAttention?

    init(_ store: WeightStore, _ prefix: String, channels c: Int, groups: Int, addAttention: Bool) throws {
        resnets = try (0..<2).map {
            try ResnetBlock2D(store, "\(prefix).resnets.\($0)", in: c, out: c, tembChannels: nil, groups: groups, eps: 1e-6)
        }
        attention = addAttention ? try VAEAttention(store, "\(prefix).attentions.0", channels: c, groups: groups) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnets[0](x, tembActivated: nil)
        if let attention { h = attention(h) }
        return resnets[1](h, tembActivated: nil)
    }
}

public struct AutoencoderKL {
    public let config: AutoencoderKLConfig
    // encoder
    let encConvIn: Conv2dWeights
    let encDown: [(resnets: [ResnetBlock2D], downsample: Downsample2D?)]
    let encMid: VAEMidBlock
    let encNormOut: GroupNormWeights
    let encConvOut: Conv2dWeights
    let quantConv: Conv2dWeights?
    // decoder
    let postQuantConv: Conv2dWeights?
    let decConvIn: Conv2dWeights
    let decMid: VAEMidBlock
    let decUp: [(resnets: [ResnetBlock2D], upsample: Upsample2D?)]
    let decNormOut: GroupNormWeights
    let decConvOut: Conv2dWeights

    /// Loads a diffusers `vae/` folder strictly.
    public init(folder: URL, variant: String? = nil) throws {
        let configURL = folder.appendingPathComponent("config.json")
        let config = try loadConfig(AutoencoderKLConfig.self, from: configURL)
        let store = try WeightStore(folder: folder, variant: variant)
        try self.init(config: config, weights: store, configFile: configURL.path)
        try store.finish()
    }

    public init(config: AutoencoderKLConfig, weights store: WeightStore, configFile: String = "config.json") throws {
        try config.validate(file: configFile)
        self.config = config
        let ch = config.blockOutChannels, n = ch.count, g = config.normNumGroups, lat = config.latentChannels
        encConvIn = try Conv2dWeights(store, "encoder.conv_in", in: config.inChannels, out: ch[0], kernel: 3)
        var encDown: [(resnets: [ResnetBlock2D], downsample: Downsample2D?)] = []
        var outC = ch[0]
        for i in 0..<n {
            let inC = outC
            outC = ch[i]
            let resnets = try (0..<config.layersPerBlock).map {
                try ResnetBlock2D(store, "encoder.down_blocks.\(i).resnets.\($0)", in: $0 == 0 ? inC : outC, out: outC,
                                  tembChannels: nil, groups: g, eps: 1e-6)
            }
            let ds = i < n - 1 ? try Downsample2D(store, "encoder.down_blocks.\(i).downsamplers.0", channels: outC, padding: 0) : nil
            encDown.append((resnets, ds))
        }
        self.encDown = encDown
        encMid = try VAEMidBlock(store, "encoder.mid_block", channels: ch[n - 1], groups: g,
                                 addAttention: config.midBlockAddAttention)
        encNormOut = try GroupNormWeights(store, "encoder.conv_norm_out", channels: ch[n - 1], groups: g, eps: 1e-6)
        encConvOut = try Conv2dWeights(store, "encoder.conv_out", in: ch[n - 1], out: 2 * lat, kernel: 3)
        quantConv = config.useQuantConv ? try Conv2dWeights(store, "quant_conv", in: 2 * lat, out: 2 * lat, kernel: 1) : nil

        postQuantConv = config.usePostQuantConv ? try Conv2dWeights(store, "post_quant_conv", in: lat, out: lat, kernel: 1) : nil
        let rch = Array(ch.reversed())
        decConvIn = try Conv2dWeights(store, "decoder.conv_in", in: lat, out: rch[0], kernel: 3)
        decMid = try VAEMidBlock(store, "decoder.mid_block", channels: rch[0], groups: g,
                                 addAttention: config.midBlockAddAttention)
        var decUp: [(resnets: [ResnetBlock2D], upsample: Upsample2D?)] = []
        var prevC = rch[0]
        for i in 0..<n {
            let outC = rch[i]
            let resnets = try (0...config.layersPerBlock).map {
                try ResnetBlock2D(store, "decoder.up_blocks.\(i).resnets.\($0)", in: $0 == 0 ? prevC : outC, out: outC,
                                  tembChannels: nil, groups: g, eps: 1e-6)
            }
            let us = i < n - 1 ? try Upsample2D(store, "decoder.up_blocks.\(i).upsamplers.0", channels: outC) : nil
            decUp.append((resnets, us))
            prevC = outC
        }
        self.decUp = decUp
        decNormOut = try GroupNormWeights(store, "decoder.conv_norm_out", channels: ch[0], groups: g, eps: 1e-6)
        decConvOut = try Conv2dWeights(store, "decoder.conv_out", in: ch[0], out: config.outChannels, kernel: 3)
    }

    /// image: [B, Cin, H, W] in [-1, 1] -> (mean, logvar) each [B, latent, H/f, W/f]; logvar clamped to [-30, 20].
    public func encode(_ image: Tensor) throws -> (mean: Tensor, logvar: Tensor) {
        let f = 1 << (config.blockOutChannels.count - 1)
        guard image.rank == 4, image.shape[1] == config.inChannels, image.shape[2] % f == 0, image.shape[3] % f == 0 else {
            throw NetworksError.invalidInput("VAE encode input \(image.shape): expected [B, \(config.inChannels), H, W] with H, W multiples of \(f)")
        }
        var h = encConvIn(image)
        for block in encDown {
            for r in block.resnets { h = r(h, tembActivated: nil) }
            if let ds = block.downsample { h = ds(h) }
        }
        h = encMid(h)
        h = encConvOut(encNormOut.silu(h))
        if let quantConv { h = quantConv(h) }
        let parts = chunk(h, parts: 2, axis: 1)
        return (parts[0], clamp(parts[1], min: -30, max: 20))
    }

    /// A sample of the latent Gaussian: mean + exp(logvar / 2) * noise, noise [same shape] drawn by the caller's generator.
    public static func sample(mean: Tensor, logvar: Tensor, noise: Tensor) -> Tensor {
        let std = Kernels.exp(scale(logvar, 0.5))
        return mean + std * noise
    }

    /// latents: [B, latent, h, w] (unscaled, as diffusers' vae.decode takes them) -> image [B, Cout, h*f, w*f].
    public func decode(_ latents: Tensor) throws -> Tensor {
        guard latents.rank == 4, latents.shape[1] == config.latentChannels else {
            throw NetworksError.invalidInput("VAE decode input \(latents.shape): expected [B, \(config.latentChannels), h, w]")
        }
        var h = latents
        if let postQuantConv { h = postQuantConv(h) }
        h = decConvIn(h)
        h = decMid(h)
        for block in decUp {
            for r in block.resnets { h = r(h, tembActivated: nil) }
            if let us = block.upsample { h = us(h) }
        }
        return decConvOut(decNormOut.silu(h))
    }

    /// Decodes the latents a sampler works with: latents / scaling_factor + shift_factor, then decode.
    public func decodeScaled(_ latents: Tensor) throws -> Tensor {
        try decode(latents / config.scalingFactor + (config.shiftFactor ?? 0))
    }

    /// The inverse of `decodeScaled`'s mapping: (sample - shift_factor) * scaling_factor.
    public func scaleLatents(_ latents: Tensor) -> Tensor {
        (latents - (config.shiftFactor ?? 0)) * config.scalingFactor
    }
}
