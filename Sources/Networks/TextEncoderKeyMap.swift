// Checkpoint key names -> the names the text encoders load, one table per layout.
//
// CLIP text models load transformers' names without the `text_model.` prefix
// (`embeddings.token_embedding.weight`, `encoder.layers.N.self_attn.q_proj.weight`, ...).
// BERT-family models load BertModel's names (`embeddings.word_embeddings.weight`,
// `encoder.layer.N.attention.self.query.weight`, ...); heads keep their own names.
//
// Single-file checkpoints (LDM/SGM names), as diffusers' single_file_utils converts them:
//   SD1   cond_stage_model.transformer.text_model.*         (transformers names)
//   SD2   cond_stage_model.model.*                          (OpenCLIP names)
//   SDXL  conditioner.embedders.0.transformer.text_model.*  (transformers names, CLIP-L)
//         conditioner.embedders.1.model.*                   (OpenCLIP names, bigG)

import Foundation

/// Where the text encoders sit inside a single-file SD/SDXL checkpoint.
public enum CheckpointTextEncoder: String, CaseIterable {
    case sd1 = "cond_stage_model.transformer."
    case sd2 = "cond_stage_model.model."
    case sdxlFirst = "conditioner.embedders.0.transformer."
    case sdxlSecond = "conditioner.embedders.1.model."

    public var prefix: String { rawValue }

    /// OpenCLIP names (fused in_proj, resblocks) rather than transformers names.
    public var isOpenCLIP: Bool { self == .sd2 || self == .sdxlSecond }

    /// The config diffusers uses for this part when the checkpoint carries none.
    public var preset: CLIPTextConfig {
        switch self {
        case .sd1, .sdxlFirst: return .clipL
        case .sd2: return .openCLIPH
        case .sdxlSecond: return .openCLIPBigG
        }
    }

    /// The text encoders present in a checkpoint, in pipeline order.
    public static func detect(in store: WeightStore) -> [CheckpointTextEncoder] {
        allCases.filter { store.hasPrefix($0.prefix) }
    }
}

public enum CLIPTextKeyMap {
    /// transformers folders: `text_model.` is stripped (transformers < 5 wrote it, 5 does not);
    /// the `position_ids` buffer older versions saved is recomputed, so dropped.
    public static func transformers(_ store: WeightStore) throws -> WeightStore {
        try store.renamed { name in
            let local = name.hasPrefix("text_model.") ? String(name.dropFirst("text_model.".count)) : name
            return local == "embeddings.position_ids" ? nil : local
        }
    }

    /// OpenCLIP names (LDM `cond_stage_model.model.*`, SGM `conditioner.embedders.1.model.*`, with
    /// the prefix already removed) -> transformers names. The fused `attn.in_proj_weight` [3C, C]
    /// becomes q/k/v rows; `text_projection` [C, P] is used as x @ P, so it is transposed to the
    /// Linear weight [P, C]; `logit_scale` belongs to the CLIP loss, not to the encoder.
    public static func openCLIP(_ store: WeightStore) throws -> WeightStore {
        try store.remapped { name, shape in
            switch name {
            case "token_embedding.weight": return [("embeddings.token_embedding.weight", .identity)]
            case "positional_embedding": return [("embeddings.position_embedding.weight", .identity)]
            case "ln_final.weight": return [("final_layer_norm.weight", .identity)]
            case "ln_final.bias": return [("final_layer_norm.bias", .identity)]
            case "text_projection": return [("text_projection.weight", .transposed)]
            case "logit_scale", "attn_mask": return []
            default: break
            }
            let block = "transformer.resblocks."
            guard name.hasPrefix(block) else { return [(name, .identity)] }   // left for finish() to report
            let rest = name.dropFirst(block.count)
            guard let dot = rest.firstIndex(of: ".") else { return [(name, .identity)] }
            let layer = "encoder.layers.\(rest[..<dot])."
            let part = String(rest[rest.index(after: dot)...])
            if part == "attn.in_proj_weight" || part == "attn.in_proj_bias" {
                let kind = part.hasSuffix("weight") ? "weight" : "bias"
                let c = (shape.first ?? 0) / 3
                return [("q", 0), ("k", 1), ("v", 2)].map { proj, i in
                    (layer + "self_attn.\(proj)_proj.\(kind)", .rows(i * c..<(i + 1) * c))
                }
            }
            for (old, new) in openCLIPBlockNames where part.hasPrefix(old) {
                return [(layer + new + part.dropFirst(old.count), .identity)]
            }
            return [(name, .identity)]
        }
    }

    /// Parts of an OpenCLIP residual block -> transformers' CLIPEncoderLayer.
    static let openCLIPBlockNames: [(String, String)] = [
        ("ln_1.", "layer_norm1."),
        ("ln_2.", "layer_norm2."),
        ("attn.out_proj.", "self_attn.out_proj."),
        ("mlp.c_fc.", "mlp.fc1."),
        ("mlp.c_proj.", "mlp.fc2."),
    ]

    /// The view of one text encoder of a single-file checkpoint, under transformers names.
    public static func checkpoint(_ store: WeightStore, part: CheckpointTextEncoder) throws -> WeightStore {
        let scoped = store.scoped(prefix: part.prefix)
        guard !scoped.names.isEmpty else {
            throw NetworksError.unrecognizedCheckpoint(
                file: store.origin, reason: "no text encoder tensors under '\(part.prefix)'")
        }
        return part.isOpenCLIP ? try openCLIP(scoped) : try transformers(scoped)
    }
}

public enum BERTKeyMap {
    /// BERT-family checkpoints -> BertModel names. `basePrefix` (`bert.`, `roberta.`,
    /// `transformer.`) is stripped from encoder names; pretraining heads (`cls.*`, `lm_head.*`)
    /// and the `position_ids` / `token_type_ids` buffers are dropped; TF-era LayerNorm
    /// `gamma`/`beta` become `weight`/`bias` (as transformers' _fix_key does). Other names
    /// (projection heads) pass through unchanged.
    public static func transformers(_ store: WeightStore, basePrefix: String?) throws -> WeightStore {
        try store.renamed { name in
            var local = name
            if let basePrefix, local.hasPrefix(basePrefix) { local = String(local.dropFirst(basePrefix.count)) }
            if local.hasPrefix("cls.") || local.hasPrefix("lm_head.") { return nil }
            if local == "embeddings.position_ids" || local == "embeddings.token_type_ids" { return nil }
            if local.hasSuffix("LayerNorm.gamma") { local = String(local.dropLast("gamma".count)) + "weight" }
            if local.hasSuffix("LayerNorm.beta") { local = String(local.dropLast("beta".count)) + "bias" }
            return local
        }
    }

    /// The prefix a checkpoint puts before the encoder's names, read off its keys.
    static func detectBasePrefix(_ store: WeightStore, candidates: [String]) -> String? {
        candidates.first { store.contains($0 + "embeddings.word_embeddings.weight") }
    }
}
