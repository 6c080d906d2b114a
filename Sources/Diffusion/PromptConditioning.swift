// PromptConditioning: prompts -> what the UNet attends to, as diffusers' pipelines' `encode_prompt`.
//
//   one encoder (StableDiffusionPipeline, AltDiffusion-style Japanese/multilingual encoders):
//     ids padded to the tokenizer's model_max_length -> text encoder -> [1, T, D]
//     (CLIP: last_hidden_state after the final layer norm; encoders with a per-token projection:
//     the projection). The attention mask is passed only when the encoder config says
//     `use_attention_mask`.
//   two encoders (StableDiffusionXLPipeline):
//     each encoder's hidden_states[-2], concatenated on the channel axis -> [1, 77, 768 + 1280],
//     and the second encoder's projected pooled output (text_embeds) -> [1, 1280].
//     With force_zeros_for_empty_prompt, an absent negative prompt is all zeros instead.

import Foundation
import Kernels
import Networks
import Tokenization

/// The text conditioning of a batch: states [B, T, D] and, for SDXL, pooled [B, P].
public struct Conditioning {
    public var states: Tensor
    public var pooled: Tensor?

    public init(states: Tensor, pooled: Tensor? = nil) {
        self.states = states
        self.pooled = pooled
    }

    /// The conditioning with each row repeated `times` times: [B, ...] -> [B * times, ...] (row i first `times` times).
    public func repeated(_ times: Int) -> Conditioning {
        guard times > 1 else { return self }
        func rep(_ x: Tensor) -> Tensor {
            let rows = chunk(x, parts: x.shape[0], axis: 0)
            return concat(rows.flatMap { Array(repeating: $0, count: times) }, axis: 0)
        }
        return Conditioning(states: rep(states), pooled: pooled.map(rep))
    }

    /// Rows of `a` then rows of `b` (the unconditional half first, as diffusers' CFG batch).
    public static func stacked(_ a: Conditioning, _ b: Conditioning) -> Conditioning {
        var pooled: Tensor?
        if let pa = a.pooled, let pb = b.pooled { pooled = concat([pa, pb], axis: 0) }
        return Conditioning(states: concat([a.states, b.states], axis: 0), pooled: pooled)
    }
}

extension DiffusionModel {
    /// Encodes one prompt. `absent`: the prompt is an unset negative prompt (zeros for SDXL-style models).
    /// Warnings (a prompt longer than an encoder takes) are handed to `warn`.
    public func encodePrompt(_ prompt: String, absent: Bool = false, warn: (String) -> Void = { _ in }) throws -> Conditioning {
        var states: [Tensor] = []
        var pooled: Tensor?
        let dual = encoders.count == 2
        for part in encoders {
            let encoding = try part.tokenizer.encode(prompt, options: EncodingOptions(padToMaxLength: true))
            if encoding.truncatedTokens > 0 {
                let kept = encoding.tokens.filter { !$0.isEmpty }.suffix(3).joined(separator: " ")
                warn("the prompt is longer than \(part.part)'s limit of \(part.tokenizer.modelMaxLength) tokens: "
                     + "\(encoding.truncatedTokens) tokens after \"\(kept)\" were dropped")
            }
            let output = try part.encoder(ids: [encoding.ids], attentionMask: part.useAttentionMask ? [encoding.attentionMask] : nil)
            if dual {
                states.append(try output.hiddenState(fromEnd: 2))
                if part.part == "text_encoder_2" {
                    guard let embeds = output.textEmbeds ?? output.pooled else {
                        throw PipelineError.unsupportedModel(path: path, reason: "\(part.part) gives no pooled output")
                    }
                    pooled = embeds
                }
            } else {
                states.append(output.crossAttentionStates)
            }
        }
        var result = Conditioning(states: concat(states, axis: 2), pooled: pooled)
        if absent && forceZerosForEmptyPrompt {
            result = Conditioning(states: Tensor(shape: result.states.shape), pooled: pooled.map { Tensor(shape: $0.shape) })
        }
        return result
    }

    /// SDXL's micro-conditioning time ids for `rows` images: [original H, W, crop top, left, target H, W].
    func timeIds(width: Int, height: Int, rows: Int) -> Tensor {
        let one: [Float] = [Float(height), Float(width), 0, 0, Float(height), Float(width)]
        return Tensor(shape: [rows, 6], data: Array([[Float]](repeating: one, count: rows).joined()))
    }
}
