// `jpgen inspect MODEL_FOLDER`: a diffusers pipeline folder's summary without loading any weights:
// the detected family, the defaults jpgen will use, and per part its class, the config values that
// matter, parameter count and stored dtypes (from the safetensors headers).

import Diffusion
import Foundation
import SafeTensors

struct ModelSummary: Encodable {
    struct Part: Encodable {
        let name: String
        let className: String
        let parameters: Int
        let dtypes: [String: Int]
        let config: [String: String]
    }

    let path: String
    let pipeline: String
    let family: String
    let defaults: [String: String]
    let parts: [Part]

    /// Keys worth showing per part (when present in its config).
    static let keys: [String: [String]] = [
        "text_encoder": ["architectures", "hidden_size", "num_hidden_layers", "projection_dim", "project_dim",
                         "max_position_embeddings", "use_attention_mask"],
        "text_encoder_2": ["architectures", "hidden_size", "num_hidden_layers", "projection_dim"],
        "tokenizer": ["tokenizer_class", "model_max_length", "word_tokenizer_type", "subword_tokenizer_type"],
        "tokenizer_2": ["tokenizer_class", "model_max_length", "pad_token"],
        "unet": ["block_out_channels", "cross_attention_dim", "attention_head_dim", "layers_per_block", "sample_size",
                 "addition_embed_type", "time_cond_proj_dim", "use_linear_projection", "transformer_layers_per_block"],
        "vae": ["block_out_channels", "latent_channels", "scaling_factor", "encoder_block_out_channels"],
        "scheduler": ["beta_schedule", "prediction_type", "timestep_spacing", "num_train_timesteps", "original_inference_steps"],
    ]

    init(folder: URL) throws {
        let index = try jsonObject(folder.appendingPathComponent("model_index.json"))
        path = folder.path
        pipeline = index["_class_name"] as? String ?? "?"
        var parts: [Part] = []
        var unetConfig: [String: Any] = [:]
        for name in index.keys.sorted() where !name.hasPrefix("_") {
            guard let pair = index[name] as? [Any], pair.count == 2, let cls = pair[1] as? String else { continue }
            let dir = folder.appendingPathComponent(name)
            let configFile = ["config.json", "scheduler_config.json", "tokenizer_config.json"]
                .map { dir.appendingPathComponent($0) }.first { FileManager.default.fileExists(atPath: $0.path) }
            let config = try configFile.map { try jsonObject($0) } ?? [:]
            if name == "unet" { unetConfig = config }
            var shown: [String: String] = [:]
            for key in Self.keys[name] ?? [] {
                guard let value = config[key], !(value is NSNull) else { continue }
                shown[key] = compactJSON(value)
            }
            var parameters = 0
            var dtypes: [String: Int] = [:]
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".safetensors") }
            for file in files.sorted() {
                let st = try SafeTensorsFile(url: dir.appendingPathComponent(file))
                for info in st.infos {
                    parameters += info.count
                    dtypes[info.dtype.rawValue, default: 0] += 1
                }
            }
            parts.append(Part(name: name, className: cls, parameters: parameters, dtypes: dtypes, config: shown))
        }
        self.parts = parts
        if unetConfig["addition_embed_type"] as? String == "text_time" {
            family = "sdxl"
        } else {
            switch unetConfig["cross_attention_dim"] as? Int {
            case 768: family = "sd1"
            case 1024: family = "sd2"
            case let d?: family = "custom (cross-attention \(d))"
            default: family = "?"
            }
        }
        let model = try DiffusionModel.load(folder.path)
        let d = model.samplingDefaults
        defaults = ["sampler": d.sampler, "steps": String(d.steps), "cfg": formatCFG(d.guidanceScale),
                    "size": "\(model.defaultSize)x\(model.defaultSize)", "size_multiple": String(model.sizeMultiple)]
    }

    var text: String {
        var lines = ["model: \(path)", "pipeline: \(pipeline)", "family: \(family)",
                     "defaults: sampler \(defaults["sampler"]!), \(defaults["steps"]!) steps, cfg \(defaults["cfg"]!), "
                        + "\(defaults["size"]!) (sides in multiples of \(defaults["size_multiple"]!))"]
        for part in parts {
            var line = "\(part.name): \(part.className)"
            if part.parameters > 0 {
                let dtypes = part.dtypes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                line += ", \(part.parameters) parameters (\(humanCount(Double(part.parameters), unit: ""))), \(dtypes)"
            }
            lines.append(line)
            for key in part.config.keys.sorted() { lines.append("    \(key): \(part.config[key]!)") }
        }
        return lines.joined(separator: "\n")
    }

    var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

private func jsonObject(_ url: URL) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
        throw ValidationErrorText("\(url.path) is not a JSON object")
    }
    return object
}

private func compactJSON(_ value: Any) -> String {
    if let s = value as? String { return s }
    if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
        return String(decoding: data, as: UTF8.self)
    }
    return "\(value)"
}

struct ValidationErrorText: LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}
