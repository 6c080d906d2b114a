// BertJapaneseTokenizer as transformers implements it (models/bert_japanese): NFKC normalisation,
// MeCab word splitting (MecabTokenizer), optional lowercasing, then WordPiece or one token per
// character on each word; [CLS] ... [SEP] around the ids.
//
// tokenizer_config.json keys read: word_tokenizer_type (mecab), subword_tokenizer_type (wordpiece |
// character), do_lower_case, do_word_tokenize, do_subword_tokenize, mecab_kwargs {mecab_dic,
// mecab_option, normalize_text}, model_max_length, and the special tokens; JPGen's own
// `jpgen_user_dictionary` names a user dictionary the model was trained with.

import Foundation

public struct BertJapaneseTokenizer: TextTokenizer {
    public enum Subword: String, Sendable { case wordpiece, character }

    public let vocabulary: Vocabulary
    public let mecab: MeCab?
    public let subword: Subword?
    public let doLowerCase: Bool
    public let normalizeText: Bool
    public let modelMaxLength: Int
    public let unknownToken: String, classToken: String, separatorToken: String, padToken: String, maskToken: String
    let wordPiece: WordPiece
    let unknownId: Int, classId: Int, separatorId: Int
    let splitter: SpecialTokenSplitter

    public var padTokenId: Int { vocabulary.id(padToken) ?? 0 }
    public var specialTokens: [String] { [unknownToken, separatorToken, padToken, classToken, maskToken] }

    init(folder: URL, config: [String: Any], options: TokenizerLoadOptions) throws {
        let configPath = folder.appendingPathComponent("tokenizer_config.json").path
        vocabulary = try Vocabulary(contentsOf: folder.appendingPathComponent("vocab.txt"))
        func string(_ key: String, _ fallback: String) -> String {
            if let s = config[key] as? String { return s }
            if let object = config[key] as? [String: Any], let s = object["content"] as? String { return s }
            return fallback
        }
        unknownToken = string("unk_token", "[UNK]")
        classToken = string("cls_token", "[CLS]")
        separatorToken = string("sep_token", "[SEP]")
        padToken = string("pad_token", "[PAD]")
        maskToken = string("mask_token", "[MASK]")
        for token in [unknownToken, classToken, separatorToken, padToken] where vocabulary.id(token) == nil {
            throw TokenizationError.invalidFile(path: folder.appendingPathComponent("vocab.txt").path, reason: "the special token \(token) is not in the vocabulary")
        }
        doLowerCase = config["do_lower_case"] as? Bool ?? false
        modelMaxLength = min(config["model_max_length"] as? Int ?? 512, 1 << 20)
        let mecabKwargs = config["mecab_kwargs"] as? [String: Any] ?? [:]
        normalizeText = mecabKwargs["normalize_text"] as? Bool ?? true
        let wordType = config["word_tokenizer_type"] as? String ?? "basic"
        if config["do_word_tokenize"] as? Bool ?? true {
            guard wordType == "mecab" else {
                throw TokenizationError.unsupported(path: configPath, reason: "word_tokenizer_type '\(wordType)' (supported: mecab)")
            }
            mecab = try mecabFromConfig(config, folder: folder, options: options)
        } else {
            mecab = nil
        }
        if config["do_subword_tokenize"] as? Bool ?? true {
            let type = config["subword_tokenizer_type"] as? String ?? "wordpiece"
            guard let kind = Subword(rawValue: type) else {
                throw TokenizationError.unsupported(path: configPath, reason: "subword_tokenizer_type '\(type)' (supported: wordpiece, character)")
            }
            subword = kind
        } else {
            subword = nil
        }
        wordPiece = WordPiece(vocabulary: vocabulary, unknownToken: unknownToken)
        unknownId = vocabulary.id(unknownToken)!
        classId = vocabulary.id(classToken)!
        separatorId = vocabulary.id(separatorToken)!
        splitter = SpecialTokenSplitter([unknownToken, separatorToken, padToken, classToken, maskToken]
            .sorted { $0.utf8.count != $1.utf8.count ? $0.utf8.count > $1.utf8.count : $0 < $1 })
    }

    /// The tokens of `text` (no special tokens added), and the morphemes MeCab split it into.
    public func tokenize(_ text: String) throws -> (tokens: [String], morphemes: [Morpheme]) {
        let (ids, morphemes) = try tokenizeIds(text)
        return (ids.map { vocabulary.tokens[$0] }, morphemes)
    }

    /// The ids of `text` (no special tokens added), and the morphemes MeCab split it into.
    public func tokenizeIds(_ text: String) throws -> (ids: [Int], morphemes: [Morpheme]) {
        var ids: [Int] = []
        var morphemes: [Morpheme] = []
        // Special tokens written in the text stay whole (transformers splits on them first).
        for (segment, isSpecial) in splitter.split(text) {
            if isSpecial {
                ids.append(vocabulary.id(segment) ?? unknownId)
                continue
            }
            var words: [String]
            if let mecab {
                let normalized = normalizeText ? nfkc(segment) : segment
                let parsed = try mecab.parse(normalized)
                morphemes += parsed
                words = parsed.map { doLowerCase ? lowercase($0.surface) : $0.surface }
            } else {
                words = [segment]
            }
            switch subword {
            case .wordpiece?: for word in words { wordPiece.tokenizeIds(word, into: &ids) }
            case .character?: for word in words { characterIds(word, into: &ids) }
            case nil: ids += words.map { vocabulary.trie.id($0.utf8) ?? unknownId }
            }
        }
        return (ids, morphemes)
    }

    /// transformers' CharacterTokenizer: NFKC, then each code point or the unknown token.
    func characterIds(_ word: String, into ids: inout [Int]) {
        let text = normalizeText ? nfkc(word) : word
        for scalar in text.unicodeScalars { ids.append(vocabulary.trie.id(String(scalar).utf8) ?? unknownId) }
    }

    /// Python's str.lower() for a surface: nothing to do for kana and kanji, ASCII by hand, else Foundation.
    func lowercase(_ s: String) -> String {
        var ascii = true, caseless = true
        for u in s.utf8 {
            if u >= 0x80 { ascii = false } else if u >= 0x41 && u <= 0x5A { caseless = false }
        }
        if ascii { return caseless ? s : String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self) }
        if caseless && s.unicodeScalars.allSatisfy({ $0.value >= 0x3000 && $0.value <= 0x9FFF }) { return s }
        return s.lowercased()
    }

    public func encode(_ text: String, options: EncodingOptions) throws -> Encoding {
        let (tokens, morphemes) = try tokenizeIds(text)
        let limit = options.maxLength ?? modelMaxLength
        let room = options.addSpecialTokens ? max(limit - 2, 0) : limit
        let kept = tokens.prefix(room)
        var ids = options.addSpecialTokens ? [classId] + kept + [separatorId] : Array(kept)
        var mask = Array(repeating: 1, count: ids.count)
        if options.padToMaxLength && ids.count < limit {
            let padding = limit - ids.count
            ids += Array(repeating: padTokenId, count: padding)
            mask += Array(repeating: 0, count: padding)
        }
        return Encoding(ids: ids, attentionMask: mask, tokens: ids.map { vocabulary.tokens[$0] }, morphemes: mecab == nil ? nil : morphemes,
                        truncatedTokens: tokens.count - kept.count)
    }
}

/// A user dictionary named in a tokenizer config: a compiled .dic beside the config, or one of
/// JPGen's built from Dictionaries/ (found through JPGEN_USER_DIC_DIR or the build folder).
func resolveUserDictionary(_ name: String, folder: URL, config: String) throws -> String {
    var candidates = [folder.appendingPathComponent(name).path]
    if let dir = ProcessInfo.processInfo.environment["JPGEN_USER_DIC_DIR"] { candidates.append(dir + "/" + name) }
    candidates.append(defaultUserDictionaryFolder().appendingPathComponent(name).path)
    for path in candidates where FileManager.default.fileExists(atPath: path) { return path }
    throw TokenizationError.dictionaryNotFound(path: candidates.joined(separator: ", "),
                                               hint: "\(config) names the user dictionary '\(name)'; build it with `make dictionary`")
}

/// Where `make dictionary` writes the compiled user dictionaries: .build-dic/ at the package root,
/// found by walking up from the executable.
public func defaultUserDictionaryFolder() -> URL {
    var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<8 {
        let candidate = dir.appendingPathComponent(".build-dic")
        if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build-dic")
}
