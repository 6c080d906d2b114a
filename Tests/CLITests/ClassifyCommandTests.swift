// `jpgen classify` end to end: PNG -> CLIPImageProcessor -> CLIP towers -> softmax, against transformers
// (Tools/fixtures/clip_model.py wrote the reference probabilities for the same image, labels and template).

import Foundation
import XCTest

final class ClassifyCommandTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/CLIP")

    struct Reference: Decodable { let labels: [String]; let template: String; let probabilities: [Double] }

    func testProbabilitiesEqualTransformers() throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: fixtures.appendingPathComponent("classify.json")))
        let r = try runJPGen(["classify", fixtures.appendingPathComponent("classify.png").path,
                              "--labels", reference.labels.joined(separator: ","), "--template", reference.template,
                              "--model", fixtures.appendingPathComponent("tiny-clip").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])["labels"] as! [[String: Any]]
        XCTAssertEqual(rows.map { $0["label"] as! String }, reference.labels)
        for (row, expected) in zip(rows, reference.probabilities) {
            // Tolerance: 1e-4 absolute on each probability.
            XCTAssertEqual(row["probability"] as! Double, expected, accuracy: 1e-4, row["label"] as! String)
        }
        let table = try runJPGen(["classify", fixtures.appendingPathComponent("classify.png").path,
                                  "--labels", reference.labels.joined(separator: ","), "--template", reference.template,
                                  "--model", fixtures.appendingPathComponent("tiny-clip").path])
        XCTAssertTrue(table.stdout.hasPrefix(" 0.3492  富士山"), table.stdout)
    }

    /// Dual encoders (CLIP vision + Japanese BERT or XLM-R text tower, Tools/fixtures/dual_encoder.py):
    /// Japanese labels go through the tower's own tokenizer (MeCab + WordPiece, SentencePiece).
    func testDualEncoderProbabilitiesEqualTransformers() throws {
        for tower in ["bert", "xlmr"] {
            let reference = try JSONDecoder().decode(
                Reference.self, from: Data(contentsOf: fixtures.appendingPathComponent("tiny-dual-\(tower)-classify.json")))
            let r = try runJPGen(["classify", fixtures.appendingPathComponent("classify.png").path,
                                  "--labels", reference.labels.joined(separator: ","), "--template", reference.template,
                                  "--model", fixtures.appendingPathComponent("tiny-dual-\(tower)").path, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let rows = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])["labels"] as! [[String: Any]]
            XCTAssertEqual(rows.map { $0["label"] as! String }, reference.labels, tower)
            for (row, expected) in zip(rows, reference.probabilities) {
                // Tolerance: 1e-4 absolute on each probability.
                XCTAssertEqual(row["probability"] as! Double, expected, accuracy: 1e-4, "\(tower) \(row["label"] as! String)")
            }
        }
    }

    func testBadInputsAreClearErrors() throws {
        let model = fixtures.appendingPathComponent("tiny-clip").path
        let notPNG = try runJPGen(["classify", model + "/config.json", "--labels", "a,b", "--model", model])
        XCTAssertNotEqual(notPNG.status, 0)
        XCTAssertTrue(notPNG.stderr.contains("config.json: not a PNG file"), notPNG.stderr)
        let oneLabel = try runJPGen(["classify", fixtures.appendingPathComponent("classify.png").path, "--labels", "a", "--model", model])
        XCTAssertNotEqual(oneLabel.status, 0)
        XCTAssertTrue(oneLabel.stderr.contains("at least two"), oneLabel.stderr)
        let noModel = try runJPGen(["classify", fixtures.appendingPathComponent("classify.png").path, "--labels", "a,b", "--model", "/nonexistent"])
        XCTAssertNotEqual(noModel.status, 0)
        XCTAssertTrue(noModel.stderr.contains("/nonexistent/config.json"), noModel.stderr)
    }
}
