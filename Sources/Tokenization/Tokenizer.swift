// One entry point for the tokenizers of model folders: `loadTokenizer(folder:)` reads
// tokenizer_config.json (and the files it implies) from a transformers folder or the `tokenizer/`
// folder of a diffusers pipeline, and returns a tokenizer giving ids, attention mask, tokens and, for
// MeCab pipelines, the morphemes. Classes: BertJapaneseTokenizer, CLIPTokenizer, T5Tokenizer and
// XLMRobertaTokenizer (tokenizer.json when present, else the SentencePiece model file), and any other class
// with a tokenizer.json (FastTokenizer); a folder with only a tokenizer.json loads that.

import Foundation

public struct Encoding: Equatable, Codable, Sendable {
    public var ids: [Int]
    public var attentionMask: [Int]
    public var tokens: [String]
    /// The MeCab morphemes the text was split into (MeCab pipelines only).
    public var morphemes: [Morpheme]?
    /// Set when the text had more tokens than fit: how many were dropped.
    public var truncatedTokens: Int

    enum CodingKeys: String, CodingKey {
        case ids, attentionMask = "attention_mask", tokens, morphemes, truncatedTokens = "truncated_tokens"
    }
}

public struct EncodingOptions: Sendable {
    /// Pad to this length (the model's maximum by default); nil: no padding.
    public var padToMaxLength = false
    /// Overrides the tokenizer's `model_max_length`.
    public var maxLength: Int?
    public var addSpecialTokens = true

    public init(padToMaxLength: Bool = false, maxLength: Int? = nil, addSpecialTokens: Bool = true) {
        self.padToMaxLength = padToMaxLength
        self.maxLength = maxLength
        self.addSpecialTokens = addSpecialTokens
    }
}

public protocol TextTokenizer: Sendable {
    /// The longest sequence the model takes (tokenizer_config.json's model_max_length).
    var modelMaxLength: Int { get }
    var padTokenId: Int { get }
    func encode(_ text: String, options: EncodingOptions) throws -> Encoding
}

extension TextTokenizer {
    public func encode(_ text: String) throws -> Encoding { try encode(text, options: EncodingOptions()) }
}

/// The largest text a tokenizer accepts, in UTF-8 bytes (a prompt is a few hundred).
public let maxTextBytes = 1 << 20

/// Checks text that came from outside (a file, stdin, an argument) before it is tokenized.
public func validatedText(_ data: Data, source: String) throws -> String {
    guard let text = String(data: data, encoding: .utf8) else { throw TokenizationError.invalidUTF8(source: source) }
    return try validatedText(text, source: source)
}

public func validatedText(_ text: String, source: String) throws -> String {
    if text.utf8.contains(0) { throw TokenizationError.nulCharacter(source: source) }
    if text.utf8.count > maxTextBytes { throw TokenizationError.inputTooLong(bytes: text.utf8.count, limit: maxTextBytes) }
    return text
}

/// Options for loading: an extra user dictionary (`--user-dic`) and the system dictionary to use.
public struct TokenizerLoadOptions: Sendable {
    public var extraUserDictionaries: [String] = []
    public var systemDictionary: String?
    /// For SentencePiece folders that have both: read the slow .model file rather than tokenizer.json.
    public var preferSentencePieceModel = false
    public init(extraUserDictionaries: [String] = [], systemDictionary: String? = nil, preferSentencePieceModel: Bool = false) {
        self.extraUserDictionaries = extraUserDictionaries
        self.systemDictionary = systemDictionary
        self.preferSentencePieceModel = preferSentencePieceModel
    }
}

/// Loads the tokenizer of a model folder (its `tokenizer/` subfolder when there is one).
public func loadTokenizer(folder: URL, options: TokenizerLoadOptions = TokenizerLoadOptions()) throws -> any TextTokenizer {
    var folder = folder
    if FileManager.default.fileExists(atPath: folder.appendingPathComponent("tokenizer/tokenizer_config.json").path) {
        folder = folder.appendingPathComponent("tokenizer")
    }
    let configURL = folder.appendingPathComponent("tokenizer_config.json")
    let jsonURL = folder.appendingPathComponent("tokenizer.json")
    let hasJSON = FileManager.default.fileExists(atPath: jsonURL.path)
    guard FileManager.default.fileExists(atPath: configURL.path) else {
        if hasJSON { return try FastTokenizer(folder: folder, config: [:], options: options) }
        throw TokenizationError.missingFile(path: configURL.path)
    }
    let raw: [String: Any]
    do {
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any] else {
            throw TokenizationError.invalidFile(path: configURL.path, reason: "not a JSON object")
        }
        raw = object
    } catch let error as TokenizationError {
        throw error
    } catch {
        throw TokenizationError.invalidFile(path: configURL.path, reason: "not JSON: \(error.localizedDescription)")
    }
    let tokenizerClass = raw["tokenizer_class"] as? String ?? ""
    switch tokenizerClass {
    case "BertJapaneseTokenizer":
        return try BertJapaneseTokenizer(folder: folder, config: raw, options: options)
    case "CLIPTokenizer", "CLIPTokenizerFast":
        return try CLIPTokenizer(folder: folder, config: raw)
    default:
        break
    }
    // SentencePiece tokenizers: tokenizer.json when there is one (as transformers' AutoTokenizer), else the
    // slow model file with the class's special-token rules. Any other class with a tokenizer.json: the JSON.
    let sentencePiece: [String: (SentencePieceTokenizer.Wrapper, String)] = [
        "T5Tokenizer": (.t5, "spiece.model"), "T5TokenizerFast": (.t5, "spiece.model"),
        "XLMRobertaTokenizer": (.xlmRoberta, "sentencepiece.bpe.model"), "XLMRobertaTokenizerFast": (.xlmRoberta, "sentencepiece.bpe.model"),
    ]
    if let (wrapper, file) = sentencePiece[tokenizerClass],
       !hasJSON || (options.preferSentencePieceModel && FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path)) {
        return try SentencePieceTokenizer(folder: folder, modelFile: file, config: raw, wrapper: wrapper, options: options)
    }
    if hasJSON { return try FastTokenizer(folder: folder, config: raw, options: options) }
    throw TokenizationError.unsupported(path: configURL.path, reason: "tokenizer_class '\(tokenizerClass)' without a tokenizer.json (supported: BertJapaneseTokenizer, CLIPTokenizer, T5Tokenizer, XLMRobertaTokenizer, or any class with a tokenizer.json)")
}
