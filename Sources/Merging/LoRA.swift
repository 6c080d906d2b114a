// LoRA fusion: W' = W + scale * (alpha / rank) * up @ down, for the two naming schemes people have:
//   kohya:           lora_unet_<module path with _>.lora_down.weight / .lora_up.weight / .alpha
//                    lora_te_<...>, lora_te1_/lora_te2_ (SDXL's two text encoders)
//   diffusers/PEFT:  unet.<module>.lora_A.weight / .lora_B.weight  (or .lora.down/.lora.up, or
//                    text_encoder.<module>...; an optional ".alpha")
// A LoRA module is matched to the model tensor `<module>.weight`, where kohya's underscore-joined path
// is resolved against the model's own tensor names (kohya's names are diffusers module names with the
// dots replaced). Convolution LoRAs (4-D down/up) fuse as (up reshaped [out, r]) @ (down reshaped
// [r, in*kh*kw]). Used by merge recipes (a `lora:` stage) and by jpgen's --lora.

import Foundation
import SafeTensors

public struct LoRAModule {
    public var target: String        // the model tensor it changes
    public var down: [Float]         // [r, in...]
    public var up: [Float]           // [out, r]
    public var rank: Int
    public var alpha: Float?
    public var downShape: [Int]
    public var upShape: [Int]
}

public enum LoRA {
    /// The modules of a LoRA file matched to `modelNames` (the names the fused tensors have in the model
    /// being merged: "unet/..."/"text_encoder/..." for folders, or plain diffusers names).
    /// `aliases`: further LoRA module keys -> model tensor names (e.g. kohya's SGM-style SDXL names).
    public static func modules(file url: URL, modelNames: [String], aliases: [String: String] = [:]) throws -> [LoRAModule] {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(url: url) } catch {
            throw MergingError.input(name: "lora", path: url.path, message: error.localizedDescription)
        }
        // Index the model's weights by every spelling a LoRA may use for them.
        var byKey: [String: String] = [:]
        for name in modelNames where name.hasSuffix(".weight") {
            let module = String(name.dropLast(".weight".count))
            var component = "", path = module
            if let slash = module.firstIndex(of: "/") {
                component = String(module[..<slash])
                path = String(module[module.index(after: slash)...])
            }
            let underscored = path.replacingOccurrences(of: ".", with: "_")
            switch component {
            case "unet", "":
                byKey["lora_unet_" + underscored] = name
                byKey["unet." + path] = name
                if component.isEmpty { byKey[path] = name }
            case "text_encoder":
                for p in ["lora_te_", "lora_te1_"] { byKey[p + underscored] = name }
                byKey["text_encoder." + path] = name
            case "text_encoder_2":
                byKey["lora_te2_" + underscored] = name
                byKey["text_encoder_2." + path] = name
            default: break
            }
        }
        for (key, name) in aliases where byKey[key] == nil { byKey[key] = name }
        var groups: [String: (down: String?, up: String?, alpha: String?)] = [:]
        for name in file.names {
            let suffixes: [(String, Int)] = [(".lora_down.weight", 0), (".lora_up.weight", 1), (".lora_A.weight", 0),
                                             (".lora_B.weight", 1), (".lora.down.weight", 0), (".lora.up.weight", 1), (".alpha", 2)]
            guard let (suffix, role) = suffixes.first(where: { name.hasSuffix($0.0) }) else { continue }
            let key = String(name.dropLast(suffix.count))
            var g = groups[key] ?? (nil, nil, nil)
            switch role {
            case 0: g.down = name
            case 1: g.up = name
            default: g.alpha = name
            }
            groups[key] = g
        }
        guard !groups.isEmpty else {
            throw MergingError.input(name: "lora", path: url.path, message: "no LoRA tensors (lora_down/lora_up or lora_A/lora_B)")
        }
        var modules: [LoRAModule] = []
        var unmatched: [String] = []
        for (key, g) in groups.sorted(by: { $0.key < $1.key }) {
            guard let downName = g.down, let upName = g.up else {
                throw MergingError.input(name: "lora", path: url.path, message: "\(key) has no matching down/up pair")
            }
            guard let target = byKey[key] else {
                unmatched.append(key)
                continue
            }
            let down = try file.tensor(downName), up = try file.tensor(upName)
            let rank = down.shape[0]
            guard up.shape.count >= 2, up.shape[1] == rank else {
                throw MergingError.input(name: "lora", path: url.path, message: "\(key): up \(up.shape) does not fit down \(down.shape)")
            }
            let alpha = try g.alpha.map { try file.tensor($0).scalars[0] }
            modules.append(LoRAModule(target: target, down: down.scalars, up: up.scalars, rank: rank, alpha: alpha,
                                      downShape: down.shape, upShape: up.shape))
        }
        if !unmatched.isEmpty {
            throw MergingError.input(name: "lora", path: url.path,
                                     message: "\(unmatched.count) LoRA modules match no tensor of the model, e.g. \(unmatched.prefix(3).joined(separator: ", "))")
        }
        return modules
    }

    /// Adds scale * (alpha / rank) * up @ down to `weights` (the module's target tensor, Float32).
    public static func fuse(_ module: LoRAModule, scale: Float, into weights: inout [Float], shape: [Int]) throws {
        let out = module.upShape[0], r = module.rank
        let inner = module.downShape.dropFirst().reduce(1, *)
        guard out * inner == weights.count, shape.first == out else {
            throw MergingError.input(name: "lora", path: module.target,
                                     message: "LoRA up \(module.upShape) x down \(module.downShape) does not fit the tensor \(shape)")
        }
        let factor = scale * (module.alpha ?? Float(r)) / Float(r)
        module.up.withUnsafeBufferPointer { up in
            module.down.withUnsafeBufferPointer { down in
                weights.withUnsafeMutableBufferPointer { w in
                    for o in 0..<out {
                        for k in 0..<r {
                            let u = factor * up[o * r + k]
                            if u == 0 { continue }
                            let row = k * inner, dst = o * inner
                            for i in 0..<inner { w[dst + i] += u * down[row + i] }
                        }
                    }
                }
            }
        }
    }
}
