// `jpgen tokenize --model DIR` on SentencePiece folders (tokenizer.json and spiece.model / sentencepiece.bpe.model),
// end to end through the built executable; ids equal to the fixture script's references.

import Foundation
import XCTest

final class SentencePieceTokenizeCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Tokenization")

    func run(_ arguments: [String], stdin: Data? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = try jpgenExecutable()
        process.arguments = arguments
        let input = Pipe(), out = Pipe(), err = Pipe()
        process.standardInput = input
        process.standardOutput = out
        process.standardError = err
        try process.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    func reference() throws -> (strings: [String], ids: [String: [[Int]]]) {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("sentencepiece_cases.json"))) as! [String: Any]
        var ids: [String: [[Int]]] = [:]
        for kind in ["t5-unigram", "xlmr-unigram", "t5-bpe"] { ids[kind] = (object[kind] as! [String: Any])["fast"] as? [[Int]] }
        return (object["strings"] as! [String], ids)
    }

    func testJSONOutputForEachSentencePieceFolder() throws {
        let (strings, ids) = try reference()
        let text = strings[5]   // 江ノ島と富士山が見える風景
        for kind in ["t5-unigram", "xlmr-unigram", "t5-bpe"] {
            let r = try run(["tokenize", text, "--model", Self.fixtures.appendingPathComponent(kind).path, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            XCTAssertEqual(object["ids"] as? [Int], ids[kind]![5], kind)
            XCTAssertEqual((object["tokens"] as? [String])?.count, ids[kind]![5].count, kind)
            XCTAssertNil(object["morphemes"], kind)
        }
    }

    func testStdinMatchesTheReferenceLineByLine() throws {
        let (strings, ids) = try reference()
        let picked = strings.indices.filter { !strings[$0].contains(where: { $0.isNewline }) && !strings[$0].isEmpty }.prefix(300)
        let input = picked.map { strings[$0] }.joined(separator: "\n") + "\n"
        let r = try run(["tokenize", "--stdin", "--model", Self.fixtures.appendingPathComponent("xlmr-unigram").path], stdin: Data(input.utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, picked.count)
        for (line, k) in zip(lines, picked) {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            XCTAssertEqual(object["ids"] as? [Int], ids["xlmr-unigram"]![k], strings[k])
        }
    }

    func testBrokenModelFileIsAClearError() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("spcli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"tokenizer_class": "T5Tokenizer"}"#.utf8).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        try Data("garbage".utf8).write(to: folder.appendingPathComponent("spiece.model"))
        let r = try run(["tokenize", "富士山", "--model", folder.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(folder.appendingPathComponent("spiece.model").path + ": invalid tokenizer file"), r.stderr)
    }
}
