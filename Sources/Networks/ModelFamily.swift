// ModelFamily: which Stable Diffusion family a single-file checkpoint belongs to (SD1.x, SD2.x,
// SDXL), read off its UNet keys and shapes, and the diffusers configs of the full-size models
// (as in the runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-2-1 and
// stabilityai/stable-diffusion-xl-base-1.0 repositories' config.json files).

import Foundation

public enum ModelFamily: String, CaseIterable, Codable {
    case sd1, sd2, sdxl

    /// Detects the family from a single-file checkpoint's UNet:
    /// `label_emb` (the text_time added embedding) -> SDXL; a rank-2 (linear) `proj_in` -> SD2;
    /// a rank-4 (1x1 conv) `proj_in` -> SD1.
    public static func detect(_ store: WeightStore) throws -> ModelFamily {
        let u = LDMKeyMap.unetPrefix
        guard store.hasPrefix(u) else {
            throw NetworksError.unrecognizedCheckpoint(file: store.origin, reason: "no UNet tensors under '\(u)'")
        }
        if store.contains(u + "label_emb.0.0.weight") { return .sdxl }
        let projIn = store.names.first { $0.hasPrefix(u) && $0.hasSuffix(".proj_in.weight") }
        guard let projIn, let shape = store.shape(of: projIn) else {
            throw NetworksError.unrecognizedCheckpoint(file: store.origin, reason: "UNet has no attention projection (proj_in)")
        }
        return shape.count == 2 ? .sd2 : .sd1
    }

    /// The full-size UNet config of the family.
    public var unetConfig: UNet2DConditionConfig {
        // Decoding a constant JSON string cannot fail.
        try! JSONDecoder().decode(UNet2DConditionConfig.self, from: Data(unetConfigJSON.utf8))
    }

    /// The full-size VAE config of the family (SDXL's VAE has scaling factor 0.13025).
    public var vaeConfig: AutoencoderKLConfig {
        let sf = self == .sdxl ? "0.13025" : "0.18215"
        let json = """
        {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
         "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
         "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
         "norm_num_groups": 32, "scaling_factor": \(sf)}
        """
        return try! JSONDecoder().decode(AutoencoderKLConfig.self, from: Data(json.utf8))
    }

    var unetConfigJSON: String {
        switch self {
        case .sd1:
            return """
            {"attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768,
             "layers_per_block": 2, "sample_size": 64}
            """
        case .sd2:
            return """
            {"attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
             "cross_attention_dim": 1024, "layers_per_block": 2, "sample_size": 96,
             "use_linear_projection": true, "upcast_attention": true}
            """
        case .sdxl:
            return """
            {"addition_embed_type": "text_time", "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
             "block_out_channels": [320, 640, 1280], "cross_attention_dim": 2048,
             "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
             "layers_per_block": 2, "projection_class_embeddings_input_dim": 2816, "sample_size": 128,
             "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": true}
            """
        }
    }
}

extension UNet2DConditionModel {
    /// Loads the UNet of a single-file checkpoint (LDM names; f16/bf16 widened to f32). The family's
    /// full-size config is used unless `config` is given. Strict over the UNet's tensors.
    public init(singleFile url: URL, config: UNet2DConditionConfig? = nil) throws {
        let store = try WeightStore(file: url)
        let cfg = try config ?? ModelFamily.detect(store).unetConfig
        let view = try LDMKeyMap.unet(store, config: cfg)
        try self.init(config: cfg, weights: view, configFile: url.path)
        try view.finish()
    }
}

extension AutoencoderKL {
    /// Loads the VAE of a single-file checkpoint (`first_stage_model.*` or `vae.*`). The family's
    /// config is used unless `config` is given. Strict over the VAE's tensors.
    public init(singleFile url: URL, config: AutoencoderKLConfig? = nil) throws {
        let store = try WeightStore(file: url)
        let cfg = try config ?? ModelFamily.detect(store).vaeConfig
        let view = try LDMKeyMap.vae(store, config: cfg)
        try self.init(config: cfg, weights: view, configFile: url.path)
        try view.finish()
    }
}
