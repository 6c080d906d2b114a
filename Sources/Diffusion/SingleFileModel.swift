// Single-file checkpoints (`*.safetensors` with LDM/SGM names: model.diffusion_model.*,
// first_stage_model.*, cond_stage_model.*, conditioner.embedders.N.*), as diffusers'
// `from_single_file`: the family (SD1, SD2, SDXL) is detected from the tensors and its standard
// configs are used, or the configs, tokenizers and scheduler of a diffusers folder given as
// `configFolder` (diffusers' `config=`). Without one, the tokenizers come from the bundled CLIP BPE
// folders (Models/tokenizers/clip: SD1 and SDXL's first encoder pad with <|endoftext|>;
// Models/tokenizers/clip-pad0: SD2 and SDXL's second encoder pad with "!") and the scheduler is
// Euler with the SD training schedule (scaled_linear 0.00085-0.012, leading, steps_offset 1).
// SD2 768-v checkpoints predict v: give a config folder whose scheduler says v_prediction.

import Foundation
import Kernels
import Networks
import Tokenization

extension DiffusionModel {
    static func loadSingleFile(_ url: URL, options: ModelLoadOptions) throws -> DiffusionModel {
        let path = url.path
        guard url.pathExtension == "safetensors" else {
            if ["ckpt", "pt", "pth", "bin"].contains(url.pathExtension) {
                throw PipelineError.unsupportedModel(
                    path: path, reason: "pickle checkpoints are never loaded (unpickling runs code); convert it to .safetensors")
            }
            throw PipelineError.unsupportedModel(path: path, reason: "a single-file checkpoint must be a .safetensors file")
        }
        func wrap<T>(_ part: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let error as PipelineError { throw error } catch {
                throw PipelineError.missingPart(model: path, part: part, reason: error.localizedDescription)
            }
        }
        let store = try wrap("weights") { try WeightStore(file: url) }
        let family = try wrap("unet") { try ModelFamily.detect(store) }
        let config = options.configFolder

        // UNet and VAE through the LDM name maps; LoRAs match the UNet's diffusers names.
        let unetConfig = try wrap("unet") {
            try config.map { try loadConfig(UNet2DConditionConfig.self, from: $0.appendingPathComponent("unet/config.json")) }
                ?? family.unetConfig
        }
        let unetView = try wrap("unet") { try LDMKeyMap.unet(store, config: unetConfig) }
        let lora = try LoRAFusion(specs: options.loras, modelNames: unetView.names.map { "unet/" + $0 }, unetConfig: unetConfig)
        let unet = try wrap("unet") {
            let view = try lora.apply(to: unetView, part: "unet")
            let model = try UNet2DConditionModel(config: unetConfig, weights: view, configFile: path)
            try view.finish()
            return model
        }
        let decoder: ImageDecoder
        if let vae = options.vae {
            decoder = try wrap("vae (--vae \(vae.path))") { try loadDecoder(vae) }
        } else {
            decoder = try wrap("vae") {
                let vaeConfig = try config.map {
                    try loadConfig(AutoencoderKLConfig.self, from: $0.appendingPathComponent("vae/config.json"))
                } ?? family.vaeConfig
                let view = try LDMKeyMap.vae(store, config: vaeConfig)
                let model = try AutoencoderKL(config: vaeConfig, weights: view, configFile: path)
                try view.finish()
                return .kl(model)
            }
        }

        // Text encoders in pipeline order, each with its tokenizer.
        let parts: [(CheckpointTextEncoder, String, String)] = family == .sdxl
            ? [(.sdxlFirst, "tokenizer", "text_encoder"), (.sdxlSecond, "tokenizer_2", "text_encoder_2")]
            : [(family == .sd2 ? .sd2 : .sd1, "tokenizer", "text_encoder")]
        var encoders: [PromptEncoder] = []
        for (part, tokPart, encPart) in parts {
            let textConfig = try wrap(encPart) {
                try config.map { try loadConfig(CLIPTextConfig.self, from: $0.appendingPathComponent("\(encPart)/config.json")) }
                    ?? part.preset
            }
            let encoder = try wrap(encPart) { try TextEncoder.load(checkpoint: store, part: part, config: textConfig) }
            let tokenizerFolder: URL
            if let config {
                tokenizerFolder = config.appendingPathComponent(tokPart)
            } else {
                guard let bundled = options.bundledTokenizers else {
                    throw PipelineError.missingPart(model: path, part: tokPart,
                                                    reason: "a single file has no tokenizer: give a config folder (--config)")
                }
                let padsWithZero = part == .sd2 || part == .sdxlSecond
                tokenizerFolder = bundled.appendingPathComponent(padsWithZero ? "clip-pad0" : "clip")
            }
            let tokenizer = try wrap(tokPart) { try loadTokenizer(folder: tokenizerFolder, options: options.tokenizer) }
            encoders.append(PromptEncoder(tokenizer: tokenizer, encoder: encoder, useAttentionMask: false, part: encPart))
        }

        let scheduler: SchedulerConfig = try wrap("scheduler") {
            if let config { return try SchedulerConfig.load(folder: config.appendingPathComponent("scheduler")) }
            return try SchedulerConfig.decode(Data("""
                {"_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
                 "beta_end": 0.012, "beta_schedule": "scaled_linear", "prediction_type": "epsilon",
                 "timestep_spacing": "leading", "steps_offset": 1}
                """.utf8), file: "<\(family.rawValue) default scheduler>")
        }
        let model = DiffusionModel(
            name: url.deletingPathExtension().lastPathComponent, path: path,
            pipelineClass: family == .sdxl ? "StableDiffusionXLPipeline (single file)" : "StableDiffusionPipeline (single file)",
            encoders: encoders, unet: unet, decoder: decoder, scheduler: scheduler,
            forceZerosForEmptyPrompt: family == .sdxl, identityFiles: [url])
        try model.checkWidths()
        return model
    }
}
