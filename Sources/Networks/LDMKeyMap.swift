// LDMKeyMap: original (LDM / CompVis / SGM) single-file names of the UNet and VAE -> diffusers names,
// in one place. The UNet lives under `model.diffusion_model.`, the VAE under `first_stage_model.`
// (or `vae.`). Mirrors diffusers/loaders/single_file_utils.py convert_ldm_unet_checkpoint and
// convert_ldm_vae_checkpoint. Names the rules do not know are kept under an `ldm:` prefix so that
// strict loading reports them as unused.

import Foundation
import Kernels

public enum LDMKeyMap {
    public static let unetPrefix = "model.diffusion_model."
    public static let vaePrefixes = ["first_stage_model.", "vae."]

    /// ResnetBlock2D sub-modules: LDM ResBlock name -> diffusers name.
    static let resnetNames: [(String, String)] = [
        ("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("emb_layers.1", "time_emb_proj"),
        ("out_layers.0", "norm2"), ("out_layers.3", "conv2"), ("skip_connection", "conv_shortcut"),
    ]

    static func resnet(_ rest: String) -> String {
        for (ldm, diffusers) in resnetNames where rest.hasPrefix(ldm + ".") {
            return diffusers + rest.dropFirst(ldm.count)
        }
        return rest
    }

    /// One UNet name (prefix removed) -> its diffusers name, or nil when the rules do not know it.
    /// `layersPerBlock` and which up blocks have attention decide the block numbering.
    public static func unetName(_ name: String, layersPerBlock l: Int, upBlockHasAttention: [Bool]) -> String? {
        let p = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        func tail(_ from: Int) -> String { p.count > from ? p[from...].joined(separator: ".") : "" }
        guard p.count >= 2 else { return nil }
        switch p[0] {
        case "time_embed":
            return p[1] == "0" ? "time_embedding.linear_1.\(tail(2))" : p[1] == "2" ? "time_embedding.linear_2.\(tail(2))" : nil
        case "label_emb":
            guard p.count >= 4, p[1] == "0" else { return nil }
            return p[2] == "0" ? "add_embedding.linear_1.\(tail(3))" : p[2] == "2" ? "add_embedding.linear_2.\(tail(3))" : nil
        case "out":
            return p[1] == "0" ? "conv_norm_out.\(tail(2))" : p[1] == "2" ? "conv_out.\(tail(2))" : nil
        case "input_blocks":
            guard p.count >= 4, let k = Int(p[1]) else { return nil }
            if k == 0 { return p[2] == "0" ? "conv_in.\(tail(3))" : nil }
            let i = (k - 1) / (l + 1), j = (k - 1) % (l + 1)
            if j == l {
                guard p[2] == "0", p[3] == "op" else { return nil }
                return "down_blocks.\(i).downsamplers.0.conv.\(tail(4))"
            }
            if p[2] == "0" { return "down_blocks.\(i).resnets.\(j).\(resnet(tail(3)))" }
            if p[2] == "1" { return "down_blocks.\(i).attentions.\(j).\(tail(3))" }
            return nil
        case "middle_block":
            switch p[1] {
            case "0": return "mid_block.resnets.0.\(resnet(tail(2)))"
            case "1": return "mid_block.attentions.0.\(tail(2))"
            case "2": return "mid_block.resnets.1.\(resnet(tail(2)))"
            default: return nil
            }
        case "output_blocks":
            guard p.count >= 4, let k = Int(p[1]), let s = Int(p[2]) else { return nil }
            let i = k / (l + 1), j = k % (l + 1)
            guard i < upBlockHasAttention.count else { return nil }
            let attn = upBlockHasAttention[i]
            if s == 0 { return "up_blocks.\(i).resnets.\(j).\(resnet(tail(3)))" }
            if s == 1 && attn { return "up_blocks.\(i).attentions.\(j).\(tail(3))" }
            if (s == 1 && !attn) || (s == 2 && attn), j == l { return "up_blocks.\(i).upsamplers.0.\(tail(3))" }
            return nil
        default:
            return nil
        }
    }

    /// The inverse of `unetName`: a diffusers UNet name -> its LDM/SGM name (without the prefix), or nil.
    /// Used to match kohya LoRAs that name SDXL modules the SGM way (`lora_unet_input_blocks_4_1_...`).
    public static func ldmUNetName(_ name: String, layersPerBlock l: Int, upBlockHasAttention: [Bool]) -> String? {
        let p = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        func tail(_ from: Int) -> String { p.count > from ? p[from...].joined(separator: ".") : "" }
        func resnetLDM(_ rest: String) -> String {
            for (ldm, diffusers) in resnetNames where rest.hasPrefix(diffusers + ".") { return ldm + rest.dropFirst(diffusers.count) }
            return rest
        }
        guard p.count >= 2 else { return nil }
        switch p[0] {
        case "time_embedding": return p[1] == "linear_1" ? "time_embed.0.\(tail(2))" : p[1] == "linear_2" ? "time_embed.2.\(tail(2))" : nil
        case "add_embedding": return p[1] == "linear_1" ? "label_emb.0.0.\(tail(2))" : p[1] == "linear_2" ? "label_emb.0.2.\(tail(2))" : nil
        case "conv_in": return "input_blocks.0.0.\(tail(1))"
        case "conv_norm_out": return "out.0.\(tail(1))"
        case "conv_out": return "out.2.\(tail(1))"
        case "mid_block":
            guard p.count >= 4 else { return nil }
            switch (p[1], p[2]) {
            case ("resnets", "0"): return "middle_block.0.\(resnetLDM(tail(3)))"
            case ("attentions", "0"): return "middle_block.1.\(tail(3))"
            case ("resnets", "1"): return "middle_block.2.\(resnetLDM(tail(3)))"
            default: return nil
            }
        case "down_blocks":
            guard p.count >= 5, let i = Int(p[1]), let j = Int(p[3]) else { return nil }
            switch p[2] {
            case "resnets": return "input_blocks.\(1 + i * (l + 1) + j).0.\(resnetLDM(tail(4)))"
            case "attentions": return "input_blocks.\(1 + i * (l + 1) + j).1.\(tail(4))"
            case "downsamplers":
                guard p.count >= 6, p[4] == "conv" else { return nil }
                return "input_blocks.\(1 + i * (l + 1) + l).0.op.\(tail(5))"
            default: return nil
            }
        case "up_blocks":
            guard p.count >= 5, let i = Int(p[1]), let j = Int(p[3]), i < upBlockHasAttention.count else { return nil }
            switch p[2] {
            case "resnets": return "output_blocks.\(i * (l + 1) + j).0.\(resnetLDM(tail(4)))"
            case "attentions": return "output_blocks.\(i * (l + 1) + j).1.\(tail(4))"
            case "upsamplers": return "output_blocks.\(i * (l + 1) + l).\(upBlockHasAttention[i] ? 2 : 1).\(tail(4))"
            default: return nil
            }
        default:
            return nil
        }
    }

    /// One VAE name (prefix removed) -> its diffusers name, or nil when unknown.
    /// `blocks` is len(block_out_channels): LDM numbers the decoder's up blocks from the bottom.
    public static func vaeName(_ name: String, blocks n: Int) -> String? {
        var p = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard p.count >= 2 else { return nil }
        if p[0] == "quant_conv" || p[0] == "post_quant_conv" { return name }
        guard p[0] == "encoder" || p[0] == "decoder" else { return nil }
        switch p[1] {
        case "conv_in", "conv_out": break
        case "norm_out": p[1] = "conv_norm_out"
        case "down", "up":
            guard p.count >= 5, let i = Int(p[2]), i < n else { return nil }
            let down = p[1] == "down"
            p[1] = down ? "down_blocks" : "up_blocks"
            if !down { p[2] = String(n - 1 - i) }
            switch p[3] {
            case "block": p[3] = "resnets"
            case "downsample" where down, "upsample" where !down:
                p[3] = down ? "downsamplers.0" : "upsamplers.0"
            default: return nil
            }
        case "mid":
            guard p.count >= 4 else { return nil }
            switch p[2] {
            case "block_1": p[1...2] = ["mid_block", "resnets.0"]
            case "block_2": p[1...2] = ["mid_block", "resnets.1"]
            case "attn_1":
                let sub = ["norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"]
                guard let s = sub[p[3]] else { return nil }
                p[1...3] = ["mid_block", "attentions.0", s]
            default: return nil
            }
        default: return nil
        }
        return p.joined(separator: ".").replacingOccurrences(of: "nin_shortcut", with: "conv_shortcut")
    }

    /// The UNet of a single-file checkpoint as a store with diffusers names.
    public static func unet(_ store: WeightStore, config: UNet2DConditionConfig) throws -> WeightStore {
        guard store.hasPrefix(unetPrefix) else {
            throw NetworksError.unrecognizedCheckpoint(file: store.origin, reason: "no UNet tensors under '\(unetPrefix)'")
        }
        let hasAttn = config.upBlockTypes.map { $0 == "CrossAttnUpBlock2D" }
        return try store.scoped(prefix: unetPrefix).renamed { name in
            unetName(name, layersPerBlock: config.layersPerBlock, upBlockHasAttention: hasAttn) ?? "ldm:" + name
        }
    }

    /// The VAE of a single-file checkpoint as a store with diffusers names.
    public static func vae(_ store: WeightStore, config: AutoencoderKLConfig) throws -> WeightStore {
        guard let prefix = vaePrefixes.first(where: { store.hasPrefix($0) }) else {
            throw NetworksError.unrecognizedCheckpoint(
                file: store.origin, reason: "no VAE tensors under \(vaePrefixes.joined(separator: " or "))")
        }
        let n = config.blockOutChannels.count
        return try store.scoped(prefix: prefix).renamed { name in vaeName(name, blocks: n) ?? "ldm:" + name }
    }
}
