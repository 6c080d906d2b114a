// MeCab in front of a subword model (JPGen's "MeCab feeds the text encoder" path), and the MeCab
// dictionary resolution shared with BertJapaneseTokenizer.
//
// A SentencePiece or tokenizer.json model trained on MeCab-segmented text (words separated by single
// spaces) asks for the same split at run time in its tokenizer_config.json:
//
//   "jpgen_pre_tokenizer": "mecab",
//   "mecab_kwargs": {"mecab_dic": "ipadic"},        // or {"mecab_dic": null, "mecab_option": "-d DIR"}
//   "jpgen_user_dictionary": "jpgen-prompts.dic"     // optional, as for BertJapaneseTokenizer
//
// The text (NFKC-normalised first unless mecab_kwargs.normalize_text is false, as transformers'
// MecabTokenizer) is split into morphemes, whose surfaces joined by one space go to the subword model;
// the morphemes are reported in the Encoding. Special tokens in the text are split off before MeCab.

import Foundation

public struct MeCabPreTokenizer: Sendable {
    public let mecab: MeCab
    public let normalizeText: Bool

    /// nil when the config asks for no pre-tokenizer; an error for an unknown one.
    init?(config: [String: Any], folder: URL, options: TokenizerLoadOptions) throws {
        guard let kind = config["jpgen_pre_tokenizer"] else { return nil }
        let configPath = folder.appendingPathComponent("tokenizer_config.json").path
        guard let name = kind as? String, name == "mecab" else {
            throw TokenizationError.unsupported(path: configPath, reason: "jpgen_pre_tokenizer '\(kind)' (supported: mecab)")
        }
        mecab = try mecabFromConfig(config, folder: folder, options: options)
        normalizeText = (config["mecab_kwargs"] as? [String: Any])?["normalize_text"] as? Bool ?? true
    }

    /// The text as the subword model sees it (morpheme surfaces joined by spaces), and the morphemes.
    public func split(_ text: String) throws -> (String, [Morpheme]) {
        let morphemes = try mecab.parse(normalizeText ? nfkc(text) : text)
        return (morphemes.map(\.surface).joined(separator: " "), morphemes)
    }
}

/// The MeCab of a tokenizer config. Dictionary: the caller's; else mecab_kwargs.mecab_dic (ipadic -> the
/// system ipadic-utf8); else the -d of mecab_option (with mecab_dic null). User dictionaries: the -u of
/// mecab_option, the config's jpgen_user_dictionary and the caller's (--user-dic).
/// (transformers' default mecab_dic is unidic_lite, which JPGen does not read: that is an error.)
func mecabFromConfig(_ config: [String: Any], folder: URL, options: TokenizerLoadOptions) throws -> MeCab {
    let configPath = folder.appendingPathComponent("tokenizer_config.json").path
    let mecabKwargs = config["mecab_kwargs"] as? [String: Any] ?? [:]
    let option = (mecabKwargs["mecab_option"] as? String ?? "").split(separator: " ").map {
        $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
    }
    func optionValue(_ flag: String) -> [String] {
        option.indices.filter { option[$0] == flag && $0 + 1 < option.count }.map { option[$0 + 1] }
    }
    var dictionary = options.systemDictionary
    if dictionary == nil {
        if mecabKwargs.keys.contains("mecab_dic") {
            switch mecabKwargs["mecab_dic"] as? String {
            case "ipadic": dictionary = MeCab.systemIPADic
            case nil: dictionary = optionValue("-d").last
            case let other?:
                throw TokenizationError.unsupported(path: configPath, reason: "mecab_dic '\(other)': JPGen reads ipadic (Debian mecab-ipadic-utf8) or the -d folder of mecab_option")
            }
        } else {
            throw TokenizationError.unsupported(path: configPath, reason: "no mecab_kwargs.mecab_dic: transformers then uses unidic_lite, which JPGen does not read; set mecab_dic to ipadic or null with -d in mecab_option")
        }
    }
    var users = optionValue("-u") + options.extraUserDictionaries
    if let name = config["jpgen_user_dictionary"] as? String {
        users.insert(try resolveUserDictionary(name, folder: folder, config: configPath), at: 0)
    }
    return try MeCab(dictionary: dictionary, userDictionaries: users)
}
