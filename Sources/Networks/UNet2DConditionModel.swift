// UNet2DConditionModel (diffusers/models/unets/unet_2d_condition.py) for SD1.x, SD2.x and SDXL:
// time embedding (+ SDXL's text_time added embedding), conv_in, down blocks with skip outputs,
// the cross-attention mid block, up blocks consuming the skips, norm/silu/conv_out.
// One implementation; the config picks the family. Weights by diffusers names.

import Foundation
import Kernels

/// One down, mid or up block: resnets, optional transformers (one per resnet), optional resampler.
struct UNetBlock {
    var resnets: [ResnetBlock2D]
    var attentions: [Transformer2D]
    var downsample: Downsample2D?
    var upsample: Upsample2D?
}

public struct UNet2DConditionModel {
    public let config: UNet2DConditionConfig
    let timeEmbedding: TimestepMLP
    let addEmbedding: TimestepMLP?
    /// `addition_embed_type: "text"`: the pooled text added to the time embedding.
    let textTimeEmbedding: TextTimeEmbedding?
    let convIn: Conv2dWeights
    let down: [UNetBlock]
    let mid: UNetBlock
    let up: [UNetBlock]
    let normOut: GroupNormWeights
    let convOut: Conv2dWeights

    /// Loads a diffusers `unet/` folder (config.json + safetensors, sharded or not), strictly.
    public init(folder: URL, variant: String? = nil) throws {
        let configURL = folder.appendingPathComponent("config.json")
        let config = try loadConfig(UNet2DConditionConfig.self, from: configURL)
        let store = try WeightStore(folder: folder, variant: variant)
        try self.init(config: config, weights: store, configFile: configURL.path)
        try store.finish()
    }

    /// Builds the model from `weights` under diffusers names (the caller calls `finish()`).
    public init(config: UNet2DConditionConfig, weights store: WeightStore, configFile: String = "config.json") throws {
        try config.validate(file: configFile)
        self.config = config
        let ch = config.blockOutChannels, n = ch.count
        let groups = config.normNumGroups, eps = config.normEps
        let temb = config.timeEmbedDim
        let heads = config.headsPerBlock, layers = config.transformerLayers
        let ctx = config.crossAttentionDim, linearProj = config.useLinearProjection

        timeEmbedding = try TimestepMLP(store, "time_embedding", in: ch[0], out: temb, condDim: config.timeCondProjDim)
        if config.additionEmbedType == "text_time", let inDim = config.projectionClassEmbeddingsInputDim {
            addEmbedding = try TimestepMLP(store, "add_embedding", in: inDim, out: temb)
        } else {
            addEmbedding = nil
        }
        if config.additionEmbedType == "text" {
            textTimeEmbedding = try TextTimeEmbedding(store, "add_embedding", encoderDim: ctx, timeEmbedDim: temb,
                                                      heads: config.additionEmbedTypeNumHeads)
        } else {
            textTimeEmbedding = nil
        }
        convIn = try Conv2dWeights(store, "conv_in", in: config.inChannels, out: ch[0], kernel: config.convInKernel)

        // Down blocks: layers_per_block resnets (+ transformers), a stride-2 conv except the last.
        var down: [UNetBlock] = []
        var outC = ch[0]
        for i in 0..<n {
            let inC = outC
            outC = ch[i]
            let p = "down_blocks.\(i)"
            let cross = config.downBlockTypes[i] == "CrossAttnDownBlock2D"
            var block = UNetBlock(resnets: [], attentions: [], downsample: nil, upsample: nil)
            for j in 0..<config.layersPerBlock {
                block.resnets.append(try ResnetBlock2D(store, "\(p).resnets.\(j)", in: j == 0 ? inC : outC, out: outC,
                                                       tembChannels: temb, groups: groups, eps: eps))
                if cross {
                    block.attentions.append(try Transformer2D(
                        store, "\(p).attentions.\(j)", channels: outC, heads: heads[i], layers: layers[i],
                        contextDim: ctx, groups: groups, linearProjection: linearProj))
                }
            }
            if i < n - 1 {
                block.downsample = try Downsample2D(store, "\(p).downsamplers.0", channels: outC,
                                                    padding: config.downsamplePadding)
            }
            down.append(block)
        }
        self.down = down

        // Mid block: resnet, transformer, resnet at the deepest width.
        let c = ch[n - 1]
        mid = UNetBlock(
            resnets: try (0..<2).map {
                try ResnetBlock2D(store, "mid_block.resnets.\($0)", in: c, out: c, tembChannels: temb, groups: groups,
                                  eps: eps, outputScaleFactor: config.midBlockScaleFactor)
            },
            attentions: [try Transformer2D(store, "mid_block.attentions.0", channels: c, heads: heads[n - 1],
                                           layers: layers[n - 1], contextDim: ctx, groups: groups,
                                           linearProjection: linearProj)],
            downsample: nil, upsample: nil)

        // Up blocks: layers_per_block + 1 resnets over [h, skip] concatenations, nearest 2x + conv
        // except the last. Channels and per-block lists run in reverse.
        let rch = Array(ch.reversed()), rheads = Array(heads.reversed()), rlayers = Array(layers.reversed())
        var up: [UNetBlock] = []
        var prevC = rch[0]
        for i in 0..<n {
            let outC = rch[i], inC = rch[min(i + 1, n - 1)]
            let p = "up_blocks.\(i)"
            let cross = config.upBlockTypes[i] == "CrossAttnUpBlock2D"
            var block = UNetBlock(resnets: [], attentions: [], downsample: nil, upsample: nil)
            let count = config.layersPerBlock + 1
            for j in 0..<count {
                let skipC = j == count - 1 ? inC : outC
                let resIn = j == 0 ? prevC : outC
                block.resnets.append(try ResnetBlock2D(store, "\(p).resnets.\(j)", in: resIn + skipC, out: outC,
                                                       tembChannels: temb, groups: groups, eps: eps))
                if cross {
                    block.attentions.append(try Transformer2D(
                        store, "\(p).attentions.\(j)", channels: outC, heads: rheads[i], layers: rlayers[i],
                        contextDim: ctx, groups: groups, linearProjection: linearProj))
                }
            }
            if i < n - 1 { block.upsample = try Upsample2D(store, "\(p).upsamplers.0", channels: outC) }
            up.append(block)
            prevC = outC
        }
        self.up = up
        normOut = try GroupNormWeights(store, "conv_norm_out", channels: ch[0], groups: groups, eps: eps)
        convOut = try Conv2dWeights(store, "conv_out", in: ch[0], out: config.outChannels, kernel: config.convOutKernel)
    }

    /// One denoising evaluation.
    /// sample: [B, Cin, h, w] (h, w divisible by 2^(blocks-1)), encoderHiddenStates: [B, T, cross_attention_dim],
    /// addTextEmbeds: [B, P] and addTimeIds: [B, 6] for SDXL (text_time); timestepCond: [B, time_cond_proj_dim]
    /// for LCM-distilled UNets (the guidance embedding) -> [B, Cout, h, w].
    public func callAsFunction(sample: Tensor, timestep: Float, encoderHiddenStates: Tensor,
                               addTextEmbeds: Tensor? = nil, addTimeIds: Tensor? = nil,
                               timestepCond: Tensor? = nil) throws -> Tensor {
        guard sample.rank == 4, sample.shape[1] == config.inChannels else {
            throw NetworksError.invalidInput("UNet sample has shape \(sample.shape), expected [B, \(config.inChannels), h, w]")
        }
        let b = sample.shape[0]
        let factor = 1 << (config.blockOutChannels.count - 1)
        guard sample.shape[2] % factor == 0, sample.shape[3] % factor == 0 else {
            throw NetworksError.invalidInput("UNet sample size \(sample.shape[2])x\(sample.shape[3]) is not a multiple of \(factor)")
        }
        guard encoderHiddenStates.rank == 3, encoderHiddenStates.shape[0] == b,
              encoderHiddenStates.shape[2] == config.crossAttentionDim else {
            throw NetworksError.invalidInput(
                "encoder hidden states have shape \(encoderHiddenStates.shape), expected [\(b), T, \(config.crossAttentionDim)]")
        }

        // Time embedding (Timesteps + TimestepEmbedding), plus SDXL's added embedding.
        let tFeatures = timestepEmbedding(Array(repeating: timestep, count: b), dim: config.blockOutChannels[0],
                                          flipSinToCos: config.flipSinToCos, shift: Float(config.freqShift))
        if let dim = config.timeCondProjDim {
            guard let c = timestepCond, c.shape == [b, dim] else {
                throw NetworksError.invalidInput("this UNet (time_cond_proj_dim \(dim)) needs timestep_cond [\(b), \(dim)], got \(timestepCond?.shape ?? [])")
            }
        }
        var emb = timeEmbedding(tFeatures, condition: timestepCond)             // [B, temb]
        if let addEmbedding, let timeDim = config.additionTimeEmbedDim {
            guard let text = addTextEmbeds, let ids = addTimeIds, ids.rank == 2, ids.shape[0] == b,
                  text.rank == 2, text.shape[0] == b,
                  text.shape[1] + ids.shape[1] * timeDim == addEmbedding.linear1.inFeatures else {
                throw NetworksError.invalidInput(
                    "SDXL UNet needs text embeds [B, P] and time ids [B, k] with P + k * \(timeDim) = "
                    + "\(addEmbedding.linear1.inFeatures); got \(addTextEmbeds?.shape ?? []) and \(addTimeIds?.shape ?? [])")
            }
            let idFeatures = timestepEmbedding(ids.scalars, dim: timeDim, flipSinToCos: config.flipSinToCos,
                                               shift: Float(config.freqShift))         // [B*k, timeDim]
            let addIn = concat([text, idFeatures.reshaped([b, -1])], axis: 1)
            emb += addEmbedding(addIn)
        }
        if let textTimeEmbedding { emb += textTimeEmbedding(encoderHiddenStates) }   // addition_embed_type "text"
        var tembAct = emb
        siluInPlace(&tembAct)                       // every resnet applies silu to temb first
        let context = encoderHiddenStates

        var h = convIn(sample)
        var skips: [Tensor] = [h]
        for block in down {
            for (j, resnet) in block.resnets.enumerated() {
                h = resnet(h, tembActivated: tembAct)
                if j < block.attentions.count { h = block.attentions[j](h, context: context) }
                skips.append(h)
            }
            if let ds = block.downsample {
                h = ds(h)
                skips.append(h)
            }
        }
        h = mid.resnets[0](h, tembActivated: tembAct)
        h = mid.attentions[0](h, context: context)
        h = mid.resnets[1](h, tembActivated: tembAct)
        for block in up {
            for (j, resnet) in block.resnets.enumerated() {
                let skip = skips.removeLast()
                h = resnet(concat([h, skip], axis: 1), tembActivated: tembAct)
                if j < block.attentions.count { h = block.attentions[j](h, context: context) }
            }
            if let us = block.upsample { h = us(h) }
        }
        return convOut(normOut.silu(h))
    }
}
