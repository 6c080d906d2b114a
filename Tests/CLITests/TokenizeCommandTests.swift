// `jpgen tokenize` end to end through the built executable.

import Foundation
import XCTest

final class TokenizeCommandTests: XCTestCase {
    let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Tokenization/bert-japanese-wordpiece").path

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

    func testJSONHasIdsTokensAndMorphemes() throws {
        let r = try run(["tokenize", "江ノ島と富士山", "--model", model, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(object["tokens"] as? [String], ["[CLS]", "江ノ島", "と", "富士山", "[SEP]"])
        XCTAssertEqual((object["ids"] as? [Int])?.count, 5)
        let morphemes = object["morphemes"] as! [[String: Any]]
        XCTAssertEqual(morphemes.map { $0["surface"] as! String }, ["江ノ島", "と", "富士山"])
    }

    func testStdinGivesOneObjectPerLine() throws {
        let lines = (0..<500).map { "富士山と海 \($0)" }.joined(separator: "\n") + "\n"
        let r = try run(["tokenize", "--stdin", "--model", model], stdin: Data(lines.utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        let outputs = r.stdout.split(separator: "\n")
        XCTAssertEqual(outputs.count, 500)
        let last = try JSONSerialization.jsonObject(with: Data(outputs[499].utf8)) as! [String: Any]
        XCTAssertTrue((last["tokens"] as! [String]).contains("499") || (last["tokens"] as! [String]).contains("[UNK]"))
    }

    func testBadInputIsAClearError() throws {
        let invalid = try run(["tokenize", "--stdin", "--model", model], stdin: Data([0xE5, 0xAF, 0x8C, 0x0A, 0xFF, 0x0A]))
        XCTAssertNotEqual(invalid.status, 0)
        XCTAssertTrue(invalid.stderr.contains("stdin line 2: the text is not valid UTF-8"), invalid.stderr)
        let missing = try run(["tokenize", "富士山", "--model", "/nonexistent/model"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/model/tokenizer_config.json: no such tokenizer file"), missing.stderr)
        let long = String(repeating: "富士山と海、", count: 60)
        let truncated = try run(["tokenize", long, "--model", model])
        XCTAssertEqual(truncated.status, 0, truncated.stderr)
        XCTAssertTrue(truncated.stderr.contains("warning: the prompt is"), truncated.stderr)
        let both = try run(["tokenize", "海", "--stdin", "--model", model])
        XCTAssertNotEqual(both.status, 0)
    }
}
