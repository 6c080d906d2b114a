import Foundation
import SafeTensors
import XCTest

@testable import Merging

/// LoRA fusion (kohya and PEFT names, linear and convolution modules) and multi-stage recipes.
final class LoRAStageTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lora-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func write(_ name: String, _ tensors: [(String, [Int], [Float])]) throws -> URL {
        let url = directory.appendingPathComponent(name)
        let writer = try SafeTensorsWriter(url: url, entries: tensors.map { ($0.0, .F32, $0.1) }, metadata: [:])
        for (n, _, v) in tensors { try v.withUnsafeBufferPointer { try writer.write(n, float32: $0) } }
        try writer.finish()
        return url
    }

    let q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    let conv = "down_blocks.0.resnets.0.conv1.weight"

    func model(_ name: String, value: Float) throws -> URL {
        try write(name, [(q, [2, 3], Array(repeating: value, count: 6)), (conv, [2, 1, 1, 2], Array(repeating: value, count: 4))])
    }

    func testKohyaAndPEFTNamesFuseWithAlphaOverRank() throws {
        _ = try model("m.safetensors", value: 0)
        // kohya: rank 1, alpha 0.5 -> factor 0.5; up [2, 1] = [1, 2], down [1, 3] = [1, 0, -1]
        let kohya = try write("k.safetensors", [
            ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight", [1, 3], [1, 0, -1]),
            ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight", [2, 1], [1, 2]),
            ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha", [], [0.5]),
            ("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", [1, 1, 1, 2], [2, 3]),
            ("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", [2, 1, 1, 1], [1, -1]),
        ])
        // PEFT: no alpha -> factor 1 (alpha = rank)
        let peft = try write("p.safetensors", [
            ("unet.\(q.dropLast(7)).lora_A.weight", [1, 3], [1, 1, 1]),
            ("unet.\(q.dropLast(7)).lora_B.weight", [2, 1], [1, 1]),
        ])
        let recipe = try Recipe(yaml: """
            inputs: {m: m.safetensors}
            method: passthrough
            loras: [{path: k.safetensors, scale: 2.0}, {path: p.safetensors}]
            dtype: fp32
            """, path: "r.yaml", relativeTo: directory)
        _ = (kohya, peft)
        let out = try MergeEngine.mergeInMemory(try MergeEngine.plan(recipe, outputPath: nil))
        // to_q: 2 * 0.5 * [1, 2]^T [1, 0, -1] + 1 * [1, 1]^T [1, 1, 1]
        XCTAssertEqual(out[q]!.scalars, [2, 1, 0, 3, 1, -1])
        // conv: 2 * 1 * [1, -1]^T [2, 3] (alpha absent -> alpha = rank)
        XCTAssertEqual(out[conv]!.scalars, [4, 6, -4, -6])
    }

    func testUnmatchedLoRAModulesAreAnError() throws {
        _ = try model("m.safetensors", value: 0)
        _ = try write("bad.safetensors", [
            ("lora_unet_mid_block_attentions_0_proj_in.lora_down.weight", [1, 3], [1, 0, -1]),
            ("lora_unet_mid_block_attentions_0_proj_in.lora_up.weight", [2, 1], [1, 2]),
        ])
        let recipe = try Recipe(yaml: "inputs: {m: m.safetensors}\nmethod: passthrough\nloras: [bad.safetensors]\n", path: "r", relativeTo: directory)
        XCTAssertThrowsError(try MergeEngine.plan(recipe, outputPath: nil)) {
            guard case .input(_, _, let message) = $0 as? MergingError else { return XCTFail("\($0)") }
            XCTAssertTrue(message.contains("1 LoRA modules match no tensor of the model, e.g. lora_unet_mid_block_attentions_0_proj_in"), message)
        }
    }

    func testStagesFeedEachOtherAndLeaveNoTemporaries() throws {
        _ = try model("a.safetensors", value: 1)
        _ = try model("b.safetensors", value: 3)
        _ = try write("l.safetensors", [
            ("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", [1, 1, 1, 2], [1, 1]),
            ("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", [2, 1, 1, 1], [1, 1]),
        ])
        let text = """
            stages:
              - {name: avg, inputs: {a: a.safetensors, b: b.safetensors}, method: linear, parameters: {weight: {a: 0.5, b: 0.5}}, dtype: fp32}
              - {name: fast, inputs: {m: $avg}, method: passthrough, loras: [l.safetensors], dtype: fp32}
            output: final.safetensors
            """
        let url = directory.appendingPathComponent("staged.yaml")
        try Data(text.utf8).write(to: url)
        let staged = try StagedRecipe(contentsOf: url)
        XCTAssertTrue(staged.isMultiStage)
        _ = try staged.run(output: nil) { _, _ in }
        let out = try SafeTensorsFile(url: directory.appendingPathComponent("final.safetensors"))
        XCTAssertEqual(try out.tensor(conv).scalars, [3, 3, 3, 3], "average 2, plus the LoRA's 1")
        XCTAssertEqual(try out.tensor(q).scalars, Array(repeating: 2, count: 6))
        XCTAssertEqual(out.metadata["jpgen_recipe"], text, "the whole recipe, all stages")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "intermediate stage outputs are removed")

        try Data("stages:\n  - {name: x, inputs: {m: $nope}, method: passthrough}\noutput: o.safetensors\n".utf8).write(to: url)
        XCTAssertThrowsError(try StagedRecipe(contentsOf: url).run(output: nil) { _, _ in }) {
            XCTAssertTrue(($0 as? MergingError)?.errorDescription?.contains("$nope is not an earlier stage") == true, "\($0)")
        }
    }
}
