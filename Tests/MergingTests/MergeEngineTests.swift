import Foundation
import Kernels
import SafeTensors
import XCTest

@testable import Merging

/// Recipes and the streaming engine on small single-file and folder checkpoints written here.
final class MergeEngineTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    let names = [
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
        "model.diffusion_model.middle_block.0.in_layers.0.weight",
        "model.diffusion_model.output_blocks.11.1.norm.weight",
        "first_stage_model.decoder.conv_in.weight",
        "cond_stage_model.transformer.text_model.final_layer_norm.weight",
    ]

    /// A checkpoint whose every value is `value + index / 100` (so each tensor's merge is easy to check).
    func writeCheckpoint(_ file: String, value: Float, dtype: SafeTensorsDType = .F16, drop: String? = nil,
                         shapeOf: (String) -> [Int] = { _ in [4, 3] }) throws -> URL {
        let url = directory.appendingPathComponent(file)
        let kept = names.filter { $0 != drop }
        let writer = try SafeTensorsWriter(url: url, entries: kept.map { ($0, dtype, shapeOf($0)) }, metadata: [:])
        for name in kept {
            let count = shapeOf(name).reduce(1, *)
            let values = (0..<count).map { value + Float($0) / 100 }
            try values.withUnsafeBufferPointer { try writer.write(name, float32: $0) }
        }
        try writer.finish()
        return url
    }

    func testLinearWithOverridesAndRoundTrip() throws {
        let a = try writeCheckpoint("a.safetensors", value: 1), b = try writeCheckpoint("b.safetensors", value: 3, dtype: .BF16)
        let recipeText = """
            inputs: {a: \(a.path), b: \(b.path)}
            method: linear
            parameters:
              weight: {a: 0.75, b: 0.25}
            overrides:
              - {blocks: [IN00], parameters: {weight: {a: 0.0, b: 1.0}}}
              - {modules: attention, parameters: {weight: {a: 0.5, b: 0.5}}}
              - {tensors: "*.norm.*", parameters: {weight: {a: 1.0, b: 0.0}}}
            components: {vae: copy b, text_encoder: omit}
            dtype: fp32
            output: out.safetensors
            """
        let recipe = try Recipe(yaml: recipeText, path: "r.yaml", relativeTo: directory)
        let output = directory.appendingPathComponent("out.safetensors").path
        let plan = try MergeEngine.plan(recipe, outputPath: output)
        XCTAssertEqual(plan.items.count, 5, "the text encoder is omitted")
        try MergeEngine.run(plan, to: output)
        let merged = try SafeTensorsFile(url: URL(fileURLWithPath: output))
        func first(_ name: String) throws -> Float { try merged.tensor(name).scalars[0] }
        XCTAssertEqual(try first(names[0]), 3, accuracy: 1e-6, "IN00: all b")
        XCTAssertEqual(try first(names[1]), 2, accuracy: 1e-6, "attention in IN01: half and half")
        XCTAssertEqual(try first(names[2]), 1.5, accuracy: 1e-6, "M00 resnet: global 0.75 a + 0.25 b")
        XCTAssertEqual(try first(names[3]), 1, accuracy: 1e-6, "tensor glob beats the attention module rule")
        XCTAssertEqual(try first(names[4]), 3, accuracy: 1e-6, "VAE copied from b")
        XCTAssertNil(merged.info(names[5]))
        XCTAssertEqual(merged.metadata["jpgen_recipe"], recipeText)
        let inputs = try JSONSerialization.jsonObject(with: Data(merged.metadata["jpgen_inputs"]!.utf8)) as! [String: [String: String]]
        XCTAssertEqual(inputs["a"]?["sha256"], try SHA256Hasher.file(a))

        // Round trip: the recipe embedded in the output reproduces the same bytes.
        let again = try Recipe(yaml: merged.metadata["jpgen_recipe"]!, path: "embedded", relativeTo: directory)
        let second = directory.appendingPathComponent("again.safetensors").path
        try MergeEngine.run(try MergeEngine.plan(again, outputPath: second), to: second)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: output)), try Data(contentsOf: URL(fileURLWithPath: second)))
    }

    func testTIESDAREAndSlerpRunOnCheckpoints() throws {
        let base = try writeCheckpoint("base.safetensors", value: 1)
        let a = try writeCheckpoint("a.safetensors", value: 2), b = try writeCheckpoint("b.safetensors", value: 0.5)
        for method in ["ties", "dare_ties", "dare_linear", "task_arithmetic"] {
            let recipe = try Recipe(yaml: """
                inputs: {base: \(base.path), a: \(a.path), b: \(b.path)}
                method: \(method)
                base: base
                parameters: {weight: {a: 0.6, b: 0.4}, density: 0.5}
                seed: 7
                """)
            let out = try MergeEngine.mergeInMemory(try MergeEngine.plan(recipe, outputPath: nil))
            XCTAssertEqual(out.count, names.count, method)
            XCTAssertTrue(out.values.allSatisfy { $0.scalars.allSatisfy(\.isFinite) }, method)
        }
        let slerp = try Recipe(yaml: "inputs: {base: \(base.path), a: \(a.path)}\nmethod: slerp\nbase: base\nparameters: {t: 0}\n")
        let out = try MergeEngine.mergeInMemory(try MergeEngine.plan(slerp, outputPath: nil))
        XCTAssertEqual(out[names[0]]!.scalars[0], 1, accuracy: 1e-3, "t = 0 is the base")
    }

    func testFolderInputsGiveAFolder() throws {
        func folder(_ name: String, _ value: Float) throws -> URL {
            let root = directory.appendingPathComponent(name)
            for component in ["unet", "vae"] {
                let dir = root.appendingPathComponent(component)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try Data("{\"component\": \"\(component)\"}".utf8).write(to: dir.appendingPathComponent("config.json"))
                let url = dir.appendingPathComponent("diffusion_pytorch_model.safetensors")
                let writer = try SafeTensorsWriter(url: url, entries: [("conv_in.weight", .F32, [2, 2])], metadata: [:])
                try [value, value, value, value].withUnsafeBufferPointer { try writer.write("conv_in.weight", float32: $0) }
                try writer.finish()
            }
            try Data("{}".utf8).write(to: root.appendingPathComponent("model_index.json"))
            return root
        }
        let a = try folder("a", 1), b = try folder("b", 3)
        let recipe = try Recipe(yaml: "inputs: {a: \(a.path), b: \(b.path)}\nmethod: linear\nparameters: {weight: {a: 0.5, b: 0.5}}\ndtype: fp16\n")
        let output = directory.appendingPathComponent("merged")
        try MergeEngine.run(try MergeEngine.plan(recipe, outputPath: output.path), to: output.path)
        let unet = try SafeTensorsFile(url: output.appendingPathComponent("unet/diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(try unet.tensor("conv_in.weight").scalars, [2, 2, 2, 2])
        XCTAssertEqual(unet.info("conv_in.weight")?.dtype, .F16)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.appendingPathComponent("model_index.json").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.appendingPathComponent("vae/config.json").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".tmp") }, [])

        // Merging again onto the existing folder replaces it whole (weights 0.25/0.75 -> 2.5).
        let again = try Recipe(yaml: "inputs: {a: \(a.path), b: \(b.path)}\nmethod: linear\nparameters: {weight: {a: 0.25, b: 0.75}}\ndtype: fp16\n")
        try MergeEngine.run(try MergeEngine.plan(again, outputPath: output.path), to: output.path)
        let replaced = try SafeTensorsFile(url: output.appendingPathComponent("unet/diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(try replaced.tensor("conv_in.weight").scalars, [2.5, 2.5, 2.5, 2.5])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }, [])
    }

    func testCopiedComponentsBringTheirConfigs() throws {
        // Pipeline folders that differ in every config: "a" is a DDIM model, "b" an LCM one.
        func folder(_ name: String, _ value: Float, scheduler: String) throws -> URL {
            let root = directory.appendingPathComponent(name)
            for component in ["unet", "text_encoder"] {
                let dir = root.appendingPathComponent(component)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try Data("{\"from\": \"\(name)\"}".utf8).write(to: dir.appendingPathComponent("config.json"))
                let writer = try SafeTensorsWriter(url: dir.appendingPathComponent("model.safetensors"),
                                                   entries: [("conv_in.weight", .F32, [2])], metadata: [:])
                try [value, value].withUnsafeBufferPointer { try writer.write("conv_in.weight", float32: $0) }
                try writer.finish()
            }
            for (component, file) in [("tokenizer", "vocab.txt"), ("scheduler", "scheduler_config.json")] {
                let dir = root.appendingPathComponent(component)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try Data("\(component) of \(name)".utf8).write(to: dir.appendingPathComponent(file))
            }
            let index = "{\"_class_name\": \"StableDiffusionPipeline\", \"scheduler\": [\"diffusers\", \"\(scheduler)\"], \"unet\": [\"diffusers\", \"UNet2DConditionModel\"]}"
            try Data(index.utf8).write(to: root.appendingPathComponent("model_index.json"))
            return root
        }
        let a = try folder("a", 1, scheduler: "DDIMScheduler"), b = try folder("b", 3, scheduler: "LCMScheduler")
        func merged(_ components: String) throws -> URL {
            let recipe = try Recipe(yaml: "inputs: {a: \(a.path), b: \(b.path)}\nmethod: linear\nparameters: {weight: {a: 0.5, b: 0.5}}\ncomponents: \(components)\n")
            let output = directory.appendingPathComponent("merged-\(UUID().uuidString)")
            try MergeEngine.run(try MergeEngine.plan(recipe, outputPath: output.path), to: output.path)
            return output
        }
        func text(_ url: URL, _ path: String) throws -> String {
            try String(contentsOf: url.appendingPathComponent(path), encoding: .utf8)
        }
        func schedulerClass(_ url: URL) throws -> String? {
            let index = try JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("model_index.json"))) as? [String: Any]
            return (index?["scheduler"] as? [String])?.last
        }

        // The text encoder copied from b brings b's config and tokenizer; the scheduler stays a's.
        let encoder = try merged("{text_encoder: copy b}")
        XCTAssertEqual(try text(encoder, "text_encoder/config.json"), "{\"from\": \"b\"}")
        XCTAssertEqual(try text(encoder, "tokenizer/vocab.txt"), "tokenizer of b")
        XCTAssertEqual(try text(encoder, "unet/config.json"), "{\"from\": \"a\"}")
        XCTAssertEqual(try text(encoder, "scheduler/scheduler_config.json"), "scheduler of a")
        XCTAssertEqual(try schedulerClass(encoder), "DDIMScheduler")
        XCTAssertEqual(try SafeTensorsFile(url: encoder.appendingPathComponent("text_encoder/model.safetensors")).tensor("conv_in.weight").scalars, [3, 3])
        XCTAssertEqual(try SafeTensorsFile(url: encoder.appendingPathComponent("unet/model.safetensors")).tensor("conv_in.weight").scalars, [2, 2])

        // `scheduler: copy b` takes b's scheduler config and its model_index entry; a named tokenizer wins.
        let scheduler = try merged("{text_encoder: copy b, tokenizer: copy a, scheduler: copy b}")
        XCTAssertEqual(try text(scheduler, "scheduler/scheduler_config.json"), "scheduler of b")
        XCTAssertEqual(try schedulerClass(scheduler), "LCMScheduler")
        XCTAssertEqual(try text(scheduler, "tokenizer/vocab.txt"), "tokenizer of a")
    }

    func testBadRecipesAndInputsAreRefusedBeforeWriting() throws {
        let a = try writeCheckpoint("a.safetensors", value: 1)
        let missing = try writeCheckpoint("missing.safetensors", value: 1, drop: names[2])
        let shaped = try writeCheckpoint("shaped.safetensors", value: 1) { $0 == self.names[1] ? [3, 4] : [4, 3] }
        let output = directory.appendingPathComponent("never.safetensors")
        func error(_ yaml: String) -> String {
            do {
                let recipe = try Recipe(yaml: yaml, path: "r.yaml")
                try MergeEngine.run(try MergeEngine.plan(recipe, outputPath: output.path), to: output.path)
                return "no error"
            } catch { return (error as? LocalizedError)?.errorDescription ?? "\(error)" }
        }
        XCTAssertTrue(error("inputs: {a: \(a.path), b: \(missing.path)}\nmethod: linear\n")
                        .contains("\(names[2]) [4, 3]: missing from 'b'"))
        XCTAssertTrue(error("inputs: {a: \(a.path), b: \(shaped.path)}\nmethod: linear\n")
                        .contains("\(names[1]): [4, 3] in 'a' but [3, 4] in 'b'"))
        XCTAssertEqual(error("inputs: {a: \(a.path), b: \(a.path)}\nmethod: median\n"),
                       "r.yaml: unknown method 'median' (known: linear, add_difference, task_arithmetic, ties, dare_linear, dare_ties, slerp, passthrough)")
        XCTAssertEqual(error("inputs: {a: \(a.path), b: \(a.path)}\nmethod: ties\n"), "r.yaml: method ties needs 'base' (one of the inputs)")
        XCTAssertEqual(error("inputs: {a: \(a.path), b: /x/model.ckpt}\nmethod: linear\n"),
                       "input 'b' (/x/model.ckpt): pickle checkpoints are never unpickled (it runs code); convert it to .safetensors first")
        XCTAssertEqual(error("inputs: {a: \(a.path), b: \(a.path)}\nmethod: linear\nparameters: {weight: {a: 1, z: 2}}\n"),
                       "r.yaml: parameters.weight: 'z' is not an input")
        XCTAssertEqual(error("inputs: {a: \(a.path), b: \(a.path)}\nmethod: linear\nwieght: 2\n").prefix(31), "r.yaml: unknown key 'wieght' (k")
        XCTAssertEqual(error("inputs: {a: \(a.path), b: \(a.path)}\nmethod: linear\noverrides: [{blocks: [IN99], parameters: {}}]\n"),
                       "r.yaml: overrides[0]: unknown block 'IN99' (BASE, IN00.., M00, OUT00..)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "nothing written")
        // The output may not overwrite an input.
        let recipe = try Recipe(yaml: "inputs: {a: \(a.path), b: \(missing.path)}\nmethod: linear\n")
        XCTAssertThrowsError(try MergeEngine.plan(recipe, outputPath: a.path)) {
            XCTAssertEqual($0 as? MergingError, .output(path: a.path, message: "the output would overwrite input 'a'"))
        }
    }
}
