// DiffusionModel: the parts of a text-to-image model, loaded from a diffusers pipeline folder
// (model_index.json, tokenizer/, text_encoder/, [tokenizer_2/, text_encoder_2/], unet/, vae/,
// scheduler/) as diffusers' `DiffusionPipeline.from_pretrained` does, with LoRAs fused into the
// weights at load and an optional replacement VAE (a TAESD folder, or another AutoencoderKL).
//
// One text encoder (SD1, SD2, Japanese/multilingual encoders with a projection) or two (SDXL:
// `text_encoder` + `text_encoder_2`, pooled text embeddings and time ids): `encoders.count` says
// which, and PromptConditioning.swift turns prompts into what the UNet takes.

import Foundation
import Kernels
import Merging
import Networks
import Tokenization

/// The VAE that turns latents into images (and images into latents for img2img).
public enum ImageDecoder {
    case kl(AutoencoderKL)
    case tiny(AutoencoderTiny)

    /// Pixels per latent along each side: 2^(blocks - 1) for AutoencoderKL, 8 for TAESD.
    public var scaleFactor: Int {
        switch self {
        case .kl(let vae): return 1 << (vae.config.blockOutChannels.count - 1)
        case .tiny(let vae):
            // One upsampling between each pair of decoder levels (diffusers' DecoderTiny).
            return Int(pow(Double(vae.config.upsamplingScalingFactor), Double(vae.config.decoderBlockOutChannels.count - 1)))
        }
    }

    public var latentChannels: Int {
        switch self {
        case .kl(let vae): return vae.config.latentChannels
        case .tiny(let vae): return vae.config.latentChannels
        }
    }

    /// The widest feature map of the decoder's last block (for the memory estimate).
    var outputWidth: Int {
        switch self {
        case .kl(let vae): return vae.config.blockOutChannels[0]
        case .tiny(let vae): return vae.config.decoderBlockOutChannels.last ?? 64
        }
    }

    /// latents (as the sampler has them) -> image [B, 3, H, W] in about [-1, 1]:
    /// diffusers' `vae.decode(latents / scaling_factor [+ shift_factor])`.
    public func decode(_ latents: Tensor) throws -> Tensor {
        switch self {
        case .kl(let vae): return try vae.decodeScaled(latents)
        case .tiny(let vae):
            return try vae.decode(latents / vae.config.scalingFactor + vae.config.shiftFactor)
        }
    }

    /// image [1, 3, H, W] in [-1, 1] -> latents the sampler works with. AutoencoderKL draws its
    /// latent sample from `generator` (diffusers' `latent_dist.sample(generator)`), TAESD draws nothing.
    public func encode(_ image: Tensor, generator: inout TorchGenerator) throws -> Tensor {
        switch self {
        case .kl(let vae):
            let (mean, logvar) = try vae.encode(image)
            let noise = generator.randn(mean.shape)
            return vae.scaleLatents(AutoencoderKL.sample(mean: mean, logvar: logvar, noise: noise))
        case .tiny(let vae):
            return try vae.encode(image) * vae.config.scalingFactor
        }
    }
}

/// One text encoder with its tokenizer and the options a pipeline reads for it.
public struct PromptEncoder {
    public let tokenizer: any TextTokenizer
    public let encoder: TextEncoder
    /// text_encoder/config.json `use_attention_mask` (diffusers passes the mask only then).
    public let useAttentionMask: Bool
    /// The part names, e.g. "tokenizer" / "text_encoder" or "tokenizer_2" / "text_encoder_2".
    public let part: String
}

/// `--lora FILE[:SCALE]`.
public struct LoRASpec: Equatable {
    public var path: String
    public var scale: Float

    public init(path: String, scale: Float = 1) {
        self.path = path
        self.scale = scale
    }

    /// "FILE" or "FILE:SCALE" (the last colon, so paths with colons still work when a scale is given).
    public init(parsing text: String) throws {
        if let colon = text.lastIndex(of: ":"), let scale = Float(text[text.index(after: colon)...]) {
            self.init(path: String(text[..<colon]), scale: scale)
        } else {
            self.init(path: text)
        }
        guard !path.isEmpty else { throw PipelineError.invalidOption(name: "--lora", value: text, reason: "no file named") }
        guard scale.isFinite else { throw PipelineError.invalidOption(name: "--lora", value: text, reason: "the scale is not a number") }
    }
}

public struct ModelLoadOptions {
    /// A replacement VAE folder (AutoencoderTiny/TAESD or AutoencoderKL).
    public var vae: URL?
    public var loras: [LoRASpec] = []
    /// Weight-file variant, e.g. "fp16" for `diffusion_pytorch_model.fp16.safetensors`.
    public var variant: String?
    public var tokenizer = TokenizerLoadOptions()
    /// Single-file checkpoints: a diffusers folder whose configs, tokenizers and scheduler to use.
    public var configFolder: URL?
    /// Single-file checkpoints without a config folder: the bundled CLIP tokenizers (Models/tokenizers).
    public var bundledTokenizers: URL?

    public init(vae: URL? = nil, loras: [LoRASpec] = [], variant: String? = nil,
                tokenizer: TokenizerLoadOptions = TokenizerLoadOptions(), configFolder: URL? = nil,
                bundledTokenizers: URL? = nil) {
        self.vae = vae
        self.loras = loras
        self.variant = variant
        self.tokenizer = tokenizer
        self.configFolder = configFolder
        self.bundledTokenizers = bundledTokenizers
    }
}

public final class DiffusionModel {
    /// The folder's or file's name, for messages and the PNG's "Model".
    public let name: String
    public let path: String
    /// model_index.json `_class_name` (or "single file").
    public let pipelineClass: String
    public let encoders: [PromptEncoder]
    public let unet: UNet2DConditionModel
    public let decoder: ImageDecoder
    public let scheduler: SchedulerConfig
    /// SDXL: an absent negative prompt gives zero embeddings (model_index.json `force_zeros_for_empty_prompt`).
    public let forceZerosForEmptyPrompt: Bool
    /// The weight files whose bytes identify the model (the UNet's, for the model hash).
    public let identityFiles: [URL]

    init(name: String, path: String, pipelineClass: String, encoders: [PromptEncoder], unet: UNet2DConditionModel,
         decoder: ImageDecoder, scheduler: SchedulerConfig, forceZerosForEmptyPrompt: Bool, identityFiles: [URL]) {
        self.name = name
        self.path = path
        self.pipelineClass = pipelineClass
        self.encoders = encoders
        self.unet = unet
        self.decoder = decoder
        self.scheduler = scheduler
        self.forceZerosForEmptyPrompt = forceZerosForEmptyPrompt
        self.identityFiles = identityFiles
    }

    /// The same model with another UNet (a merge candidate's weights), sharing every other part.
    public func replacingUNet(_ unet: UNet2DConditionModel) -> DiffusionModel {
        DiffusionModel(name: name, path: path, pipelineClass: pipelineClass, encoders: encoders, unet: unet,
                       decoder: decoder, scheduler: scheduler, forceZerosForEmptyPrompt: forceZerosForEmptyPrompt,
                       identityFiles: identityFiles)
    }

    public var vaeScaleFactor: Int { decoder.scaleFactor }

    /// diffusers' default size: unet.config.sample_size * vae_scale_factor.
    public var defaultSize: Int { (unet.config.sampleSize ?? 64) * vaeScaleFactor }

    /// "sdxl" (two encoders, text_time), "sd2" (cross-attention 1024), "sd1" (768), else "custom".
    public var family: String {
        if unet.config.additionEmbedType == "text_time" { return "sdxl" }
        switch unet.config.crossAttentionDim {
        case 768: return "sd1"
        case 1024: return "sd2"
        default: return "custom"
        }
    }

    /// True for models that take guidance as an embedding (LCM-distilled UNets with time_cond_proj_dim)
    /// rather than by classifier-free guidance.
    public var takesGuidanceEmbedding: Bool { unet.config.timeCondProjDim != nil }

    // MARK: Loading

    /// Loads a diffusers pipeline folder, or a single-file checkpoint (SingleFileModel.swift).
    public static func load(_ path: String, options: ModelLoadOptions = ModelLoadOptions()) throws -> DiffusionModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw PipelineError.modelNotFound(path: path)
        }
        guard isDir.boolValue else { return try loadSingleFile(URL(fileURLWithPath: path), options: options) }
        let folder = URL(fileURLWithPath: path)
        let index = try readModelIndex(folder)
        let name = folder.standardizedFileURL.lastPathComponent

        func partFolder(_ part: String) throws -> URL {
            let url = folder.appendingPathComponent(part)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw PipelineError.missingPart(model: path, part: part, reason: "model_index.json lists it but there is no \(part)/ folder")
            }
            return url
        }
        func wrap<T>(_ part: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let error as PipelineError { throw error } catch {
                throw PipelineError.missingPart(model: path, part: part, reason: error.localizedDescription)
            }
        }
        for part in ["tokenizer", "text_encoder", "unet", "scheduler"] where index.parts[part] == nil {
            throw PipelineError.missingPart(model: path, part: part, reason: "model_index.json does not list it")
        }
        if index.parts["vae"] == nil && options.vae == nil {
            throw PipelineError.missingPart(model: path, part: "vae", reason: "model_index.json does not list it (give --vae)")
        }

        // Every weight name as "<part>/<tensor name>", for matching LoRAs to the tensors they change.
        var names: [String] = []
        if !options.loras.isEmpty {
            for part in ["text_encoder", "text_encoder_2", "unet"] where index.parts[part] != nil {
                let store = try wrap(part) { try WeightStore(folder: try partFolder(part), variant: options.variant) }
                names += store.names.map { part + "/" + $0 }
            }
        }
        let unetConfigURL = folder.appendingPathComponent("unet/config.json")
        let unetConfig = try wrap("unet") { try loadConfig(UNet2DConditionConfig.self, from: unetConfigURL) }
        let lora = try LoRAFusion(specs: options.loras, modelNames: names, unetConfig: unetConfig)
        var encoders: [PromptEncoder] = []
        for (tokPart, encPart) in [("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")] {
            guard index.parts[encPart] != nil else { continue }
            let tokFolder = try partFolder(tokPart), encFolder = try partFolder(encPart)
            let tokenizer = try wrap(tokPart) { try loadTokenizer(folder: tokFolder, options: options.tokenizer) }
            let encoder = try wrap(encPart) {
                try TextEncoder.load(folder: encFolder, variant: options.variant) { store in
                    try lora.apply(to: store, part: encPart)
                }
            }
            let useMask = (try? readJSONObject(encFolder.appendingPathComponent("config.json")))?["use_attention_mask"] as? Bool ?? false
            encoders.append(PromptEncoder(tokenizer: tokenizer, encoder: encoder, useAttentionMask: useMask, part: encPart))
        }

        let unetFolder = try partFolder("unet")
        let (unet, unetFiles): (UNet2DConditionModel, [URL]) = try wrap("unet") {
            let config = unetConfig
            let raw = try WeightStore(folder: unetFolder, variant: options.variant)
            let store = try lora.apply(to: raw, part: "unet")
            let model = try UNet2DConditionModel(config: config, weights: store, configFile: unetConfigURL.path)
            try store.finish()
            return (model, raw.fileURLs)
        }

        let decoder: ImageDecoder
        if let vae = options.vae {
            decoder = try wrap("vae (--vae \(vae.path))") { try loadDecoder(vae) }
        } else {
            let vaeFolder = try partFolder("vae")
            decoder = try wrap("vae") { try loadDecoder(vaeFolder) }
        }
        let scheduler = try wrap("scheduler") { try SchedulerConfig.load(folder: try partFolder("scheduler")) }

        let dual = encoders.count == 2
        let zeros = index.raw["force_zeros_for_empty_prompt"] as? Bool ?? dual
        let model = DiffusionModel(name: name, path: path, pipelineClass: index.className, encoders: encoders, unet: unet,
                                   decoder: decoder, scheduler: scheduler, forceZerosForEmptyPrompt: zeros,
                                   identityFiles: unetFiles)
        try model.checkWidths()
        return model
    }

    /// The encoders' output widths must add up to the UNet's cross_attention_dim (and SDXL's pooled width
    /// plus six time ids to its projection_class_embeddings_input_dim).
    func checkWidths() throws {
        let width = encoders.count == 2
            ? encoders.map { $0.encoder.hiddenSize }.reduce(0, +)
            : encoders[0].encoder.crossAttentionDim
        guard width == unet.config.crossAttentionDim else {
            throw PipelineError.unsupportedModel(
                path: path, reason: "the text encoder gives \(width)-wide embeddings but the UNet's cross_attention_dim is "
                    + "\(unet.config.crossAttentionDim)")
        }
    }

    /// Loads a VAE folder by its config's `_class_name` (AutoencoderTiny for TAESD, else AutoencoderKL).
    public static func loadDecoder(_ folder: URL) throws -> ImageDecoder {
        let config = try readJSONObject(folder.appendingPathComponent("config.json"))
        if (config["_class_name"] as? String) == "AutoencoderTiny" {
            return .tiny(try AutoencoderTiny(folder: folder))
        }
        return .kl(try AutoencoderKL(folder: folder))
    }
}

// MARK: model_index.json

struct ModelIndex {
    var className: String
    /// part name -> (library, class), for the parts that are present (not [null, null]).
    var parts: [String: (String, String)]
    var raw: [String: Any]
}

func readModelIndex(_ folder: URL) throws -> ModelIndex {
    let url = folder.appendingPathComponent("model_index.json")
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw PipelineError.missingPart(model: folder.path, part: "model_index.json",
                                        reason: "not a diffusers pipeline folder (no model_index.json)")
    }
    let raw: [String: Any]
    do { raw = try readJSONObject(url) } catch {
        throw PipelineError.unsupportedModel(path: url.path, reason: "not valid JSON: \(error.localizedDescription)")
    }
    var parts: [String: (String, String)] = [:]
    for (key, value) in raw where !key.hasPrefix("_") {
        if let pair = value as? [Any], pair.count == 2, let lib = pair[0] as? String, let cls = pair[1] as? String {
            parts[key] = (lib, cls)
        }
    }
    return ModelIndex(className: raw["_class_name"] as? String ?? "?", parts: parts, raw: raw)
}

func readJSONObject(_ url: URL) throws -> [String: Any] {
    let data = try Data(contentsOf: url)
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw PipelineError.unsupportedModel(path: url.path, reason: "not a JSON object")
    }
    return object
}
