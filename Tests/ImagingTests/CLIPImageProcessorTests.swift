import Foundation
import Kernels
import SafeTensors
import XCTest

@testable import Imaging

/// CLIP preprocessing against transformers' CLIPImageProcessorPil (Tools/fixtures/clip_image_processor.py):
/// Pillow-exact resampling for every filter, centre crop, rescale and normalise.
final class CLIPImageProcessorTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Imaging")

    func testMatchesTransformersForEveryFilterAndConfig() throws {
        let file = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("clip_preprocess.safetensors"))
        let configs = try JSONDecoder().decode([String: CLIPImageProcessorConfig].self,
                                               from: Data(contentsOf: Self.fixtures.appendingPathComponent("clip_preprocess.json")))
        XCTAssertEqual(configs.count, 7)
        for (name, config) in configs.sorted(by: { $0.key < $1.key }) {
            let input = try file.tensor("\(name).input")   // [H, W, 3] bytes
            let image = try RGB8Image(width: input.shape[1], height: input.shape[0], pixels: input.scalars.map { UInt8($0) })
            let expected = try file.tensor("\(name).pixel_values")
            let actual = try CLIPImageProcessor(config: config)(image)
            XCTAssertEqual(actual.shape, expected.shape, name)
            guard actual.shape == expected.shape else { continue }
            // Tolerance: 1e-6. The resampled bytes are identical; only float32 rounding of the
            // normalisation could differ.
            let diff = maxAbsDifference(actual, expected)
            XCTAssertLessThanOrEqual(diff, 1e-6, "\(name): max abs difference \(diff)")
        }
    }

    func testResizedSizeFollowsTheShortestEdge() {
        let processor = CLIPImageProcessor()
        XCTAssertTrue(processor.resizedSize(width: 640, height: 480) == (298, 224))
        XCTAssertTrue(processor.resizedSize(width: 480, height: 640) == (224, 298))
        XCTAssertTrue(processor.resizedSize(width: 64, height: 64) == (224, 224))
    }

    func testBadConfigIsNamed() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clipcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertEqual(try CLIPImageProcessorConfig.load(folder: folder), CLIPImageProcessorConfig(), "absent file: CLIP defaults")
        let url = folder.appendingPathComponent("preprocessor_config.json")
        try Data(#"{"image_mean": [0.5, 0.5]}"#.utf8).write(to: url)
        XCTAssertThrowsError(try CLIPImageProcessorConfig.load(folder: folder)) {
            guard case .cannotRead(let file, _) = $0 as? ImagingError else { return XCTFail("\($0)") }
            XCTAssertEqual(file, url.path)
        }
        try Data("{not json".utf8).write(to: url)
        XCTAssertThrowsError(try CLIPImageProcessorConfig.load(folder: folder))
    }
}
