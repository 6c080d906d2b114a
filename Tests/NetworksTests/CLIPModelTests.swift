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
