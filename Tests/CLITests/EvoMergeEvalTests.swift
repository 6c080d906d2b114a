// `evomerge eval` end to end through the built executable, on the bundled demo models (64x64, fast):
// rows stored = prompts x seeds x models; an interrupted run (--limit, or killed) resumed ends with no
// duplicate and no missing row; a finished run stores nothing new; the printed numbers equal those
// computed here from the store's rows; `evomerge report` embeds every image; bad input fails before
// anything is written. Score values of the demo models are never asserted (the models get retrained).

import Evaluation
import Foundation
import GRDB
import Imaging
import XCTest

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
private let demoLCM = repositoryRoot.appendingPathComponent("Models/demo-lcm").path
private let demoBase = repositoryRoot.appendingPathComponent("Models/demo-base").path

private let suiteYAML = """
    name: eval-test
    seeds: [3, 4]
    prompts:
      - {id: enoshima-fuji, ja: 江ノ島と富士山が見える風景, en: A landscape with Enoshima and Mount Fuji, tags: [fuji, day], split: search}
      - {id: pagoda-night, ja: 夜の五重塔と月, tags: [night], split: held-out}
      - {id: sea-sunset, ja: 夕焼けの海と船, tags: [day, sea]}

    """

final class EvoMergeEvalTests: XCTestCase {
    var folder: URL!
    var suite: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        suite = folder.appendingPathComponent("suite.yaml")
        try suiteYAML.write(to: suite, atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func eval(_ extra: [String], db: URL) throws -> (status: Int32, stdout: String, stderr: String) {
        try runTool("evomerge", ["eval", "--suite", suite.path, "--db", db.path, "--out", folder.appendingPathComponent("images").path,
                                 "--threads", "1"] + extra)
    }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// Every (model hash, prompt, seed, settings, scorer) once, and every case of every model present.
    func assertCompleteAndUnique(_ rows: [ImageResult], models: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(rows.count, 3 * 2 * models, "prompts x seeds x models", file: file, line: line)
        let keys = Set(rows.map { "\($0.modelHash)|\($0.promptId)|\($0.seed)|\($0.settings)|\($0.scorer)" })
        XCTAssertEqual(keys.count, rows.count, "no duplicate row", file: file, line: line)
        for hash in Set(rows.map(\.modelHash)) {
            let cases = Set(rows.filter { $0.modelHash == hash }.map { "\($0.promptId)/\($0.seed)" })
            XCTAssertEqual(cases, ["enoshima-fuji/3", "enoshima-fuji/4", "pagoda-night/3", "pagoda-night/4",
                                   "sea-sunset/3", "sea-sunset/4"], "no missing row for \(hash)", file: file, line: line)
        }
        for row in rows { XCTAssertTrue(FileManager.default.fileExists(atPath: row.imagePath), row.imagePath, file: file, line: line) }
    }

    func testEvalResumesAfterAnInterruptionAndMatchesTheStore() throws {
        let db = folder.appendingPathComponent("results.sqlite")
        // 1. Interrupted: at most 5 new images, so the first model stops one short and the second has none.
        let first = try eval(["--model", demoLCM, "--model", demoBase, "--limit", "5", "--json"], db: db)
        XCTAssertEqual(first.status, 0, first.stderr)
        let partial = try json(first.stdout)
        XCTAssertEqual(partial["generated"] as? Int, 5)
        XCTAssertEqual(partial["complete"] as? Bool, false)
        let partialModels = try XCTUnwrap(partial["models"] as? [[String: Any]])
        XCTAssertEqual(partialModels.map { $0["n"] as? Int }, [5, 0])
        XCTAssertTrue(partialModels[1]["mean"] is NSNull, "a model with no image yet has a null mean")
        XCTAssertEqual(try ResultsStore(url: db).all().count, 5)

        // 2. The full run does only the rest.
        let second = try eval(["--model", demoLCM, "--model", demoBase, "--json", "--quiet"], db: db)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(second.stderr, "", "--quiet")
        let object = try json(second.stdout)
        XCTAssertEqual(object["generated"] as? Int, 7)
        XCTAssertEqual(object["complete"] as? Bool, true)
        XCTAssertEqual(object["cases"] as? Int, 6)
        XCTAssertEqual(object["suite"] as? String, "eval-test")
        let rows = try ResultsStore(url: db).all()
        assertCompleteAndUnique(rows, models: 2)

        // The printed numbers are the store's: mean, t-based CI95 (df = 5), n, seconds per image, per tag.
        let models = try XCTUnwrap(object["models"] as? [[String: Any]])
        XCTAssertEqual(models.map { $0["name"] as? String }, ["demo-lcm", "demo-base"])
        for model in models {
            let mine = rows.filter { $0.modelHash == model["hash"] as? String }
            XCTAssertEqual(mine.count, 6)
            XCTAssertEqual(Set(mine.map(\.model)), [model["name"] as! String])
            let scores = mine.map(\.score)
            let mean = scores.reduce(0, +) / 6
            let sd = (scores.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 5).squareRoot()
            XCTAssertEqual(model["n"] as? Int, 6)
            XCTAssertEqual(try XCTUnwrap(model["mean"] as? Double), mean, accuracy: 1e-12)
            XCTAssertEqual(try XCTUnwrap(model["ci95"] as? Double), 2.570582 * sd / 6.0.squareRoot(), accuracy: 1e-6)
            XCTAssertEqual(try XCTUnwrap(model["seconds_per_image"] as? Double), mine.map(\.seconds).reduce(0, +) / 6, accuracy: 1e-12)
            let perTag = try XCTUnwrap(model["per_tag"] as? [String: [String: Any]])
            XCTAssertEqual(Set(perTag.keys), ["fuji", "day", "night", "sea"])
            let day = mine.filter { $0.tagList.contains("day") }.map(\.score)
            XCTAssertEqual(perTag["day"]?["n"] as? Int, 4)
            XCTAssertEqual(try XCTUnwrap(perTag["day"]?["mean"] as? Double), day.reduce(0, +) / 4, accuracy: 1e-12)
            let settings = try XCTUnwrap(model["settings"] as? [String: Any])
            XCTAssertEqual(settings["width"] as? Int, 64)
            XCTAssertTrue(mine.allSatisfy { $0.score >= 0 && $0.score <= 2.5 && $0.seconds > 0 })
        }
        XCTAssertNotEqual(models[0]["hash"] as? String, models[1]["hash"] as? String)

        // Each image carries the A1111 parameters: prompt, seed, size, model hash.
        for row in rows {
            let png = try readPNG(URL(fileURLWithPath: row.imagePath))
            XCTAssertEqual(png.image.width, 64)
            let parameters = try XCTUnwrap(png.text("parameters"), row.imagePath)
            XCTAssertTrue(parameters.hasPrefix(row.prompt + "\n"), parameters)
            XCTAssertTrue(parameters.contains("Seed: \(row.seed), Size: 64x64, Model hash: \(row.modelHash), Model: \(row.model)"), parameters)
        }

        // 3. A finished evaluation stores nothing new; the table shows the same numbers.
        let third = try eval(["--model", demoLCM, "--model", demoBase], db: db)
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertTrue(third.stdout.contains("0 generated in this run"), third.stdout)
        XCTAssertEqual(try ResultsStore(url: db).all(), rows, "nothing rewritten")
        for model in models {
            let line = try XCTUnwrap(third.stdout.split(separator: "\n").first { $0.hasPrefix((model["name"] as! String) + " ") },
                                     third.stdout)
            XCTAssertTrue(line.contains(String(format: "%.4f", model["mean"] as! Double)), String(line))
            XCTAssertTrue(line.contains(String(format: "%.4f", model["ci95"] as! Double)), String(line))
            XCTAssertTrue(line.contains(String(format: "%.3f", model["seconds_per_image"] as! Double)), String(line))
        }

        // 4. A split is a subset of the same rows: nothing new to generate.
        let held = try eval(["--model", demoLCM, "--split", "held-out", "--json"], db: db)
        XCTAssertEqual(held.status, 0, held.stderr)
        let heldObject = try json(held.stdout)
        XCTAssertEqual(heldObject["generated"] as? Int, 0)
        XCTAssertEqual(heldObject["cases"] as? Int, 4, "pagoda-night (held-out) and sea-sunset (no split), 2 seeds")

        // 5. The report embeds every image by a path that resolves from the report's folder.
        let reportFolder = folder.appendingPathComponent("report")
        let report = try runTool("evomerge", ["report", db.path, "--out", reportFolder.path, "--json"])
        XCTAssertEqual(report.status, 0, report.stderr)
        let html = try String(contentsOfFile: try XCTUnwrap(json(report.stdout)["html"] as? String), encoding: .utf8)
        XCTAssertEqual(html.components(separatedBy: "<tr class=\"case\">").count - 1, 6)
        for row in rows {
            let relative = "../images/" + URL(fileURLWithPath: row.imagePath).pathComponents.suffix(2).joined(separator: "/")
            XCTAssertTrue(html.contains("src=\"\(relative)\""), relative)
            XCTAssertTrue(FileManager.default.fileExists(atPath: reportFolder.appendingPathComponent(relative).standardizedFileURL.path))
        }
    }

    /// A run killed mid-way leaves only whole rows; the next run completes it without duplicates.
    func testKilledRunResumes() throws {
        let db = folder.appendingPathComponent("killed.sqlite")
        let process = Process()
        process.executableURL = try jpgenExecutable().deletingLastPathComponent().appendingPathComponent("evomerge")
        process.arguments = ["eval", "--suite", suite.path, "--db", db.path, "--model", demoLCM, "--quiet", "--threads", "1"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, process.isRunning {
            if FileManager.default.fileExists(atPath: db.path), let n = try? ResultsStore(url: db).all().count, n >= 1 { break }
            usleep(20_000)
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let before = try ResultsStore(url: db).all()
        XCTAssertGreaterThanOrEqual(before.count, 1)
        XCTAssertLessThan(before.count, 6, "killed before the end")
        let r = try runTool("evomerge", ["eval", "--suite", suite.path, "--db", db.path, "--model", demoLCM, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try json(r.stdout)["generated"] as? Int, 6 - before.count)
        let rows = try ResultsStore(url: db).all()
        assertCompleteAndUnique(rows, models: 1)
        XCTAssertEqual(Array(rows.prefix(before.count)), before, "rows of the killed run kept as they were")
        XCTAssertTrue(rows.allSatisfy { $0.imagePath.hasPrefix(folder.appendingPathComponent("images").standardizedFileURL.path) },
                      "default --out: images/ beside the store")
    }

    /// --seeds replaces every prompt's seeds: the held-out split (pagoda-night, and sea-sunset, which has no
    /// split) with three seeds is six images, none with the suite's seeds 3 or 4.
    func testSeedsOptionReplacesTheSuiteSeeds() throws {
        let db = folder.appendingPathComponent("seeds.sqlite")
        let r = try eval(["--model", demoLCM, "--split", "held-out", "--seeds", "5, 6,7", "--json", "--quiet"], db: db)
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try ResultsStore(url: db).all()
        XCTAssertEqual(Set(rows.map { "\($0.promptId)/\($0.seed)" }),
                       ["pagoda-night/5", "pagoda-night/6", "pagoda-night/7", "sea-sunset/5", "sea-sunset/6", "sea-sunset/7"])
        XCTAssertEqual(try json(r.stdout)["cases"] as? Int, 6)
    }

    func testBadInputFailsBeforeWritingAnything() throws {
        let db = folder.appendingPathComponent("bad.sqlite")
        let images = folder.appendingPathComponent("images")
        func assertNothingWritten(_ r: (status: Int32, stdout: String, stderr: String), mentions: [String],
                                  file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertNotEqual(r.status, 0, file: file, line: line)
            for text in mentions { XCTAssertTrue(r.stderr.contains(text), "\(text) in: \(r.stderr)", file: file, line: line) }
            XCTAssertFalse(FileManager.default.fileExists(atPath: db.path), "no store created", file: file, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: images.path), "no image folder created", file: file, line: line)
        }
        // Unknown model path.
        assertNothingWritten(try eval(["--model", demoLCM, "--model", "/nonexistent/model-x"], db: db),
                             mentions: ["model not found: /nonexistent/model-x"])
        // A suite with a duplicate id.
        let duplicate = folder.appendingPathComponent("dup.yaml")
        try "seeds: [1]\nprompts:\n  - {id: fuji, ja: 富士山}\n  - {id: fuji, ja: 海}\n".write(to: duplicate, atomically: true, encoding: .utf8)
        assertNothingWritten(try runTool("evomerge", ["eval", "--suite", duplicate.path, "--db", db.path, "--out", images.path,
                                                      "--model", demoLCM]),
                             mentions: [duplicate.path, "duplicate prompt id 'fuji'"])
        // A missing suite.
        assertNothingWritten(try runTool("evomerge", ["eval", "--suite", "/nonexistent/s.yaml", "--db", db.path, "--out", images.path,
                                                      "--model", demoLCM]),
                             mentions: ["/nonexistent/s.yaml"])
        // An unreadable scorer folder: empty, and one with a broken config.json.
        let emptyScorer = folder.appendingPathComponent("scorer-empty")
        try FileManager.default.createDirectory(at: emptyScorer, withIntermediateDirectories: true)
        assertNothingWritten(try eval(["--model", demoLCM, "--scorer", emptyScorer.path], db: db), mentions: [emptyScorer.path])
        let brokenScorer = folder.appendingPathComponent("scorer-broken")
        try FileManager.default.createDirectory(at: brokenScorer, withIntermediateDirectories: true)
        try "{not json".write(to: brokenScorer.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        assertNothingWritten(try eval(["--model", demoLCM, "--scorer", brokenScorer.path], db: db), mentions: [brokenScorer.path])
        // Option mistakes.
        assertNothingWritten(try eval(["--model", demoLCM, "--model", demoLCM + "/"], db: db), mentions: ["is given 2 times"])
        assertNothingWritten(try eval(["--model", demoLCM, "--split", "train"], db: db), mentions: ["unknown --split \"train\""])
        assertNothingWritten(try eval(["--model", demoLCM, "--seeds", "1,x"], db: db), mentions: ["--seeds: \"x\" is not"])
        assertNothingWritten(try eval(["--model", demoLCM, "--seeds", "2,3,2"], db: db), mentions: ["--seeds: 2 is given 2 times"])
        assertNothingWritten(try eval(["--model", demoLCM, "--sampler", "plms"], db: db), mentions: ["unknown sampler \"plms\""])
        assertNothingWritten(try eval(["--suite", suite.path], db: db), mentions: ["--model"])

        // A store from a newer schema is refused and left as it was.
        do {
            let store = try ResultsStore(url: db)
            try store.insert(ImageResult(model: "m", modelHash: "h", suite: "s", promptId: "p", prompt: "富士山", tags: [], seed: 1,
                                         settings: "{}", scorer: "s", score: 0.5, seconds: 1, imagePath: "/x.png"))
            let queue = try DatabaseQueue(path: db.path)
            try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v9-future')") }
        }
        let before = try Data(contentsOf: db)
        let newer = try eval(["--model", demoLCM], db: db)
        XCTAssertNotEqual(newer.status, 0)
        XCTAssertTrue(newer.stderr.contains("\(db.path) was written by a newer JPGen"), newer.stderr)
        XCTAssertTrue(newer.stderr.contains("v9-future"), newer.stderr)
        XCTAssertEqual(try Data(contentsOf: db), before, "the store is unchanged")
        XCTAssertFalse(FileManager.default.fileExists(atPath: images.path))
    }
}
