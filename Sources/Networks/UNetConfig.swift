// UNetConfig: diffusers' UNet2DConditionModel config.json (diffusers/models/unets/unet_2d_condition.py),
// with the JSON names and diffusers' defaults, and the per-block values it implies.

import Foundation

/// A config value that diffusers accepts either as one number for every block or as a per-block list.
public enum IntOrList: Codable, Equatable {
    case one(Int)
    case list([Int])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .one(v) } else { self = .list(try c.decode([Int].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .one(let v): try c.encode(v)
        case .list(let v): try c.encode(v)
        }
    }

    /// The value for each of `count` blocks.
    public func perBlock(_ count: Int) -> [Int] {
        switch self {
        case .one(let v): return Array(repeating: v, count: count)
        case .list(let v): return v
        }
    }
}

public struct UNet2DConditionConfig: Codable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var flipSinToCos: Bool
    public var freqShift: Int
    public var downBlockTypes: [String]
    public var midBlockType: String?
    public var upBlockTypes: [String]
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var downsamplePadding: Int
    public var midBlockScaleFactor: Float
    public var actFn: String
    public var normNumGroups: Int
    public var normEps: Float
    public var crossAttentionDim: Int
    public var transformerLayersPerBlock: IntOrList
    public var attentionHeadDim: IntOrList
    public var numAttentionHeads: IntOrList?
    public var useLinearProjection: Bool
    public var upcastAttention: Bool
    public var onlyCrossAttention: Bool
    public var dualCrossAttention: Bool
    public var classEmbedType: String?
    public var additionEmbedType: String?
    public var additionTimeEmbedDim: Int?
    public var projectionClassEmbeddingsInputDim: Int?
    /// Heads of the attention pooling of `addition_embed_type: "text"` (diffusers' default 64).
    public var additionEmbedTypeNumHeads: Int
    public var resnetTimeScaleShift: String
    public var timeEmbeddingType: String
    public var timeEmbeddingDim: Int?
    public var timeCondProjDim: Int?
    public var encoderHidDim: Int?
    public var convInKernel: Int
    public var convOutKernel: Int
    public var sampleSize: Int?

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", flipSinToCos = "flip_sin_to_cos"
        case freqShift = "freq_shift", downBlockTypes = "down_block_types", midBlockType = "mid_block_type"
        case upBlockTypes = "up_block_types", blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block", downsamplePadding = "downsample_padding"
        case midBlockScaleFactor = "mid_block_scale_factor", actFn = "act_fn", normNumGroups = "norm_num_groups"
        case normEps = "norm_eps", crossAttentionDim = "cross_attention_dim"
        case transformerLayersPerBlock = "transformer_layers_per_block", attentionHeadDim = "attention_head_dim"
        case numAttentionHeads = "num_attention_heads", useLinearProjection = "use_linear_projection"
        case upcastAttention = "upcast_attention", onlyCrossAttention = "only_cross_attention"
        case dualCrossAttention = "dual_cross_attention", classEmbedType = "class_embed_type"
        case additionEmbedType = "addition_embed_type", additionTimeEmbedDim = "addition_time_embed_dim"
        case projectionClassEmbeddingsInputDim = "projection_class_embeddings_input_dim"
        case additionEmbedTypeNumHeads = "addition_embed_type_num_heads"
        case resnetTimeScaleShift = "resnet_time_scale_shift", timeEmbeddingType = "time_embedding_type"
        case timeEmbeddingDim = "time_embedding_dim", timeCondProjDim = "time_cond_proj_dim"
        case encoderHidDim = "encoder_hid_dim", convInKernel = "conv_in_kernel", convOutKernel = "conv_out_kernel"
        case sampleSize = "sample_size"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChannels = try c.value(.inChannels, default: 4)
        outChannels = try c.value(.outChannels, default: 4)
        flipSinToCos = try c.value(.flipSinToCos, default: true)
        freqShift = try c.value(.freqShift, default: 0)
        downBlockTypes = try c.value(.downBlockTypes, default: [
            "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"])
        midBlockType = try c.value(.midBlockType, default: "UNetMidBlock2DCrossAttn")
        upBlockTypes = try c.value(.upBlockTypes, default: [
            "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])
        blockOutChannels = try c.value(.blockOutChannels, default: [320, 640, 1280, 1280])
        layersPerBlock = try c.value(.layersPerBlock, default: 2)
        downsamplePadding = try c.value(.downsamplePadding, default: 1)
        midBlockScaleFactor = try c.value(.midBlockScaleFactor, default: 1)
        actFn = try c.value(.actFn, default: "silu")
        normNumGroups = try c.value(.normNumGroups, default: 32)
        normEps = try c.value(.normEps, default: 1e-5)
        crossAttentionDim = try c.value(.crossAttentionDim, default: 1280)
        transformerLayersPerBlock = try c.value(.transformerLayersPerBlock, default: .one(1))
        attentionHeadDim = try c.value(.attentionHeadDim, default: .one(8))
        numAttentionHeads = try c.decodeIfPresent(IntOrList.self, forKey: .numAttentionHeads)
        useLinearProjection = try c.value(.useLinearProjection, default: false)
        upcastAttention = try c.value(.upcastAttention, default: false)
        onlyCrossAttention = try c.value(.onlyCrossAttention, default: false)
        dualCrossAttention = try c.value(.dualCrossAttention, default: false)
        classEmbedType = try c.decodeIfPresent(String.self, forKey: .classEmbedType)
        additionEmbedType = try c.decodeIfPresent(String.self, forKey: .additionEmbedType)
        additionTimeEmbedDim = try c.decodeIfPresent(Int.self, forKey: .additionTimeEmbedDim)
        projectionClassEmbeddingsInputDim = try c.decodeIfPresent(Int.self, forKey: .projectionClassEmbeddingsInputDim)
        additionEmbedTypeNumHeads = try c.decodeIfPresent(Int.self, forKey: .additionEmbedTypeNumHeads) ?? 64
        resnetTimeScaleShift = try c.value(.resnetTimeScaleShift, default: "default")
        timeEmbeddingType = try c.value(.timeEmbeddingType, default: "positional")
        timeEmbeddingDim = try c.decodeIfPresent(Int.self, forKey: .timeEmbeddingDim)
        timeCondProjDim = try c.decodeIfPresent(Int.self, forKey: .timeCondProjDim)
        encoderHidDim = try c.decodeIfPresent(Int.self, forKey: .encoderHidDim)
        convInKernel = try c.value(.convInKernel, default: 3)
        convOutKernel = try c.value(.convOutKernel, default: 3)
        sampleSize = try c.decodeIfPresent(Int.self, forKey: .sampleSize)
    }

    /// Heads per down block. diffusers' quirk: for SD1/SD2 configs `attention_head_dim` is really the
    /// number of heads; `num_attention_heads` wins when it is set.
    public var headsPerBlock: [Int] { (numAttentionHeads ?? attentionHeadDim).perBlock(downBlockTypes.count) }
    public var transformerLayers: [Int] { transformerLayersPerBlock.perBlock(downBlockTypes.count) }
    public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }

    /// Refuses options this implementation does not have, naming the field.
    public func validate(file: String) throws {
        func bad(_ name: String) -> NetworksError { .unsupportedArchitecture(file: file, name: name) }
        let n = downBlockTypes.count
        guard blockOutChannels.count == n, upBlockTypes.count == n, n > 0 else {
            throw NetworksError.invalidConfig(file: file, reason: "down_block_types, up_block_types and block_out_channels differ in length")
        }
        guard headsPerBlock.count == n, transformerLayers.count == n else {
            throw NetworksError.invalidConfig(file: file, reason: "per-block lists must have \(n) entries")
        }
        for t in downBlockTypes where t != "CrossAttnDownBlock2D" && t != "DownBlock2D" { throw bad("down block \(t)") }
        for t in upBlockTypes where t != "CrossAttnUpBlock2D" && t != "UpBlock2D" { throw bad("up block \(t)") }
        if let m = midBlockType, m != "UNetMidBlock2DCrossAttn" { throw bad("mid_block_type=\(m)") }
        if actFn != "silu" && actFn != "swish" { throw bad("act_fn=\(actFn)") }
        if onlyCrossAttention { throw bad("only_cross_attention") }
        if dualCrossAttention { throw bad("dual_cross_attention") }
        if let c = classEmbedType { throw bad("class_embed_type=\(c)") }
        if let a = additionEmbedType, a != "text_time" && a != "text" { throw bad("addition_embed_type=\(a)") }
        if additionEmbedType == "text_time" && (additionTimeEmbedDim == nil || projectionClassEmbeddingsInputDim == nil) {
            throw NetworksError.missingConfigField(file: file, field: "addition_time_embed_dim/projection_class_embeddings_input_dim")
        }
        if additionEmbedType == "text" && (additionEmbedTypeNumHeads < 1 || crossAttentionDim % additionEmbedTypeNumHeads != 0) {
            throw NetworksError.invalidConfig(file: file, reason: "addition_embed_type_num_heads \(additionEmbedTypeNumHeads) "
                                              + "does not divide cross_attention_dim \(crossAttentionDim)")
        }
        if resnetTimeScaleShift != "default" { throw bad("resnet_time_scale_shift=\(resnetTimeScaleShift)") }
        if timeEmbeddingType != "positional" { throw bad("time_embedding_type=\(timeEmbeddingType)") }
        if encoderHidDim != nil { throw bad("encoder_hid_dim") }
        if convInKernel % 2 == 0 || convOutKernel % 2 == 0 { throw bad("even conv kernel") }
    }
}
