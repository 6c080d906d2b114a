import Foundation
import Kernels
import SafeTensors
import XCTest

@testable import Networks

/// The CLIP scorer (vision tower, text tower, logits) against transformers' CLIPModel on a tiny
/// random-weight model (Tools/fixtures/clip_model.py).
final class CLIPModelTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/CLIP")

    func ids(_ t: Tensor) -> [[Int]] {
        let rows = t.shape[0], cols = t.shape[1], s = t.scalars
        return (0..<rows).map { r in (0..<cols).map { Int(s[r * cols + $0]) } }
    }

    func testEmbeddingsAndLogitsMatchTransformers() throws {
        let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("tiny-clip-expected.safetensors"))
        let model = try CLIPModel.load(folder: Self.fixtures.appendingPathComponent("tiny-clip"))
        let pixels = try expected.tensor("pixel_values")
        let vision = try model.vision(pixelValues: pixels)
        // Tolerance: max abs difference 1e-4 on every output.
        XCTAssertLessThanOrEqual(maxAbsDifference(vision.lastHiddenState, try expected.tensor("vision_last_hidden_state")), 1e-4)
        XCTAssertLessThanOrEqual(maxAbsDifference(vision.pooled, try expected.tensor("vision_pooled")), 1e-4)
        let image = try model.imageEmbeddings(pixelValues: pixels)
        XCTAssertLessThanOrEqual(maxAbsDifference(image, try expected.tensor("image_embeds")), 1e-4)
        let text = try model.textEmbeddings(ids: ids(try expected.tensor("input_ids")),
                                            attentionMask: ids(try expected.tensor("attention_mask")))
        XCTAssertLessThanOrEqual(maxAbsDifference(text, try expected.tensor("text_embeds")), 1e-4)
        let logits = model.logitsPerImage(imageEmbeddings: image, textEmbeddings: text)
        XCTAssertEqual(logits.shape, [3, 2])
        XCTAssertLessThanOrEqual(maxAbsDifference(logits, try expected.tensor("logits_per_image")), 1e-4)
    }

    /// VisionTextDualEncoderModel (CLIP vision + BERT / XLM-R text tower with pooler and projection)
    /// against transformers (Tools/fixtures/dual_encoder.py).
    func testDualEncodersMatchTransformers() throws {
        for tower in ["bert", "xlmr"] {
            let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("tiny-dual-\(tower)-expected.safetensors"))
            let model = try CLIPModel.load(folder: Self.fixtures.appendingPathComponent("tiny-dual-\(tower)"))
            let ids = self.ids(try expected.tensor("input_ids")), mask = self.ids(try expected.tensor("attention_mask"))
            // Tolerance: max abs difference 1e-4 on every output.
            let output = try model.text(ids: ids, attentionMask: mask)
            XCTAssertLessThanOrEqual(maxAbsDifference(try XCTUnwrap(output.pooled), try expected.tensor("text_pooled")), 1e-4, tower)
            let image = try model.imageEmbeddings(pixelValues: try expected.tensor("pixel_values"))
            XCTAssertLessThanOrEqual(maxAbsDifference(image, try expected.tensor("image_embeds")), 1e-4, tower)
            let text = try model.textEmbeddings(ids: ids, attentionMask: mask)
            XCTAssertLessThanOrEqual(maxAbsDifference(text, try expected.tensor("text_embeds")), 1e-4, tower)
            let logits = model.logitsPerImage(imageEmbeddings: image, textEmbeddings: text)
            XCTAssertEqual(logits.shape, [2, 3])
            XCTAssertLessThanOrEqual(maxAbsDifference(logits, try expected.tensor("logits_per_image")), 1e-4, tower)
        }
    }

    /// transformers 4 saved a dual encoder's vision tower one level deeper (vision_model.vision_model.*);
    /// such a folder loads to the same model. A non-CLIP vision tower is refused by name.
    func testDualEncoderLayouts() throws {
        let source = Self.fixtures.appendingPathComponent("tiny-dual-bert")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dual-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = try String(contentsOf: source.appendingPathComponent("config.json"), encoding: .utf8)
        try config.write(to: folder.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        let file = try SafeTensorsFile(url: source.appendingPathComponent("model.safetensors"))
        let renamed = { (name: String) in name.hasPrefix("vision_model.") ? "vision_model." + name : name }
        let writer = try SafeTensorsWriter(url: folder.appendingPathComponent("model.safetensors"),
                                           entries: file.names.map { (renamed($0), .F32, file.info($0)!.shape) }, metadata: [:])
        for name in file.names {
            let t = try file.tensor(name)
            try t.withUnsafeBufferPointer { try writer.write(renamed(name), float32: $0) }
        }
        try writer.finish()
        let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("tiny-dual-bert-expected.safetensors"))
        let image = try CLIPModel.load(folder: folder).imageEmbeddings(pixelValues: try expected.tensor("pixel_values"))
        XCTAssertLessThanOrEqual(maxAbsDifference(image, try expected.tensor("image_embeds")), 1e-4)

        try config.replacingOccurrences(of: "\"clip_vision_model\"", with: "\"vit\"")
            .write(to: folder.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPModel.load(folder: folder)) {
            XCTAssertTrue("\($0)".contains("vision_config.model_type vit"), "\($0)")
        }
    }

    func testBadInputsAreNamed() throws {
        let model = try CLIPModel.load(folder: Self.fixtures.appendingPathComponent("tiny-clip"))
        XCTAssertThrowsError(try model.vision(pixelValues: Tensor(shape: [1, 3, 16, 16]))) {
            guard case .invalidInput(let message) = $0 as? NetworksError else { return XCTFail("\($0)") }
            XCTAssertTrue(message.contains("[B, 3, 32, 32]"), message)
        }
        // A folder whose weights lack a vision tensor names it.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("tiny-clip/config.json"),
                                         to: folder.appendingPathComponent("config.json"))
        let source = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("tiny-clip/model.safetensors"))
        let kept = source.names.filter { $0 != "vision_model.post_layernorm.weight" }
        let writer = try SafeTensorsWriter(url: folder.appendingPathComponent("model.safetensors"),
                                           entries: kept.map { ($0, .F32, source.info($0)!.shape) }, metadata: [:])
        for name in kept {
            let t = try source.tensor(name)
            try t.withUnsafeBufferPointer { try writer.write(name, float32: $0) }
        }
        try writer.finish()
        XCTAssertThrowsError(try CLIPModel.load(folder: folder)) {
            XCTAssertEqual($0 as? NetworksError, .missingKey("post_layernorm.weight"))
        }
    }
}
