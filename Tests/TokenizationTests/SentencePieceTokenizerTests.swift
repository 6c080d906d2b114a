import Foundation
import XCTest

@testable import Tokenization

/// SentencePiece unigram and BPE models against the references of Tools/fixtures/tokenization_sentencepiece.py
/// on 1,070 strings, truncated to 64: the slow .model path against `sentencepiece` with the wrapper's
/// special-token rules (T5, XLM-R), the tokenizer.json path against the `tokenizers` library. Ids equal
/// (exact: no tolerance).
final class SentencePieceTokenizerTests: XCTestCase {
    struct Padded: Decodable { let text: String; let ids: [Int]; let attention_mask: [Int] }
    struct Kind: Decodable { let spm: [[Int]]; let fast: [[Int]]; let pieces: Int; let padded: Padded }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Tokenization")

    static let reference: (strings: [String], kinds: [String: Kind], mecab: [[Int]]) = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("sentencepiece_cases.json"))
        let object = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        let strings = object["strings"] as! [String]
        var kinds: [String: Kind] = [:]
        for (key, value) in object where key != "strings" && key != "mecab" {
            kinds[key] = try! JSONDecoder().decode(Kind.self, from: JSONSerialization.data(withJSONObject: value))
        }
        return (strings, kinds, object["mecab"] as! [[Int]])
    }()

    func check(_ kind: String, slow: Bool) throws {
        let tokenizer = try loadTokenizer(folder: Self.fixtures.appendingPathComponent(kind),
                                          options: TokenizerLoadOptions(preferSentencePieceModel: slow))
        XCTAssertTrue(slow ? tokenizer is SentencePieceTokenizer : tokenizer is FastTokenizer, "\(type(of: tokenizer))")
        let reference = Self.reference.kinds[kind]!
        let expected = slow ? reference.spm : reference.fast
        let strings = Self.reference.strings
        XCTAssertGreaterThanOrEqual(strings.count, 1000)
        XCTAssertEqual(expected.count, strings.count)
        var mismatches = 0
        for (text, ids) in zip(strings, expected) {
            let encoding = try tokenizer.encode(text)
            if encoding.ids != ids {
                mismatches += 1
                if mismatches <= 5 {
                    XCTFail("\(kind) \(slow ? "spm" : "json") \(text.debugDescription):\n ours \(encoding.ids)\n ref  \(ids)\n \(encoding.tokens)")
                }
            }
            XCTAssertEqual(encoding.attentionMask, Array(repeating: 1, count: encoding.ids.count))
        }
        XCTAssertEqual(mismatches, 0, "\(kind) (\(slow ? "sentencepiece" : "tokenizer.json")): \(mismatches) of \(strings.count) strings differ")
        let padded = try tokenizer.encode(reference.padded.text, options: EncodingOptions(padToMaxLength: true))
        XCTAssertEqual(padded.ids, reference.padded.ids, kind)
        XCTAssertEqual(padded.attentionMask, reference.padded.attention_mask, kind)
    }

    func testT5UnigramModelFileEqualsSentencePiece() throws { try check("t5-unigram", slow: true) }
    func testT5UnigramTokenizerJSONEqualsTokenizers() throws { try check("t5-unigram", slow: false) }
    func testXLMRUnigramModelFileEqualsSentencePiece() throws { try check("xlmr-unigram", slow: true) }
    func testXLMRUnigramTokenizerJSONEqualsTokenizers() throws { try check("xlmr-unigram", slow: false) }
    func testBPEByteFallbackModelFileEqualsSentencePiece() throws { try check("t5-bpe", slow: true) }
    func testBPEByteFallbackTokenizerJSONEqualsTokenizers() throws { try check("t5-bpe", slow: false) }

    func testWrapperRules() throws {
        let t5 = try loadTokenizer(folder: Self.fixtures.appendingPathComponent("t5-unigram"), options: TokenizerLoadOptions(preferSentencePieceModel: true))
        let n = Self.reference.kinds["t5-unigram"]!.pieces
        XCTAssertEqual(t5.padTokenId, 0)
        let e = try t5.encode("<extra_id_0></s>")
        XCTAssertEqual(e.ids, [n + 99, 1, 1])
        XCTAssertEqual(e.tokens, ["<extra_id_0>", "</s>", "</s>"])
        let xlmr = try loadTokenizer(folder: Self.fixtures.appendingPathComponent("xlmr-unigram"), options: TokenizerLoadOptions(preferSentencePieceModel: true))
        XCTAssertEqual(xlmr.padTokenId, 1)
        let x = try xlmr.encode("<mask>")
        XCTAssertEqual(x.ids, [0, Self.reference.kinds["xlmr-unigram"]!.pieces + 1, 2])
        XCTAssertEqual(x.tokens, ["<s>", "<mask>", "</s>"])
        // Truncation keeps the specials and reports what it dropped.
        let long = try xlmr.encode(String(repeating: "富士山と海、", count: 40))
        XCTAssertEqual(long.ids.count, 64)
        XCTAssertEqual(long.ids.first, 0)
        XCTAssertEqual(long.ids.last, 2)
        XCTAssertGreaterThan(long.truncatedTokens, 0)
    }

    /// A folder with only the slow file (no tokenizer.json) loads the SentencePiece path.
    func testModelFileOnlyFolder() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = Self.fixtures.appendingPathComponent("xlmr-unigram")
        for file in ["sentencepiece.bpe.model", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: folder.appendingPathComponent(file))
        }
        let tokenizer = try loadTokenizer(folder: folder)
        XCTAssertTrue(tokenizer is SentencePieceTokenizer)
        let strings = Self.reference.strings
        let expected = Self.reference.kinds["xlmr-unigram"]!.spm
        for k in stride(from: 0, to: strings.count, by: 50) { XCTAssertEqual(try tokenizer.encode(strings[k]).ids, expected[k]) }
    }

    func temporaryFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }
}
