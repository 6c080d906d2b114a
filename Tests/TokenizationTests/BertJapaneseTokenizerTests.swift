import Foundation
import XCTest

@testable import Tokenization

/// MeCab + WordPiece and MeCab + character tokenizers against transformers' BertJapaneseTokenizer on
/// 1,046 strings each (Tools/fixtures/tokenization_bert_japanese.py): ids, tokens and attention masks equal.
final class BertJapaneseTokenizerTests: XCTestCase {
    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let attention_mask: [Int]
        let tokens: [String]
    }
    struct Padded: Decodable { let text: String; let ids: [Int]; let attention_mask: [Int] }
    struct Kind: Decodable { let cases: [Case]; let padded: Padded }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Tokenization")

    static let reference: [String: Kind] = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("bert_japanese_cases.json"))
        return try! JSONDecoder().decode([String: Kind].self, from: data)
    }()

    func check(_ kind: String) throws {
        let tokenizer = try loadTokenizer(folder: Self.fixtures.appendingPathComponent("bert-japanese-\(kind)"))
        let cases = Self.reference[kind]!.cases
        XCTAssertGreaterThanOrEqual(cases.count, 1000)
        var mismatches = 0
        for c in cases {
            let encoding = try tokenizer.encode(c.text)
            if encoding.ids != c.ids || encoding.tokens != c.tokens || encoding.attentionMask != c.attention_mask {
                mismatches += 1
                if mismatches <= 5 {
                    XCTFail("\(kind) \(c.text.debugDescription):\n ours \(encoding.tokens)\n ref  \(c.tokens)")
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "\(kind): \(mismatches) of \(cases.count) strings differ from transformers")
        let padded = Self.reference[kind]!.padded
        let encoding = try tokenizer.encode(padded.text, options: EncodingOptions(padToMaxLength: true))
        XCTAssertEqual(encoding.ids, padded.ids)
        XCTAssertEqual(encoding.attentionMask, padded.attention_mask)
    }

    func testWordPieceIdsEqualTransformers() throws { try check("wordpiece") }
    func testCharacterIdsEqualTransformers() throws { try check("character") }

    func testTruncationIsReported() throws {
        let tokenizer = try loadTokenizer(folder: Self.fixtures.appendingPathComponent("bert-japanese-wordpiece"))
        let long = Array(repeating: "富士山と海", count: 40).joined(separator: "、")
        let encoding = try tokenizer.encode(long)
        XCTAssertEqual(encoding.ids.count, 64)
        XCTAssertGreaterThan(encoding.truncatedTokens, 50)
        XCTAssertEqual(encoding.tokens.last, "[SEP]")
    }

    func testMorphemesCarryOffsetsAndFeatures() throws {
        let tokenizer = try loadTokenizer(folder: Self.fixtures.appendingPathComponent("bert-japanese-wordpiece"))
        let encoding = try tokenizer.encode("江ノ島と富士山")
        let morphemes = try XCTUnwrap(encoding.morphemes)
        XCTAssertEqual(morphemes.map(\.surface), ["江ノ島", "と", "富士山"])
        let utf8 = Array("江ノ島と富士山".utf8)
        for m in morphemes {
            XCTAssertEqual(String(decoding: utf8[m.byteStart..<m.byteEnd], as: UTF8.self), m.surface)
        }
        XCTAssertTrue(morphemes[2].feature.hasPrefix("名詞,固有名詞"), morphemes[2].feature)
    }

    func testBadInputsAndFiles() throws {
        XCTAssertThrowsError(try validatedText(Data([0xE5, 0xAF, 0x8C, 0xFF]), source: "prompt.txt")) {
            XCTAssertEqual($0 as? TokenizationError, .invalidUTF8(source: "prompt.txt"))
        }
        XCTAssertThrowsError(try validatedText("富士\u{0}山", source: "argument")) {
            XCTAssertEqual($0 as? TokenizationError, .nulCharacter(source: "argument"))
        }
        let huge = String(repeating: "富", count: 400_000)   // 1.2 MB
        XCTAssertThrowsError(try validatedText(huge, source: "stdin")) {
            XCTAssertEqual($0 as? TokenizationError, .inputTooLong(bytes: 1_200_000, limit: 1 << 20))
        }
        XCTAssertThrowsError(try loadTokenizer(folder: URL(fileURLWithPath: "/nonexistent"))) {
            XCTAssertEqual($0 as? TokenizationError, .missingFile(path: "/nonexistent/tokenizer_config.json"))
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("tokenizer_config.json")
        try Data(#"{"tokenizer_class": "BertJapaneseTokenizer", "word_tokenizer_type": "mecab", "mecab_kwargs": {"mecab_dic": "ipadic"}}"#.utf8).write(to: config)
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            XCTAssertEqual($0 as? TokenizationError, .missingFile(path: folder.appendingPathComponent("vocab.txt").path))
        }
        try Data("hello\n".utf8).write(to: folder.appendingPathComponent("vocab.txt"))
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            guard case .invalidFile(_, let reason) = $0 as? TokenizationError else { return XCTFail("\($0)") }
            XCTAssertEqual(reason, "the special token [UNK] is not in the vocabulary")
        }
        try Data("{oops".utf8).write(to: config)
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            guard case .invalidFile(let path, _) = $0 as? TokenizationError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, config.path)
        }
        XCTAssertThrowsError(try MeCab(dictionary: "/nonexistent/dic")) {
            guard case .dictionaryNotFound(let path, let hint) = $0 as? TokenizationError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, "/nonexistent/dic")
            XCTAssertTrue(hint.contains("mecab-ipadic-utf8"))
        }
    }

    func testMeCabReportsTheDictionaryItLoaded() throws {
        let mecab = try MeCab(dictionary: MeCab.systemIPADic)
        XCTAssertEqual(mecab.dictionaryPath, MeCab.systemIPADic)
        XCTAssertEqual(mecab.dictionaryCharset.lowercased(), "utf-8")
    }
}
