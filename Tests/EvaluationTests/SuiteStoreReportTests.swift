import Foundation
import GRDB
import XCTest

@testable import Evaluation

final class PromptSuiteTests: XCTestCase {
    func testParsesTheDocumentedForm() throws {
        let suite = try PromptSuite(yaml: """
            seeds: [1, 2]
            prompts:
              - {id: enoshima-fuji, ja: 江ノ島と富士山が見える風景, en: A landscape with Enoshima and Mount Fuji, tags: [landscape], split: search}
              - {id: pagoda-night, ja: 夜の五重塔と月, tags: [night, culture], seeds: [7], split: held-out}
              - {id: sea, ja: 海}
            """, name: "t")
        XCTAssertEqual(suite.prompts.count, 3)
        XCTAssertEqual(suite.prompts[0].en, "A landscape with Enoshima and Mount Fuji")
        XCTAssertEqual(suite.prompts[1].seeds, [7])
        XCTAssertEqual(suite.prompts[2].seeds, [1, 2])
        XCTAssertEqual(suite.prompts(in: .search).map(\.id), ["enoshima-fuji", "sea"])
        XCTAssertEqual(suite.prompts(in: .heldOut).map(\.id), ["pagoda-night", "sea"])
        XCTAssertEqual(suite.cases().count, 5)
    }

    func testBadSuitesNameTheProblem() {
        let cases: [(String, String)] = [
            ("seeds: [1]\nprompts:\n  - {id: a, ja: 海}\n  - {id: a, ja: 空}\n", "duplicate prompt id 'a'"),
            ("seeds: [1]\nprompts:\n  - {id: a, ja: '  '}\n", "prompt 'a' has an empty 'ja' text"),
            ("seeds: [1]\nprompts:\n  - {id: a, en: sea}\n", "prompt 'a' has no 'ja' text"),
            ("seeds: [1]\nprompts:\n  - {ja: 海}\n", "prompt #1 has no 'id'"),
            ("prompts:\n  - {id: a, ja: 海}\n", "prompt 'a' has no seeds (set 'seeds' on the suite or the prompt)"),
            ("seeds: [1]\nprompts:\n  - {id: a, ja: 海, split: train}\n", "prompt 'a': unknown split 'train' (use search or held-out)"),
            ("seeds: [1]\n", "missing or empty 'prompts' list"),
        ]
        for (yaml, reason) in cases {
            XCTAssertThrowsError(try PromptSuite(yaml: yaml, name: "s", path: "s.yaml")) {
                XCTAssertEqual($0 as? EvaluationError, .invalidSuite(path: "s.yaml", reason: reason))
            }
        }
        XCTAssertThrowsError(try PromptSuite(contentsOf: URL(fileURLWithPath: "/nonexistent/suite.yaml"))) {
            guard case .unreadableFile(let path, _) = $0 as? EvaluationError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, "/nonexistent/suite.yaml")
        }
    }

    func testShippedSuitesAreValid() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/prompts")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertTrue(files.contains("general-ja.yaml"))
        let general = try PromptSuite(contentsOf: folder.appendingPathComponent("general-ja.yaml"))
        XCTAssertGreaterThanOrEqual(general.prompts.count, 200)
        XCTAssertTrue(general.prompts.allSatisfy { $0.en != nil }, "every general prompt has an English version")
        for required in ["江ノ島と富士山が見える風景", "子猫を抱いた帽子をかぶった女性、髪はブラウンで長くカーリー",
                         "樅木の下でフルートを吹く女性", "コートダジュールのニース海岸の風景画"] {
            XCTAssertTrue(general.prompts.contains { $0.ja == required }, required)
        }
        let demo = try PromptSuite(contentsOf: folder.appendingPathComponent("demo-world.yaml"))
        XCTAssertGreaterThanOrEqual(demo.prompts.count, 100)
        XCTAssertGreaterThanOrEqual(demo.prompts(in: .heldOut).count, 100, "held-out prompts")
        // A held-out prompt never repeats a search prompt's combination of subjects, time and style
        // (extras such as snow aside): the held-out split judges generalisation.
        let extras: Set<String> = ["snow", "clouds", "moon"]
        let combination = { (p: PromptSuite.Prompt) in Set(p.tags.filter { !extras.contains($0) }) }
        let searched = Set(demo.prompts.filter { $0.split == .search }.map(combination))
        for prompt in demo.prompts where prompt.split == .heldOut {
            XCTAssertFalse(searched.contains(combination(prompt)), "held-out \(prompt.id) repeats a search combination")
        }
        XCTAssertTrue(demo.prompts.contains { $0.ja == "江ノ島と富士山が見える風景" })
        for file in files {
            let suite = try PromptSuite(contentsOf: folder.appendingPathComponent(file))
            XCTAssertFalse(suite.prompts.isEmpty, file)
        }
    }
}

final class StatisticsTests: XCTestCase {
    func testStudentQuantilesAndConfidenceInterval() {
        XCTAssertEqual(studentT975(degreesOfFreedom: 1), 12.706205, accuracy: 1e-6)
        XCTAssertEqual(studentT975(degreesOfFreedom: 30), 2.042272, accuracy: 1e-6)
        // scipy.stats.t.ppf(0.975, df) for df = 40, 100, 1000.
        XCTAssertEqual(studentT975(degreesOfFreedom: 40), 2.021075, accuracy: 1e-4)
        XCTAssertEqual(studentT975(degreesOfFreedom: 100), 1.983972, accuracy: 1e-4)
        XCTAssertEqual(studentT975(degreesOfFreedom: 1000), 1.962339, accuracy: 1e-4)
        let s = ScoreSummary([1, 2, 3, 4])
        XCTAssertEqual(s.mean, 2.5)
        XCTAssertEqual(s.standardDeviation, (5.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(s.ci95, 3.182446 * (5.0 / 3).squareRoot() / 2, accuracy: 1e-6)
        XCTAssertEqual(ScoreSummary([0.7]).ci95, 0)
        XCTAssertTrue(ScoreSummary([]).mean.isNaN)
        XCTAssertEqual(clipScore(cosine: 0.3), 0.75, accuracy: 1e-12)
        XCTAssertEqual(clipScore(cosine: -0.2), 0)
    }
}

final class ResultsStoreTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("results-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func row(_ model: String, _ prompt: String, _ seed: UInt64, _ score: Double, tags: [String] = ["landscape"]) -> ImageResult {
        ImageResult(model: model, modelHash: "hash-\(model)", suite: "demo", promptId: prompt, prompt: "富士山 \(prompt)",
                    tags: tags, seed: seed, settings: #"{"sampler":"lcm","steps":4}"#, scorer: "demo-scorer",
                    score: score, seconds: 0.25, imagePath: directory.appendingPathComponent("img/\(model)-\(prompt)-\(seed).png").path)
    }

    func testInterruptedEvaluationResumesWithoutDuplicateOrMissingRows() throws {
        let url = directory.appendingPathComponent("results.sqlite")
        let work = (1...3).flatMap { p in (1...2).map { s in ("p\(p)", UInt64(s)) } }
        // First run stops after 4 of 6 images.
        do {
            let store = try ResultsStore(url: url)
            for (prompt, seed) in work.prefix(4) { XCTAssertTrue(try store.insert(row("m", prompt, seed, 0.5))) }
        }
        // The resumed run skips what is stored and does the rest.
        let store = try ResultsStore(url: url)
        let done = try store.keys()
        var evaluated = 0
        for (prompt, seed) in work {
            let key = ImageKey(modelHash: "hash-m", promptId: prompt, seed: seed, settings: #"{"sampler":"lcm","steps":4}"#, scorer: "demo-scorer")
            if done.contains(key) { continue }
            evaluated += 1
            XCTAssertTrue(try store.insert(row("m", prompt, seed, 0.5)))
        }
        XCTAssertEqual(evaluated, 2)
        XCTAssertFalse(try store.insert(row("m", "p1", 1, 0.9)), "a row already stored is not duplicated")
        let rows = try store.all()
        XCTAssertEqual(rows.count, 6)
        XCTAssertEqual(Set(rows.map { "\($0.promptId)/\($0.seed)" }).count, 6)
        XCTAssertEqual(rows.first { $0.promptId == "p1" && $0.seed == 1 }?.score, 0.5)
        XCTAssertThrowsError(try store.insert(row("m", "p9", 1, .nan))) {
            guard case .invalidRow = $0 as? EvaluationError else { return XCTFail("\($0)") }
        }
    }

    func testNewStoreInAFolderThatDoesNotExistYet() throws {
        let url = directory.appendingPathComponent("runs/today/results.sqlite")
        let store = try ResultsStore(url: url)
        XCTAssertTrue(try store.insert(row("m", "p1", 1, 0.5)))
        XCTAssertEqual(try ResultsStore(url: url).all().count, 1)
        // A path under a regular file is still a clear error naming the path.
        let file = directory.appendingPathComponent("plain-file")
        try Data("x".utf8).write(to: file)
        XCTAssertThrowsError(try ResultsStore(url: file.appendingPathComponent("r.sqlite"))) {
            XCTAssertTrue("\($0)".contains("plain-file/r.sqlite"), "\($0)")
        }
    }

    func testOlderSchemaIsMigratedWithItsRows() throws {
        let url = directory.appendingPathComponent("old.sqlite")
        do {
            let queue = try DatabaseQueue(path: url.path)
            try ResultsStore.migrator.migrate(queue, upTo: "v1-images")
            try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO image (model, modelHash, promptId, seed, settings, score, seconds, imagePath, createdAt)
                    VALUES ('old', 'h0', 'fuji', 3, '{}', 0.61, 1.5, 'a.png', '2026-01-01 00:00:00.000')
                    """)
            }
        }
        let store = try ResultsStore(url: url)
        let rows = try store.all()
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows[0].model, "old")
        XCTAssertEqual(rows[0].score, 0.61)
        XCTAssertEqual(rows[0].suite, "")
        XCTAssertEqual(rows[0].tagList, [])
        XCTAssertTrue(try store.insert(row("new", "fuji", 3, 0.7)))
    }

    func testNewerSchemaIsRefused() throws {
        let url = directory.appendingPathComponent("new.sqlite")
        _ = try ResultsStore(url: url)
        let queue = try DatabaseQueue(path: url.path)
        try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v9-future')") }
        XCTAssertThrowsError(try ResultsStore(url: url)) {
            XCTAssertEqual($0 as? EvaluationError, .newerStore(path: url.path, migrations: ["v9-future"]))
        }
    }

    func testSummaryTableJSONAndReport() throws {
        let store = try ResultsStore(url: directory.appendingPathComponent("r.sqlite"))
        for (model, base) in [("base", 0.4), ("merged", 0.6)] {
            for p in 1...3 { for s in 1...2 { try store.insert(row(model, "p\(p)", UInt64(s), base + Double(p) * 0.01 + Double(s) * 0.001, tags: p == 1 ? ["night"] : ["day"])) } }
        }
        let rows = try store.all()
        let summaries = summarize(rows)
        XCTAssertEqual(summaries.map(\.name), ["base", "merged"])
        XCTAssertEqual(summaries[1].n, 6)
        XCTAssertEqual(summaries[1].mean, ScoreSummary(rows.filter { $0.model == "merged" }.map(\.score)).mean, accuracy: 1e-12)
        XCTAssertEqual(summaries[0].perTag["night"]?.n, 2)
        let table = formatSummaryTable(summaries)
        XCTAssertTrue(table.contains("merged"))
        XCTAssertTrue(table.contains("night"))
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(summaries)) as! [[String: Any]]
        XCTAssertEqual(Set(json[0].keys), ["name", "hash", "mean", "ci95", "n", "seconds_per_image", "per_tag"])

        let files = try writeReport(rows: rows, title: "デモ評価", to: directory.appendingPathComponent("report"))
        let html = try String(contentsOf: files.html, encoding: .utf8)
        XCTAssertEqual(html.components(separatedBy: "<tr class=\"model\">").count - 1, 2, "one summary row per model")
        XCTAssertEqual(html.components(separatedBy: "<tr class=\"case\">").count - 1, 6, "one contact-sheet row per prompt and seed")
        for row in rows {
            XCTAssertTrue(html.contains("src=\"../img/\(row.model)-\(row.promptId)-\(row.seed).png\""), "image of \(row.model) \(row.promptId) \(row.seed)")
        }
        XCTAssertTrue(html.contains("<svg id=\"score-chart\""))
        XCTAssertTrue(html.contains("デモ評価"))
        let markdown = try String(contentsOf: files.markdown, encoding: .utf8)
        XCTAssertTrue(markdown.contains("| merged | hash-merged | 6 |"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: files.html.deletingLastPathComponent().path)
        XCTAssertEqual(Set(leftovers), ["report.md", "report.html"], "no temporary file left behind")
        // Writing the report again replaces both files in place.
        let again = try writeReport(rows: rows, title: "二回目", to: directory.appendingPathComponent("report"))
        XCTAssertTrue(try String(contentsOf: again.html, encoding: .utf8).contains("二回目"))
        XCTAssertTrue(try String(contentsOf: again.markdown, encoding: .utf8).contains("二回目"))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: files.html.deletingLastPathComponent().path)),
                       ["report.md", "report.html"])
    }
}
