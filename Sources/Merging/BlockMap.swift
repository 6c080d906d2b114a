// Where a tensor sits in a UNet, in the block layout merge tools use (the "MBW" layout of the A1111
// block-weight mergers and SuperMerger):
//   SD1/SD2: BASE, IN00-IN11, M00, OUT00-OUT11      SDXL: BASE, IN00-IN08, M00, OUT00-OUT08
// IN/OUT numbers are the original LDM `input_blocks.N` / `output_blocks.N`; diffusers names are mapped to
// them (down block i, layer j -> IN(3i + j + 1), its downsampler -> IN(3(i + 1)); up block i, layer j ->
// OUT(3i + j), its upsampler -> OUT(3i + 2); conv_in -> IN00). BASE is everything outside the three
// block lists: text encoders, time and class embeddings, the final norm and conv, the VAE.
//
// Module class: "attention" for the transformer blocks (self/cross attention, their norms and
// projections), "other" for everything else (convolutions, resnets, embeddings) — the split that
// EvoSDXL-JP's per-module weights use.

import Foundation

public enum ModuleClass: String, Codable, Sendable { case attention, other }

public struct TensorPlace: Equatable, Sendable {
    public var block: String          // "BASE", "IN04", "M00", "OUT11"
    public var module: ModuleClass
}

public func tensorPlace(_ name: String) -> TensorPlace {
    TensorPlace(block: blockName(name), module: moduleClass(name))
}

/// The MBW block of a tensor name (LDM single-file or diffusers names, with or without a
/// `unet.` / `model.diffusion_model.` prefix).
public func blockName(_ name: String) -> String {
    // Folder inputs name tensors "<component>/<name>": only the UNet has blocks.
    if let slash = name.firstIndex(of: "/") {
        return name[..<slash] == "unet" ? blockName(String(name[name.index(after: slash)...])) : "BASE"
    }
    if name.hasPrefix("first_stage_model.") || name.hasPrefix("cond_stage_model.") || name.hasPrefix("conditioner.") {
        return "BASE"
    }
    let parts = name.split(separator: ".").map(String.init)
    func number(after key: String) -> Int? {
        guard let i = parts.firstIndex(of: key), i + 1 < parts.count else { return nil }
        return Int(parts[i + 1])
    }
    func format(_ prefix: String, _ n: Int) -> String { prefix + (n < 10 ? "0\(n)" : "\(n)") }
    // LDM names.
    if let n = number(after: "input_blocks") { return format("IN", n) }
    if parts.contains("middle_block") { return "M00" }
    if let n = number(after: "output_blocks") { return format("OUT", n) }
    // diffusers names (only inside a UNet).
    let isUNet = parts.first == "conv_in" || parts.contains("down_blocks") || parts.contains("up_blocks") || parts.contains("mid_block")
    guard isUNet else { return "BASE" }
    if parts.contains("conv_in") { return "IN00" }
    if let i = number(after: "down_blocks") {
        if parts.contains("downsamplers") { return format("IN", 3 * (i + 1)) }
        let j = number(after: "resnets") ?? number(after: "attentions") ?? 0
        return format("IN", 3 * i + j + 1)
    }
    if parts.contains("mid_block") { return "M00" }
    if let i = number(after: "up_blocks") {
        if parts.contains("upsamplers") { return format("OUT", 3 * i + 2) }
        let j = number(after: "resnets") ?? number(after: "attentions") ?? 0
        return format("OUT", 3 * i + j)
    }
    return "BASE"
}

public func moduleClass(_ name: String) -> ModuleClass {
    let parts = name.split(whereSeparator: { $0 == "." || $0 == "/" }).map(String.init)
    if parts.contains("attentions") || parts.contains("transformer_blocks") { return .attention }
    if parts.contains(where: { $0.hasPrefix("attn") || $0 == "self_attn" || $0 == "attention" }) { return .attention }
    // LDM SpatialTransformer wrappers: input_blocks.N.1.{norm, proj_in, proj_out}, middle_block.1.*.
    for key in ["input_blocks", "output_blocks"] {
        if let i = parts.firstIndex(of: key), i + 3 < parts.count, parts[i + 2] == "1",
           ["norm", "proj_in", "proj_out"].contains(parts[i + 3]) {
            return .attention
        }
    }
    if let i = parts.firstIndex(of: "middle_block"), i + 1 < parts.count, parts[i + 1] == "1" { return .attention }
    return .other
}

/// The valid block names of a layout.
public func blockNames(sdxl: Bool) -> [String] {
    let n = sdxl ? 9 : 12
    func format(_ p: String, _ i: Int) -> String { p + (i < 10 ? "0\(i)" : "\(i)") }
    return ["BASE"] + (0..<n).map { format("IN", $0) } + ["M00"] + (0..<n).map { format("OUT", $0) }
}

/// Shell-style glob: `*` any run of characters, `?` one character.
public func globMatches(_ pattern: String, _ name: String) -> Bool {
    let p = Array(pattern.unicodeScalars), s = Array(name.unicodeScalars)
    var pi = 0, si = 0, star = -1, mark = 0
    while si < s.count {
        if pi < p.count && (p[pi] == "?" || p[pi] == s[si]) {
            pi += 1
            si += 1
        } else if pi < p.count && p[pi] == "*" {
            star = pi
            mark = si
            pi += 1
        } else if star >= 0 {
            pi = star + 1
            mark += 1
            si = mark
        } else {
            return false
        }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}
