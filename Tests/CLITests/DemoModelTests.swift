// The bundled demo models through jpgen, against the demo-world script's own PyTorch sampling loop
// (Tools/fixtures/demo_models.py runs Tools/demo-world/train.py `sample` on Models/demo-lcm and
// Models/demo-base): every rendering at least 40 dB PSNR. Regenerate the fixtures after exporting
// new demo models.

import Foundation
import Imaging
import XCTest

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL
private let demoFixtures = repository.appendingPathComponent("Tests/Fixtures/Demo")

final class DemoModelTests: XCTestCase {
    struct Case: Decodable {
        let model, prompt, sampler, expected: String
        let seed, steps: Int
        let cfg: Double
    }

    func testDemoModelsRenderAsThePyTorchLoop() throws {
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: demoFixtures.appendingPathComponent("cases.json")))
        XCTAssertGreaterThanOrEqual(cases.count, 12)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jpgen-demo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for c in cases {
            let output = dir.appendingPathComponent(c.expected)
            let r = try runJPGen([c.prompt, "--model", repository.appendingPathComponent("Models/\(c.model)").path,
                                  "--sampler", c.sampler, "--steps", "\(c.steps)", "--cfg", "\(c.cfg)", "--seed", "\(c.seed)",
                                  "--output", output.path, "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            guard r.status == 0 else { continue }
            let ours = try readPNG(output).image
            let reference = try readPNG(demoFixtures.appendingPathComponent(c.expected)).image
            let value = psnr(ours, reference)
            XCTAssertGreaterThanOrEqual(value, 40, "\(c.model) \(c.prompt) seed \(c.seed): PSNR \(value) dB")
        }
    }
}
