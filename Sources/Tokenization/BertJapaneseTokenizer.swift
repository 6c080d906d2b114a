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
    }

    /// The tokens of `text` (no special tokens added), and the morphemes MeCab split it into.
    public func tokenize(_ text: String) throws -> (tokens: [String], morphemes: [Morpheme]) {
        var tokens: [String] = []
        var morphemes: [Morpheme] = []
        // Special tokens written in the text stay whole (transformers splits on them first).
        for (segment, isSpecial) in splitOnSpecialTokens(text) {
            if isSpecial {
                tokens.append(segment)
                continue
            }
            var words: [String]
            if let mecab {
                let normalized = normalizeText ? nfkc(segment) : segment
                let parsed = try mecab.parse(normalized)
                morphemes += parsed
                words = parsed.map { doLowerCase ? $0.surface.lowercased() : $0.surface }
            } else {
                words = [segment]
            }
            switch subword {
            case .wordpiece?: tokens += words.flatMap { wordPiece.tokenize($0) }
            case .character?: tokens += words.flatMap { characterTokens($0) }
            case nil: tokens += words
            }
        }
        return (tokens, morphemes)
    }

    /// transformers' CharacterTokenizer: NFKC, then each code point or the unknown token.
    func characterTokens(_ word: String) -> [String] {
        let text = normalizeText ? nfkc(word) : word
        return text.unicodeScalars.map { vocabulary.id(String($0)) != nil ? String($0) : unknownToken }
    }

    func splitOnSpecialTokens(_ text: String) -> [(String, Bool)] {
        var pieces: [(String, Bool)] = []
        var rest = Substring(text)
        let specials = specialTokens.sorted { $0.count > $1.count }
        while !rest.isEmpty {
            var earliest: (Range<Substring.Index>, String)?
            for special in specials {
                if let range = rest.range(of: special), earliest == nil || range.lowerBound < earliest!.0.lowerBound {
                    earliest = (range, special)
                }
            }
            guard let (range, special) = earliest else {
                pieces.append((String(rest), false))
                break
            }
            if range.lowerBound > rest.startIndex { pieces.append((String(rest[..<range.lowerBound]), false)) }
            pieces.append((special, true))
            rest = rest[range.upperBound...]
        }
        return pieces
    }

    public func encode(_ text: String, options: EncodingOptions) throws -> Encoding {
        let (tokens, morphemes) = try tokenize(text)
        let limit = options.maxLength ?? modelMaxLength
        let room = options.addSpecialTokens ? max(limit - 2, 0) : limit
        let kept = Array(tokens.prefix(room))
        var all = options.addSpecialTokens ? [classToken] + kept + [separatorToken] : kept
        let unknownId = vocabulary.id(unknownToken)!
        var ids = all.map { vocabulary.id($0) ?? unknownId }
        var mask = Array(repeating: 1, count: ids.count)
        if options.padToMaxLength && ids.count < limit {
            let padding = limit - ids.count
            ids += Array(repeating: padTokenId, count: padding)
            mask += Array(repeating: 0, count: padding)
            all += Array(repeating: padToken, count: padding)
        }
        return Encoding(ids: ids, attentionMask: mask, tokens: all, morphemes: mecab == nil ? nil : morphemes,
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
