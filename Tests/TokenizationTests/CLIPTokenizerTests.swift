import Foundation
import XCTest

@testable import Tokenization

/// CLIP byte-level BPE against transformers' CLIPTokenizer on 1,046 strings, padded to 77 with each
/// folder's pad token (Tools/fixtures/tokenization_clip.py).
final class CLIPTokenizerTests: XCTestCase {
    struct Case: Decodable { let text: String; let ids: [Int]; let attention_mask: [Int]; let tokens: [String] }
    struct Kind: Decodable { let cases: [Case]; let pad_id: Int }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Tokenization")

    func check(_ kind: String, folder: String? = nil) throws {
        let reference = try JSONDecoder().decode([String: Kind].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("clip_cases.json")))[kind]!
        let tokenizer = try loadTokenizer(folder: Self.fixtures.appendingPathComponent(folder ?? kind))
        XCTAssertEqual(tokenizer.padTokenId, reference.pad_id)
        XCTAssertGreaterThanOrEqual(reference.cases.count, 1000)
        var mismatches = 0
        for c in reference.cases {
            let encoding = try tokenizer.encode(c.text, options: EncodingOptions(padToMaxLength: true))
            if encoding.ids != c.ids || encoding.attentionMask != c.attention_mask {
                mismatches += 1
                if mismatches <= 5 {
                    XCTFail("\(kind) \(c.text.debugDescription):\n ours \(encoding.tokens.filter { $0 != tokenizer.padTokenId.description })\n ref  \(c.tokens)")
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "\(kind): \(mismatches) of \(reference.cases.count) strings differ from transformers")
    }

    func testSD1StyleIdsEqualTransformers() throws { try check("clip-sd1") }
    func testSDXLSecondEncoderPadsWithExclamationMark() throws { try check("clip-sdxl2") }
    /// transformers 5 saves a CLIP tokenizer as tokenizer.json only (vocab and merges under "model").
    func testTokenizerJSONOnlyFolder() throws { try check("clip-sd1", folder: "clip-sd1-json") }

    func testBadFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"tokenizer_class": "CLIPTokenizer"}"#.utf8).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            XCTAssertEqual($0 as? TokenizationError, .missingFile(path: folder.appendingPathComponent("vocab.json").path))
        }
        try Data(#"{"a": 0}"#.utf8).write(to: folder.appendingPathComponent("vocab.json"))
        try Data("#version: 0.2\na b c\n".utf8).write(to: folder.appendingPathComponent("merges.txt"))
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            XCTAssertEqual($0 as? TokenizationError, .invalidFile(path: folder.appendingPathComponent("merges.txt").path,
                                                                  reason: "line 2 is not two symbols: 'a b c'"))
        }
        try Data("#version: 0.2\na b\n".utf8).write(to: folder.appendingPathComponent("merges.txt"))
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            guard case .invalidFile(_, let reason) = $0 as? TokenizationError else { return XCTFail("\($0)") }
            XCTAssertEqual(reason, "the special token <|startoftext|> is not in the vocabulary")
        }
        try Data("[1, 2]".utf8).write(to: folder.appendingPathComponent("vocab.json"))
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            guard case .invalidFile(_, let reason) = $0 as? TokenizationError else { return XCTFail("\($0)") }
            XCTAssertEqual(reason, "not a JSON object of token -> id")
        }
    }
}
