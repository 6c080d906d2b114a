// Evaluator pieces that the CLI tests do not reach: image file names, the scorer's identity, a caller-given
// model identity with a budget, and a stored prompt id whose text differs from the suite's (refused, not reused).

import Diffusion
import Foundation
import Imaging
import XCTest

@testable import Evaluation

private let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Models")

final class EvaluatorTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("evaluator-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func testImageFileNamesAreSafeAndOnePerKey() {
        let s = GenerationSettings(sampler: "lcm", steps: 4, cfg: 1, width: 64, height: 48)
        XCTAssertEqual(Evaluator.imageFileName(promptId: "enoshima-fuji", seed: 3, settings: s), "enoshima-fuji-3-lcm-4-cfg1-64x48.png")
        var t = s
        t.cfg = 7.5
        XCTAssertEqual(Evaluator.imageFileName(promptId: "a/b c", seed: 1, settings: t), "a_b_c-1-lcm-4-cfg7.5-64x48.png")
        XCTAssertEqual(Evaluator.fileSafe("富士山-夜.v2"), "富士山-夜.v2", "Japanese letters are kept")
        XCTAssertEqual(Evaluator.fileSafe("../x"), "_._x")
        XCTAssertEqual(Evaluator.displayName(sampler: "dpmpp_2m_karras"), "DPM++ 2M Karras")
    }

    func testScorerIdentityNamesTheFolderAndItsWeights() throws {
        let id = try Evaluator.scorerIdentity(folder: models.appendingPathComponent("demo-scorer"))
        XCTAssertTrue(id.hasPrefix("demo-scorer@"), id)
        XCTAssertEqual(id.count, "demo-scorer@".count + 10)
        XCTAssertThrowsError(try Evaluator.scorerIdentity(folder: directory)) {
            XCTAssertEqual($0 as? EvaluationError,
                           .unreadableFile(path: self.directory.path, reason: "the scorer folder has no .safetensors weights"))
        }
    }

    /// A model named and hashed by the caller (a merge candidate in memory): rows, image folder and PNG carry that
    /// identity, and --limit-style budgets stop early and resume.
    func testCallerGivenIdentityAndLimit() throws {
        let suite = try PromptSuite(yaml: "seeds: [1, 2]\nprompts:\n  - {id: fuji, ja: 富士山, tags: [fuji]}\n", name: "s")
        let store = try ResultsStore(url: directory.appendingPathComponent("r.sqlite"))
        let scorer = try CLIPScorer(folder: models.appendingPathComponent("demo-scorer"))
        let evaluator = try Evaluator(suite: suite, split: nil, store: store, scorer: scorer, imageFolder: directory.appendingPathComponent("img"))
        let model = try DiffusionModel.load(models.appendingPathComponent("demo-lcm").path)
        var seen: [EvaluationProgress] = []
        let first = try evaluator.evaluate(model: model, name: "candidate 7", hash: "c0ffee", settings: GenerationSettings(), limit: 1) {
            seen.append($0)
        }
        XCTAssertEqual([first.generated, first.alreadyStored, first.cases], [1, 0, 2])
        XCTAssertEqual(seen.map { "\($0.model) \($0.promptId) \($0.seed) \($0.done)/\($0.total)" }, ["candidate 7 fuji 1 1/2"])
        let second = try evaluator.evaluate(model: model, name: "candidate 7", hash: "c0ffee", settings: GenerationSettings())
        XCTAssertEqual([second.generated, second.alreadyStored], [1, 1])
        let rows = try store.all()
        XCTAssertEqual(rows.map(\.model), ["candidate 7", "candidate 7"])
        XCTAssertEqual(rows.map(\.modelHash), ["c0ffee", "c0ffee"])
        XCTAssertEqual(rows.map(\.seed), [1, 2])
        XCTAssertEqual(try evaluator.storedRows(hash: "c0ffee", settings: second.settings), rows)
        XCTAssertEqual(rows[0].imagePath, directory.appendingPathComponent("img/candidate_7-c0ffee/fuji-1-lcm-4-cfg1-64x64.png").path)
        let png = try readPNG(URL(fileURLWithPath: rows[1].imagePath))
        XCTAssertTrue(png.text("parameters")?.contains("Model hash: c0ffee, Model: candidate 7") ?? false)
    }

    func testAStoredPromptIdWithAnotherTextIsRefused() throws {
        let suite = try PromptSuite(yaml: "seeds: [1]\nprompts:\n  - {id: fuji, ja: 富士山}\n", name: "new-suite")
        let store = try ResultsStore(url: directory.appendingPathComponent("r.sqlite"))
        let scorer = try CLIPScorer(folder: models.appendingPathComponent("demo-scorer"))
        let evaluator = try Evaluator(suite: suite, split: nil, store: store, scorer: scorer, imageFolder: directory)
        let model = try DiffusionModel.load(models.appendingPathComponent("demo-lcm").path)
        let hash = try ModelHash.short(files: model.identityFiles)
        let settings = GenerationSettings().resolved(for: model)
        try store.insert(ImageResult(model: "demo-lcm", modelHash: hash, suite: "old-suite", promptId: "fuji", prompt: "海", tags: [],
                                     seed: 1, settings: settings.json, scorer: evaluator.scorerID, score: 0.5, seconds: 1,
                                     imagePath: "/x.png"))
        XCTAssertThrowsError(try evaluator.evaluate(model: model, settings: GenerationSettings())) {
            guard case .store(let path, let message) = $0 as? EvaluationError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, store.url.path)
            XCTAssertTrue(message.contains("prompt id 'fuji' is stored with the text '海' (suite 'old-suite')"), message)
        }
        XCTAssertEqual(try store.all().count, 1, "nothing added")
    }
}
