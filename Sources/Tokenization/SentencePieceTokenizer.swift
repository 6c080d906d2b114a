// transformers' SentencePiece tokenizers over the slow model file, with their special-token rules:
//   T5Tokenizer (spiece.model): sentencepiece ids, then </s>; <pad> pads; <extra_id_0..N-1> sentinels take
//     the ids after the model's pieces in reverse order (<extra_id_{N-1}> first), N = extra_ids (100).
//   XLMRobertaTokenizer (sentencepiece.bpe.model): the fairseq dictionary: <s> 0, <pad> 1, </s> 2, <unk> 3,
//     piece i -> i + 1 (the fairseq offset; sentencepiece's <unk> 0 -> 3), <mask> = pieces + 1;
//     <s> ids </s>.
// Special tokens written in the text stay whole (the text is split on them first, as transformers'
// added-tokens trie does); each other chunk is encoded by SentencePieceProcessor. Truncation keeps the
// first model_max_length - (specials) ids.

import Foundation

public final class SentencePieceTokenizer: TextTokenizer, @unchecked Sendable {
    public enum Wrapper: String, Sendable { case t5, xlmRoberta }

    public let wrapper: Wrapper
    public let processor: SentencePieceProcessor
    public let modelMaxLength: Int
    public let padTokenId: Int
    /// Special tokens recognised in the text, with their ids.
    let specialIds: [String: Int]
    let splitter: SpecialTokenSplitter
    let prefixIds: [Int], suffixIds: [Int]
    let tokensById: [Int: String]
    let preTokenizer: MeCabPreTokenizer?

    init(folder: URL, modelFile: String, config: [String: Any], wrapper: Wrapper, options: TokenizerLoadOptions) throws {
        let url = folder.appendingPathComponent(modelFile)
        let processor = try SentencePieceProcessor(contentsOf: url)
        self.processor = processor
        self.wrapper = wrapper
        let model = processor.model
        let n = model.pieces.count
        func token(_ key: String, _ fallback: String) -> String { specialToken(config, key) ?? fallback }
        var specials: [String: Int] = [:]
        var names: [Int: String] = [:]
        for (i, p) in model.pieces.enumerated() { names[i] = p.piece }
        func pieceId(_ t: String, _ key: String) throws -> Int {
            guard let id = processor.allIds[t] else {
                throw TokenizationError.invalidFile(path: url.path, reason: "the \(key) '\(t)' is not a piece of the model")
            }
            return id
        }
        switch wrapper {
        case .t5:
            let eos = token("eos_token", "</s>"), unk = token("unk_token", "<unk>"), pad = token("pad_token", "<pad>")
            for (t, key) in [(eos, "eos_token"), (unk, "unk_token"), (pad, "pad_token")] { specials[t] = try pieceId(t, key) }
            let extra = config["extra_ids"] as? Int ?? 100
            for i in 0..<max(extra, 0) {
                specials["<extra_id_\(i)>"] = n + extra - 1 - i
                names[n + extra - 1 - i] = "<extra_id_\(i)>"
            }
            prefixIds = []
            suffixIds = [specials[eos]!]
            padTokenId = specials[pad]!
        case .xlmRoberta:
            let bos = token("bos_token", "<s>"), eos = token("eos_token", "</s>"), unk = token("unk_token", "<unk>")
            let pad = token("pad_token", "<pad>"), mask = token("mask_token", "<mask>")
            names = [0: bos, 1: pad, 2: eos, 3: unk, n + 1: mask]
            for (i, p) in model.pieces.enumerated() where i >= 3 { names[i + 1] = p.piece }
            specials = [bos: 0, pad: 1, eos: 2, unk: 3, mask: n + 1]
            prefixIds = [0]
            suffixIds = [2]
            padTokenId = 1
        }
        specialIds = specials
        splitter = SpecialTokenSplitter(specials.keys.sorted { $0.utf8.count != $1.utf8.count ? $0.utf8.count > $1.utf8.count : $0 < $1 })
        tokensById = names
        modelMaxLength = min(config["model_max_length"] as? Int ?? 512, 1 << 20)
        preTokenizer = try MeCabPreTokenizer(config: config, folder: folder, options: options)
    }

    /// The model's ids for plain text (no special tokens): sentencepiece's, mapped by the wrapper.
    func pieceIds(_ text: String) -> [Int] {
        let ids = processor.encode(text)
        switch wrapper {
        case .t5: return ids
        case .xlmRoberta: return ids.map { $0 == processor.model.unkId ? 3 : $0 + 1 }
        }
    }

    public func encode(_ text: String, options: EncodingOptions) throws -> Encoding {
        var ids: [Int] = []
        var morphemes: [Morpheme]? = preTokenizer == nil ? nil : []
        for (chunk, special) in splitter.split(text) {
            if special {
                ids.append(specialIds[chunk]!)
            } else if let preTokenizer {
                let (joined, parsed) = try preTokenizer.split(chunk)
                morphemes! += parsed
                ids += pieceIds(joined)
            } else {
                ids += pieceIds(chunk)
            }
        }
        return finishEncoding(ids: ids, prefix: options.addSpecialTokens ? prefixIds : [],
                              suffix: options.addSpecialTokens ? suffixIds : [],
                              limit: options.maxLength ?? modelMaxLength, pad: options.padToMaxLength ? padTokenId : nil,
                              morphemes: morphemes) { self.tokensById[$0] ?? "<unk>" }
    }
}

/// The value of a special-token key of a tokenizer config: a string or an AddedToken object ({"content": ...}).
func specialToken(_ config: [String: Any], _ key: String) -> String? {
    if let s = config[key] as? String { return s }
    if let o = config[key] as? [String: Any], let s = o["content"] as? String { return s }
    return nil
}

/// Splits text on special tokens (leftmost match, the longest token at a position), as transformers'
/// added-tokens trie: (chunk, isSpecial) in order, no empty chunks. `specials` sorted longest first.
func splitOnSpecialTokens(_ text: String, specials: [String]) -> [(String, Bool)] {
    SpecialTokenSplitter(specials).split(text)
}

/// The special-token split with the tokens' bytes prepared once.
struct SpecialTokenSplitter: Sendable {
    let tokens: [[UInt8]]
    let firstBytes: [Bool]

    /// `specials` in the order they are tried at a position (longest first).
    init(_ specials: [String]) {
        tokens = specials.map { Array($0.utf8) }.filter { !$0.isEmpty }
        var first = [Bool](repeating: false, count: 256)
        for t in tokens { first[Int(t[0])] = true }
        firstBytes = first
    }

    func split(_ text: String) -> [(String, Bool)] {
        if text.isEmpty { return [] }
        var copy = text
        let pieces = copy.withUTF8 { utf8 -> [(String, Bool)] in
            var out: [(String, Bool)] = []
            var chunkStart = 0, i = 0
            while i < utf8.count {
                if firstBytes[Int(utf8[i])], let t = tokens.first(where: { i + $0.count <= utf8.count && utf8[i..<(i + $0.count)].elementsEqual($0) }) {
                    if i > chunkStart { out.append((String(decoding: utf8[chunkStart..<i], as: UTF8.self), false)) }
                    out.append((String(decoding: t, as: UTF8.self), true))
                    i += t.count
                    chunkStart = i
                } else {
                    i += 1
                }
            }
            if chunkStart == 0 { return [] }   // no special token: the text itself, without a copy
            if chunkStart < utf8.count { out.append((String(decoding: utf8[chunkStart...], as: UTF8.self), false)) }
            return out
        }
        return pieces.isEmpty ? [(text, false)] : pieces
    }
}

/// Truncates ids to fit `limit` with the prefix and suffix, adds them, and pads: the Encoding.
func finishEncoding(ids: [Int], prefix: [Int], suffix: [Int], limit: Int, pad: Int?, morphemes: [Morpheme]?,
                    token: (Int) -> String) -> Encoding {
    let room = max(limit - prefix.count - suffix.count, 0)
    var all = prefix + ids.prefix(room) + suffix
    var mask = Array(repeating: 1, count: all.count)
    if let pad, all.count < limit {
        let n = limit - all.count
        all += Array(repeating: pad, count: n)
        mask += Array(repeating: 0, count: n)
    }
    return Encoding(ids: all, attentionMask: mask, tokens: all.map(token), morphemes: morphemes,
                    truncatedTokens: max(ids.count - room, 0))
}
