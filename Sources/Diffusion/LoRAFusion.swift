// LoRAFusion: `--lora FILE[:SCALE]` fused into the weights as each part of a model is loaded,
// W' = W + scale * (alpha / rank) * up @ down (Merging's LoRA matches kohya and diffusers/PEFT names
// and does the arithmetic), so sampling runs at the model's own speed: an LCM-LoRA turns an SD1.5 or
// SDXL model into a few-step one. Several LoRAs on one tensor add up, in the order given.

import Foundation
import Kernels
import Merging
import Networks

final class LoRAFusion {
    /// "<part>/<tensor name>" -> the modules changing it, with their scales.
    private var byTarget: [String: [(module: LoRAModule, scale: Float, file: String)]] = [:]

    /// `modelNames`: every tensor of the model as "<part>/<name>" (part: unet, text_encoder, text_encoder_2).
    /// `unetConfig` adds kohya's SGM-style UNet names (`lora_unet_input_blocks_4_1_...`, common for SDXL).
    init(specs: [LoRASpec], modelNames: [String], unetConfig: UNet2DConditionConfig? = nil) throws {
        var aliases: [String: String] = [:]
        if let unetConfig, !specs.isEmpty {
            let hasAttn = unetConfig.upBlockTypes.map { $0 == "CrossAttnUpBlock2D" }
            for name in modelNames where name.hasPrefix("unet/") && name.hasSuffix(".weight") {
                let local = String(name.dropFirst("unet/".count).dropLast(".weight".count))
                guard let ldm = LDMKeyMap.ldmUNetName(local, layersPerBlock: unetConfig.layersPerBlock,
                                                      upBlockHasAttention: hasAttn) else { continue }
                aliases["lora_unet_" + ldm.replacingOccurrences(of: ".", with: "_")] = name
            }
        }
        for spec in specs {
            let url = URL(fileURLWithPath: spec.path)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw PipelineError.lora(path: spec.path, reason: "no such file")
            }
            let modules: [LoRAModule]
            do { modules = try LoRA.modules(file: url, modelNames: modelNames, aliases: aliases) } catch {
                throw PipelineError.lora(path: spec.path, reason: error.localizedDescription)
            }
            for module in modules { byTarget[module.target, default: []].append((module, spec.scale, spec.path)) }
        }
    }

    var isEmpty: Bool { byTarget.isEmpty }

    /// The store of `part` with every LoRA-targeted tensor replaced by its fused value.
    func apply(to store: WeightStore, part: String) throws -> WeightStore {
        let prefix = part + "/"
        var fused: [String: Tensor] = [:]
        for (target, modules) in byTarget where target.hasPrefix(prefix) {
            let name = String(target.dropFirst(prefix.count))
            let original = try store.take(name)
            var weights = original.scalars
            for (module, scale, file) in modules {
                do { try LoRA.fuse(module, scale: scale, into: &weights, shape: original.shape) } catch {
                    throw PipelineError.lora(path: file, reason: error.localizedDescription)
                }
            }
            fused[name] = Tensor(shape: original.shape, data: weights)
        }
        return fused.isEmpty ? store : try store.overlaid(fused)
    }
}
