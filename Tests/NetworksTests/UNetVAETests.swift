// UNet and VAE against diffusers: tiny random-weight models written by Tools/fixtures/unet_vae.py
// (Tests/Fixtures/UNetVAE/<name>/: config.json, diffusion_pytorch_model.safetensors, io.safetensors).
// Tolerance: max abs difference <= 1e-4 * max(1, max |expected|), stated per comparison.

import Foundation
import Kernels
import SafeTensors
import XCTest
@testable import Networks

final class UNetVAETests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/UNetVAE")

    func folder(_ name: String) -> URL { Self.root.appendingPathComponent(name) }
    func io(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: folder(name).appendingPathComponent("io.safetensors"))
    }

    /// 1e-4 relative to the expected output's scale (at least 1e-4 absolute).
    func tolerance(_ expected: Tensor) -> Float {
        let peak = expected.scalars.reduce(Float(0)) { max($0, abs($1)) }
        return 1e-4 * max(1, peak)
    }

    func checkUNet(_ name: String) throws {
        let model = try UNet2DConditionModel(folder: folder(name))
        let f = try io(name)
        let out = try model(sample: try f.tensor("sample"), timestep: try f.tensor("timestep").scalars[0],
                            encoderHiddenStates: try f.tensor("encoder_hidden_states"),
                            addTextEmbeds: f.info("text_embeds") == nil ? nil : try f.tensor("text_embeds"),
                            addTimeIds: f.info("time_ids") == nil ? nil : try f.tensor("time_ids"))
        let expected = try f.tensor("output")
        assertClose(out, expected, tolerance: tolerance(expected), "\(name) output")
    }

    func testUNetSD1() throws { try checkUNet("unet_sd1") }
    func testUNetSD2LinearProjectionPerBlockHeads() throws { try checkUNet("unet_sd2") }
    func testUNetSDXLTextTime() throws { try checkUNet("unet_sdxl") }
    func testUNetTextAdditionEmbedding() throws { try checkUNet("unet_text") }

    func testUNetSDXLNeedsAddedConditioning() throws {
        let model = try UNet2DConditionModel(folder: folder("unet_sdxl"))
        let f = try io("unet_sdxl")
        XCTAssertThrowsError(try model(sample: try f.tensor("sample"), timestep: 1,
                                       encoderHiddenStates: try f.tensor("encoder_hidden_states"))) { error in
            guard case NetworksError.invalidInput = error else { return XCTFail("\(error)") }
        }
    }

    func testAutoencoderKL() throws {
        let vae = try AutoencoderKL(folder: folder("vae_kl"))
        let f = try io("vae_kl")
        let (mean, logvar) = try vae.encode(try f.tensor("image"))
        let em = try f.tensor("mean"), el = try f.tensor("logvar"), ed = try f.tensor("decoded")
        assertClose(mean, em, tolerance: tolerance(em), "vae_kl mean")
        assertClose(logvar, el, tolerance: tolerance(el), "vae_kl logvar")
        let decoded = try vae.decode(try f.tensor("latents"))
        assertClose(decoded, ed, tolerance: tolerance(ed), "vae_kl decoded")
        XCTAssertEqual(vae.config.scalingFactor, 0.18215)
        // decodeScaled(x) == decode(x / scaling_factor): tolerance 1e-5 (same code path).
        let lat = try f.tensor("latents")
        assertClose(try vae.decodeScaled(lat * 0.18215), decoded, tolerance: 1e-4, "decodeScaled")
    }

    func testAutoencoderTiny() throws {
        let taesd = try AutoencoderTiny(folder: folder("vae_tiny"))
        let f = try io("vae_tiny")
        let enc = try taesd.encode(try f.tensor("image"))
        let ee = try f.tensor("encoded"), ed = try f.tensor("decoded")
        assertClose(enc, ee, tolerance: tolerance(ee), "vae_tiny encoded")
        let dec = try taesd.decode(try f.tensor("latents"))
        assertClose(dec, ed, tolerance: tolerance(ed), "vae_tiny decoded")
    }

    func testStrictLoadingNamesMissingAndUnusedKeys() throws {
        let url = folder("vae_kl")
        let config = try loadConfig(AutoencoderKLConfig.self, from: url.appendingPathComponent("config.json"))
        let file = try SafeTensorsFile(url: url.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        var missing = tensors
        missing["decoder.conv_out.bias"] = nil
        XCTAssertThrowsError(try AutoencoderKL(config: config, weights: WeightStore(tensors: missing))) { error in
            XCTAssertEqual(error as? NetworksError, .missingKey("decoder.conv_out.bias"))
        }
        var extra = tensors
        extra["decoder.extra.weight"] = Tensor(shape: [1], repeating: 0)
        let store = WeightStore(tensors: extra)
        _ = try AutoencoderKL(config: config, weights: store)
        XCTAssertThrowsError(try store.finish()) { error in
            XCTAssertEqual(error as? NetworksError, .unusedKeys(["decoder.extra.weight"]))
        }
        var wrong = tensors
        wrong["quant_conv.weight"] = Tensor(shape: [8, 8, 1, 2], repeating: 0)
        XCTAssertThrowsError(try AutoencoderKL(config: config, weights: WeightStore(tensors: wrong))) { error in
            XCTAssertEqual(error as? NetworksError,
                           .shapeMismatch(key: "quant_conv.weight", expected: [8, 8, 1, 1], actual: [8, 8, 1, 2]))
        }
    }

    func testConfigQuirkHeadsFromAttentionHeadDim() throws {
        let url = folder("unet_sd2").appendingPathComponent("config.json")
        let config = try loadConfig(UNet2DConditionConfig.self, from: url)
        XCTAssertEqual(config.headsPerBlock, [2, 4])
        XCTAssertTrue(config.useLinearProjection)
    }

    // Single-file checkpoints: the fixture weights under LDM names (stored as f16; the script checks
    // the names by converting them back with diffusers' single-file conversion). Weights rounded to
    // f16 move the outputs, so the tolerance is 2e-2 x the output's scale; a wrong mapping
    // (swapped or transposed tensors) is off by far more than that.
    func checkSingleFile(_ file: String, unet: String, family: ModelFamily) throws {
        let url = Self.root.appendingPathComponent(file)
        XCTAssertEqual(try ModelFamily.detect(WeightStore(file: url)), family)
        let ucfg = try loadConfig(UNet2DConditionConfig.self, from: folder(unet).appendingPathComponent("config.json"))
        let model = try UNet2DConditionModel(singleFile: url, config: ucfg)
        let f = try io(unet)
        let out = try model(sample: try f.tensor("sample"), timestep: try f.tensor("timestep").scalars[0],
                            encoderHiddenStates: try f.tensor("encoder_hidden_states"),
                            addTextEmbeds: f.info("text_embeds") == nil ? nil : try f.tensor("text_embeds"),
                            addTimeIds: f.info("time_ids") == nil ? nil : try f.tensor("time_ids"))
        let expected = try f.tensor("output")
        assertClose(out, expected, tolerance: 200 * tolerance(expected), "\(file) UNet output")

        let vcfg = try loadConfig(AutoencoderKLConfig.self, from: folder("vae_kl").appendingPathComponent("config.json"))
        let vae = try AutoencoderKL(singleFile: url, config: vcfg)
        let v = try io("vae_kl")
        let ed = try v.tensor("decoded"), em = try v.tensor("mean")
        assertClose(try vae.decode(try v.tensor("latents")), ed, tolerance: 200 * tolerance(ed), "\(file) VAE decode")
        assertClose(try vae.encode(try v.tensor("image")).mean, em, tolerance: 200 * tolerance(em), "\(file) VAE mean")
    }

    func testSingleFileSD1() throws { try checkSingleFile("single_sd1.safetensors", unet: "unet_sd1", family: .sd1) }
    func testSingleFileSDXL() throws { try checkSingleFile("single_sdxl.safetensors", unet: "unet_sdxl", family: .sdxl) }

    func testSingleFileUnknownKeyIsNamed() throws {
        let url = Self.root.appendingPathComponent("single_sd1.safetensors")
        let file = try SafeTensorsFile(url: url)
        var tensors: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix("model.diffusion_model.") { tensors[name] = try file.tensor(name) }
        tensors["model.diffusion_model.extra_block.weight"] = Tensor(shape: [1], repeating: 0)
        let cfg = try loadConfig(UNet2DConditionConfig.self, from: folder("unet_sd1").appendingPathComponent("config.json"))
        let view = try LDMKeyMap.unet(WeightStore(tensors: tensors), config: cfg)
        _ = try UNet2DConditionModel(config: cfg, weights: view)
        XCTAssertThrowsError(try view.finish()) { error in
            // The store reports the name as stored in the checkpoint.
            XCTAssertEqual(error as? NetworksError, .unusedKeys(["model.diffusion_model.extra_block.weight"]))
        }
    }

    func testFullSizeConfigsParse() throws {
        XCTAssertEqual(ModelFamily.sd1.unetConfig.headsPerBlock, [8, 8, 8, 8])
        XCTAssertEqual(ModelFamily.sd2.unetConfig.headsPerBlock, [5, 10, 20, 20])
        XCTAssertEqual(ModelFamily.sdxl.unetConfig.transformerLayers, [1, 2, 10])
        XCTAssertEqual(ModelFamily.sdxl.vaeConfig.scalingFactor, 0.13025)
        for f in ModelFamily.allCases { XCTAssertNoThrow(try f.unetConfig.validate(file: f.rawValue)) }
    }
}
