import Foundation
import XCTest

@testable import Tokenization

/// The user dictionary of Dictionaries/ (compiled by `make dictionary` into .build-dic/) fixes the
/// splits a prompt writer expects, and applies only when asked for.
final class UserDictionaryTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let dictionary = root.appendingPathComponent(".build-dic/jpgen-prompts.dic").path

    let expected: [(String, [String], [String])] = [
        // text, split without the user dictionary (ipadic), split with it
        ("水彩画風", ["水彩", "画風"], ["水彩画", "風"]),
        ("水墨画風", ["水墨", "画風"], ["水墨画", "風"]),
        ("夕焼け空", ["夕焼け", "空"], ["夕焼け空"]),
        ("被写界深度", ["被", "写", "界", "深度"], ["被写界深度"]),
        ("江ノ電と逆さ富士", ["江", "ノ", "電", "と", "逆さ", "富士"], ["江ノ電", "と", "逆さ富士"]),
        ("ドット絵", ["ドット", "絵"], ["ドット絵"]),
        ("東京スカイツリー", ["東京", "スカイ", "ツリー"], ["東京スカイツリー"]),
        // Already right in ipadic, and kept so.
        ("浮世絵風の江の島、逆光、鳥居", ["浮世絵", "風", "の", "江の島", "、", "逆光", "、", "鳥居"],
         ["浮世絵", "風", "の", "江の島", "、", "逆光", "、", "鳥居"]),
    ]

    func testSplitsWithAndWithoutTheUserDictionary() throws {
        guard FileManager.default.fileExists(atPath: Self.dictionary) else {
            return XCTFail("\(Self.dictionary) is missing: `make dictionary` (run by make test) builds it")
        }
        let plain = try MeCab(dictionary: MeCab.systemIPADic)
        let prompts = try MeCab(dictionary: MeCab.systemIPADic, userDictionaries: [Self.dictionary])
        for (text, before, after) in expected {
            XCTAssertEqual(try plain.parse(text).map(\.surface), before, text)
            XCTAssertEqual(try prompts.parse(text).map(\.surface), after, text)
        }
    }

    func testAppliesOnlyToModelsThatNameIt() throws {
        guard FileManager.default.fileExists(atPath: Self.dictionary) else {
            return XCTFail("\(Self.dictionary) is missing: `make dictionary` (run by make test) builds it")
        }
        let source = Self.root.appendingPathComponent("Tests/Fixtures/Tokenization/bert-japanese-wordpiece")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("userdic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: source.appendingPathComponent("vocab.txt"), to: folder.appendingPathComponent("vocab.txt"))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("tokenizer_config.json"))) as! [String: Any]

        // Without the key: the model's own split.
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        let plain = try loadTokenizer(folder: folder)
        XCTAssertEqual(try plain.encode("被写界深度").morphemes?.map(\.surface), ["被", "写", "界", "深度"])
        // --user-dic: on request.
        let requested = try loadTokenizer(folder: folder, options: TokenizerLoadOptions(extraUserDictionaries: [Self.dictionary]))
        XCTAssertEqual(try requested.encode("被写界深度").morphemes?.map(\.surface), ["被写界深度"])
        // Named by the model's config (resolved beside the config, in JPGEN_USER_DIC_DIR, or .build-dic/).
        config["jpgen_user_dictionary"] = "jpgen-prompts.dic"
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        try FileManager.default.copyItem(atPath: Self.dictionary, toPath: folder.appendingPathComponent("jpgen-prompts.dic").path)
        let named = try loadTokenizer(folder: folder)
        XCTAssertEqual(try named.encode("水彩画風").morphemes?.map(\.surface), ["水彩画", "風"])
        // A named dictionary that cannot be found is an error naming it.
        config["jpgen_user_dictionary"] = "missing.dic"
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        XCTAssertThrowsError(try loadTokenizer(folder: folder)) {
            guard case .dictionaryNotFound(let path, let hint) = $0 as? TokenizationError else { return XCTFail("\($0)") }
            XCTAssertTrue(path.contains("missing.dic"), path)
            XCTAssertTrue(hint.contains("make dictionary"), hint)
        }
    }
}
