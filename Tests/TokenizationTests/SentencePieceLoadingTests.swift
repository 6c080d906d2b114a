import Foundation
import XCTest

@testable import Tokenization

/// The MeCab pre-tokenizer in front of a SentencePiece model, and bad model files: each error names the file.
final class SentencePieceLoadingTests: XCTestCase {
    static let fixtures = SentencePieceTokenizerTests.fixtures

    func copy(_ kind: String, files: [String]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("spload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for file in files {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(kind).appendingPathComponent(file),
                                             to: folder.appendingPathComponent(file))
        }
        return folder
    }

    func editConfig(_ folder: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let url = folder.appendingPathComponent("tokenizer_config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: url)
    }

    /// jpgen_pre_tokenizer: mecab: ids equal to sentencepiece on the MeCab surfaces joined by spaces
    /// (fugashi + sentencepiece in the fixture script), 400 strings; the morphemes are reported.
    func testMeCabPreTokenizerEqualsFugashiThenSentencePiece() throws {
        for useJSON in [false, true] {
            let folder = try copy("t5-unigram", files: ["spiece.model", "tokenizer_config.json"] + (useJSON ? ["tokenizer.json"] : []))
            defer { try? FileManager.default.removeItem(at: folder) }
            try editConfig(folder) {
                $0["jpgen_pre_tokenizer"] = "mecab"
                $0["mecab_kwargs"] = ["mecab_dic": NSNull(), "mecab_option": "-d /var/lib/mecab/dic/ipadic-utf8 -r /etc/mecabrc"]
            }
            let tokenizer = try loadTokenizer(folder: folder)
            XCTAssertTrue(useJSON ? tokenizer is FastTokenizer : tokenizer is SentencePieceTokenizer)
            let encoding = try tokenizer.encode("江ノ島と富士山")
            XCTAssertEqual(encoding.morphemes?.map(\.surface), ["江ノ島", "と", "富士山"])
            guard !useJSON else { continue }   // the reference is sentencepiece's; tokenizer.json's whitespace rules differ
            let reference = SentencePieceTokenizerTests.reference
            var mismatches = 0
            for (text, ids) in zip(reference.strings, reference.mecab) where try tokenizer.encode(text).ids != ids {
                mismatches += 1
                if mismatches <= 3 { XCTFail("\(text.debugDescription): ours \(try tokenizer.encode(text).ids), ref \(ids)") }
            }
            XCTAssertEqual(mismatches, 0)
            XCTAssertGreaterThanOrEqual(reference.mecab.count, 400)
            // And it changes ids: without the key the same text tokenizes differently.
            let plain = try loadTokenizer(folder: Self.fixtures.appendingPathComponent("t5-unigram"), options: TokenizerLoadOptions(preferSentencePieceModel: true))
            XCTAssertNotEqual(try plain.encode("江ノ島と富士山が見える風景").ids, try tokenizer.encode("江ノ島と富士山が見える風景").ids)
            XCTAssertNil(try plain.encode("江ノ島").morphemes)
        }
    }

    func testUnknownPreTokenizerIsAnError() throws {
        let folder = try copy("t5-unigram", files: ["spiece.model", "tokenizer_config.json"])
        defer { try? FileManager.default.removeItem(at: folder) }
        try editConfig(folder) { $0["jpgen_pre_tokenizer"] = "jieba" }
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            XCTAssertEqual($0 as? TokenizationError, .unsupported(path: folder.appendingPathComponent("tokenizer_config.json").path,
                                                                   reason: "jpgen_pre_tokenizer 'jieba' (supported: mecab)"))
        }
        try editConfig(folder) { $0["jpgen_pre_tokenizer"] = "mecab"; $0["mecab_kwargs"] = ["mecab_dic": "unidic_lite"] }
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            guard case .unsupported(_, let reason) = $0 as? TokenizationError else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("unidic_lite"), reason)
        }
    }

    func testMissingAndMalformedModelFiles() throws {
        let folder = try copy("xlmr-unigram", files: ["tokenizer_config.json"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = folder.appendingPathComponent("sentencepiece.bpe.model")
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            XCTAssertEqual($0 as? TokenizationError, .missingFile(path: model.path))
        }
        func expectInvalid(_ bytes: Data, _ contains: String, line: UInt = #line) throws {
            try bytes.write(to: model)
            XCTAssertThrowsError(try loadTokenizer(folder: folder), line: line) {
                guard case .invalidFile(let path, let reason) = $0 as? TokenizationError else { return XCTFail("\($0)", line: line) }
                XCTAssertEqual(path, model.path, line: line)
                XCTAssertTrue(reason.contains(contains), reason, line: line)
                XCTAssertTrue(($0 as? LocalizedError)?.errorDescription?.contains(model.path) == true, line: line)
            }
        }
        let good = try Data(contentsOf: Self.fixtures.appendingPathComponent("xlmr-unigram/sentencepiece.bpe.model"))
        try expectInvalid(Data("not a model at all\n".utf8), "not a SentencePiece model")
        try expectInvalid(good.prefix(good.count / 2), "runs past the end")
        try expectInvalid(Data(), "no pieces")
        try expectInvalid(Data([0x0A, 0x03, 0x0A, 0x01, 0x61]), "exactly one is required")   // one piece "a", no <unk>
        // A corrupted precompiled charsmap: normalizer_spec { precompiled_charsmap: 8 bytes claiming a huge trie }.
        var broken = good
        broken.append(contentsOf: [0x1A, 0x0A, 0x12, 0x08, 0xFF, 0xFF, 0x00, 0x00, 1, 2, 3, 4])
        try expectInvalid(broken, "precompiled_charsmap")
        // A WORD model is refused by name.
        var word = good
        word.append(contentsOf: [0x12, 0x02, 0x18, 0x03])   // trainer_spec { model_type: WORD }
        try word.write(to: model)
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            guard case .unsupported(let path, let reason) = $0 as? TokenizationError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, model.path)
            XCTAssertTrue(reason.contains("model_type"), reason)
        }
    }

    func testMalformedTokenizerJSON() throws {
        let folder = try copy("t5-bpe", files: ["tokenizer_config.json", "tokenizer.json"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("tokenizer.json")
        let good = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        func expect(_ write: () throws -> Void, _ check: (TokenizationError) -> Bool, line: UInt = #line) throws {
            try write()
            XCTAssertThrowsError(try loadTokenizer(folder: folder), line: line) {
                guard let error = $0 as? TokenizationError else { return XCTFail("\($0)", line: line) }
                XCTAssertTrue(check(error), "\(error)", line: line)
                XCTAssertTrue(error.errorDescription?.contains(url.path) == true, "\(error)", line: line)
            }
        }
        func edited(_ edit: @escaping (inout [String: Any]) -> Void) -> () throws -> Void {
            { var o = good; edit(&o); try JSONSerialization.data(withJSONObject: o).write(to: url) }
        }
        func invalid(_ text: String) -> (TokenizationError) -> Bool {
            { if case .invalidFile(_, let r) = $0 { return r.contains(text) }; return false }
        }
        func unsupported(_ text: String) -> (TokenizationError) -> Bool {
            { if case .unsupported(_, let r) = $0 { return r.contains(text) }; return false }
        }
        try expect({ try Data("{\"model\": [".utf8).write(to: url) }, invalid("not JSON"))
        try expect({ try Data("[1, 2]".utf8).write(to: url) }, invalid("not a JSON object"))
        try expect(edited { $0["model"] = nil }, invalid("no \"model\" object"))
        try expect(edited { $0["model"] = ["type": "WordLevel", "vocab": [:]] }, unsupported("model type 'WordLevel'"))
        try expect(edited { $0["normalizer"] = ["type": "BertNormalizer"] }, unsupported("normalizer type 'BertNormalizer'"))
        try expect(edited { $0["pre_tokenizer"] = ["type": "ByteLevel"] }, unsupported("pre_tokenizer type 'ByteLevel'"))
        try expect(edited { $0["normalizer"] = ["type": "Precompiled", "precompiled_charsmap": "***"] }, invalid("not base64"))
        try expect(edited { $0["normalizer"] = ["type": "Replace", "pattern": ["Regex": "(["], "content": ""] }, invalid("does not compile"))
        try expect(edited {
            var m = $0["model"] as! [String: Any]
            m["merges"] = ["▁ zzzz"]
            $0["model"] = m
        }, invalid("merge 0"))
        try expect(edited { $0["model"] = ["type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 5] }, invalid("unk_id 5"))
        try expect(edited { $0["model"] = ["type": "Unigram", "vocab": [["a"]], "unk_id": 0] }, invalid("model.vocab[0]"))
    }
}
