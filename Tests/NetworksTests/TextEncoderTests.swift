// Text encoders against transformers: fixtures from Tools/fixtures/text_encoders.py (tiny random
// configs, one per architecture and loading layout, inputs with padding and attention masks).
// Tolerance: max abs difference 1e-4 on every hidden state, pooled and projected output.

import Foundation
import Kernels
import XCTest
@testable import Networks

final class TextEncoderTests: XCTestCase {
    let tolerance: Float = 1e-4
    typealias F = TextEncoderFixtures

    // CLIPTextModel, quick_gelu, legacy `text_model.` names + position_ids buffer, pads = end token.
    func testCLIPFolderMatchesTransformers() throws {
        let encoder = try TextEncoder.load(folder: F.folder("clip_folder"))
        let expected = try F.expected("clip_folder")
        let ids = try F.intRows(expected, "input_ids")
        try assertMatches(try encoder(ids: ids), expected, tolerance: tolerance)
        XCTAssertEqual(encoder.maxLength, 16)
    }

    // The same model called with an attention mask (combined with the causal mask).
    func testCLIPWithAttentionMaskMatchesTransformers() throws {
        let encoder = try TextEncoder.load(folder: F.folder("clip_folder"))
        let expected = try F.expected("clip_folder")
        let ids = try F.intRows(expected, "masked.input_ids")
        let mask = try F.intRows(expected, "attention_mask")
        try assertMatches(try encoder(ids: ids, attentionMask: mask), expected, prefix: "masked.", tolerance: tolerance)
    }

    // CLIPTextModelWithProjection, gelu, f16 weights in 6 shards + index, legacy eos_token_id == 2
    // (pooled at argmax of the ids), text_embeds.
    func testCLIPWithProjectionShardedF16MatchesTransformers() throws {
        let encoder = try TextEncoder.load(folder: F.folder("clip_proj_sharded"))
        let expected = try F.expected("clip_proj_sharded")
        let output = try encoder(ids: try F.intRows(expected, "input_ids"))
        XCTAssertEqual(output.textEmbeds?.shape, [2, 24])
        try assertMatches(output, expected, tolerance: tolerance)
    }

    // Single-file SD1 (f16): cond_stage_model.transformer.text_model.*, beside UNet/VAE tensors.
    func testSD1SingleFileMatchesTransformers() throws {
        let folder = F.folder("sd1_single")
        let checkpoint = try WeightStore(file: folder.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(CheckpointTextEncoder.detect(in: checkpoint), [.sd1])
        let encoder = try TextEncoder.load(checkpoint: checkpoint, part: .sd1, config: try F.clipConfig(folder))
        let expected = try F.expected("sd1_single")
        try assertMatches(try encoder(ids: try F.intRows(expected, "input_ids")), expected, tolerance: tolerance)
    }

    // Single-file SD2: OpenCLIP names, fused in_proj, text_projection stored [C, P], logit_scale,
    // three blocks in the file and a two-layer config (as diffusers' SD2 text encoder).
    func testSD2OpenCLIPSingleFileMatchesTransformers() throws {
        let folder = F.folder("sd2_single")
        let checkpoint = try WeightStore(file: folder.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(CheckpointTextEncoder.detect(in: checkpoint), [.sd2])
        let encoder = try TextEncoder.load(checkpoint: checkpoint, part: .sd2, config: try F.clipConfig(folder))
        let expected = try F.expected("sd2_single")
        try assertMatches(try encoder(ids: try F.intRows(expected, "input_ids")), expected, tolerance: tolerance)
    }

    // Single-file SDXL (bf16): CLIP-L under embedders.0, OpenCLIP-bigG style under embedders.1 with
    // its projection; the penultimate hidden states SDXL uses are among those compared.
    func testSDXLSingleFileBothEncodersMatchTransformers() throws {
        let folder = F.folder("sdxl_single")
        let checkpoint = try WeightStore(file: folder.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(CheckpointTextEncoder.detect(in: checkpoint), [.sdxlFirst, .sdxlSecond])
        let expected = try F.expected("sdxl_single")
        let one = try TextEncoder.load(checkpoint: checkpoint, part: .sdxlFirst,
                                       config: try F.clipConfig(folder.appendingPathComponent("text_encoder")))
        let two = try TextEncoder.load(checkpoint: checkpoint, part: .sdxlSecond,
                                       config: try F.clipConfig(folder.appendingPathComponent("text_encoder_2")))
        try assertMatches(try one(ids: try F.intRows(expected, "one.input_ids")), expected, prefix: "one.",
                          tolerance: tolerance)
        let out2 = try two(ids: try F.intRows(expected, "two.input_ids"))
        try assertMatches(out2, expected, prefix: "two.", tolerance: tolerance)
        XCTAssertEqual(try out2.hiddenState(fromEnd: 2).shape, [2, 12, 40])
    }

    // A config read off the weights (no config given): the SD1 fixture's shapes; heads from a head
    // width of 8 (the tiny config's), so the numbers match too.
    func testInferredCLIPConfigFromCheckpoint() throws {
        let folder = F.folder("sd1_single")
        let checkpoint = try WeightStore(file: folder.appendingPathComponent("model.safetensors"))
        let view = try CLIPTextKeyMap.checkpoint(checkpoint, part: .sd1)
        let inferred = try CLIPTextConfig.inferred(from: view, activation: "quick_gelu", headDim: 8)
        let reference = try F.clipConfig(folder)
        XCTAssertEqual(inferred.hiddenSize, reference.hiddenSize)
        XCTAssertEqual(inferred.numHiddenLayers, reference.numHiddenLayers)
        XCTAssertEqual(inferred.numAttentionHeads, reference.numAttentionHeads)
        XCTAssertEqual(inferred.intermediateSize, reference.intermediateSize)
        XCTAssertEqual(inferred.vocabSize, reference.vocabSize)
        XCTAssertEqual(inferred.maxPositionEmbeddings, reference.maxPositionEmbeddings)
    }

    // A whole CLIPModel folder: the text tower (nested text_config) and text_projection.
    func testCLIPFullModelFolderLoadsTheTextTower() throws {
        let encoder = try TextEncoder.load(folder: F.folder("clip_full_model"))
        let expected = try F.expected("clip_full_model")
        let output = try encoder(ids: try F.intRows(expected, "input_ids"))
        XCTAssertEqual(output.textEmbeds?.shape, [2, 20])
        try assertMatches(output, expected, tolerance: tolerance)
    }

    // BertModel with token_type_ids and padding masks; then called without either.
    func testBERTFolderMatchesTransformers() throws {
        let encoder = try TextEncoder.load(folder: F.folder("bert_folder"))
        let expected = try F.expected("bert_folder")
        let ids = try F.intRows(expected, "input_ids")
        let output = try encoder(ids: ids, attentionMask: try F.intRows(expected, "attention_mask"),
                                 tokenTypeIds: try F.intRows(expected, "token_type_ids"))
        try assertMatches(output, expected, tolerance: tolerance)
        let plain = try encoder(ids: ids)
        assertClose(plain.lastHiddenState, try expected.tensor("plain.last_hidden_state"), tolerance: tolerance,
                    "plain.last_hidden_state")
        assertClose(plain.pooled, try expected.tensor("plain.pooler_output"), tolerance: tolerance, "plain.pooler_output")
    }

    // The demo world's layout: BertSeriesModelWithTransformation (`bert.*` + per-token transformation).
    func testBERTSeriesProjectionMatchesReference() throws {
        let encoder = try TextEncoder.load(folder: F.folder("bert_series"))
        let expected = try F.expected("bert_series")
        let output = try encoder(ids: try F.intRows(expected, "input_ids"),
                                 attentionMask: try F.intRows(expected, "attention_mask"))
        try assertMatches(output, expected, tolerance: tolerance)
        XCTAssertEqual(encoder.crossAttentionDim, 24)
        XCTAssertEqual(output.crossAttentionStates.shape, [2, 12, 24])
    }

    // AltDiffusion's RobertaSeriesModelWithTransformation with has_pre_transformation (XLM-R).
    func testXLMRobertaAltDiffusionMatchesDiffusers() throws {
        let encoder = try TextEncoder.load(folder: F.folder("xlmr_altdiffusion"))
        let expected = try F.expected("xlmr_altdiffusion")
        let output = try encoder(ids: try F.intRows(expected, "input_ids"),
                                 attentionMask: try F.intRows(expected, "attention_mask"))
        try assertMatches(output, expected, tolerance: tolerance)
    }

    // M-CLIP: XLM-R, masked mean, LinearTransformation.
    func testMultilingualCLIPMatchesReference() throws {
        let encoder = try TextEncoder.load(folder: F.folder("xlmr_mclip"))
        let expected = try F.expected("xlmr_mclip")
        let output = try encoder(ids: try F.intRows(expected, "input_ids"),
                                 attentionMask: try F.intRows(expected, "attention_mask"))
        try assertMatches(output, expected, tolerance: tolerance)
    }

    // RobertaModel from 3 shards: padding-aware position ids (pads = 1 take position 1).
    func testRobertaShardedMatchesTransformers() throws {
        let encoder = try TextEncoder.load(folder: F.folder("roberta_folder"))
        let expected = try F.expected("roberta_folder")
        let ids = try F.intRows(expected, "input_ids")
        let output = try encoder(ids: ids, attentionMask: try F.intRows(expected, "attention_mask"))
        try assertMatches(output, expected, tolerance: tolerance)
        guard case .bert(let model) = encoder.body else { return XCTFail("not a BERT-family body") }
        XCTAssertEqual(model.positionIds([[0, 7, 8, 2, 1, 1]]), [[2, 3, 4, 5, 1, 1]])
    }
}
