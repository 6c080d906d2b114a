// CLIPTokenizer as transformers builds it on the tokenizers library (models/clip/tokenization_clip.py):
//   special tokens (<|startoftext|>, <|endoftext|>) kept whole;
//   normalise: NFC, every run of white space -> " ", lowercase;
//   split: keep the matches of  <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
//   byte-level: each UTF-8 byte of a piece becomes its printable stand-in character (GPT-2's table);
//   BPE with "</w>" on the last symbol of each piece, merges applied lowest rank first;
//   <|startoftext|> ids <|endoftext|>, truncated and padded to model_max_length (77) with the pad token
//   the files name (SD1: <|endoftext|>; SDXL's second encoder: "!").

import Foundation

public final class CLIPTokenizer: TextTokenizer, @unchecked Sendable {
    public let vocabulary: [String: Int]
    let tokensById: [Int: String]
    let ranks: [String: Int]        // "a b" -> merge rank
    public let modelMaxLength: Int
    public let bosToken: String, eosToken: String, padToken: String, unknownToken: String
    let lock = NSLock()
    var cache: [String: [String]] = [:]

    public var padTokenId: Int { vocabulary[padToken] ?? 0 }

    public init(folder: URL, config: [String: Any]) throws {
        let vocabURL = folder.appendingPathComponent("vocab.json"), mergesURL = folder.appendingPathComponent("merges.txt")
        let jsonURL = folder.appendingPathComponent("tokenizer.json")
        let vocab: [String: Int]
        var ranks: [String: Int] = [:]
        if !FileManager.default.fileExists(atPath: vocabURL.path), FileManager.default.fileExists(atPath: jsonURL.path) {
            // transformers 5 saves only tokenizer.json: the same BPE vocabulary and merges under "model".
            (vocab, ranks) = try Self.bpeFromTokenizerJSON(jsonURL)
        } else {
            for url in [vocabURL, mergesURL] where !FileManager.default.fileExists(atPath: url.path) {
                throw TokenizationError.missingFile(path: url.path)
            }
            guard let v = try? JSONSerialization.jsonObject(with: Data(contentsOf: vocabURL)) as? [String: Int] else {
                throw TokenizationError.invalidFile(path: vocabURL.path, reason: "not a JSON object of token -> id")
            }
            vocab = v
            guard let mergesText = String(data: try Data(contentsOf: mergesURL), encoding: .utf8) else {
                throw TokenizationError.invalidFile(path: mergesURL.path, reason: "not UTF-8")
            }
            for (lineNumber, line) in mergesText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                if line.hasPrefix("#version") || line.isEmpty { continue }
                let parts = line.split(separator: " ")
                guard parts.count == 2 else {
                    throw TokenizationError.invalidFile(path: mergesURL.path, reason: "line \(lineNumber + 1) is not two symbols: '\(line)'")
                }
                if ranks[String(line)] == nil { ranks[String(line)] = ranks.count }
            }
        }
        // Special tokens: tokenizer_config.json, then special_tokens_map.json, then CLIP's defaults.
        var specials = config
        let mapURL = folder.appendingPathComponent("special_tokens_map.json")
        if let map = try? JSONSerialization.jsonObject(with: Data(contentsOf: mapURL)) as? [String: Any] {
            for (key, value) in map where specials[key] == nil { specials[key] = value }
        }
        func token(_ key: String, _ fallback: String) -> String {
            if let s = specials[key] as? String { return s }
            if let o = specials[key] as? [String: Any], let s = o["content"] as? String { return s }
            return fallback
        }
        bosToken = token("bos_token", "<|startoftext|>")
        eosToken = token("eos_token", "<|endoftext|>")
        unknownToken = token("unk_token", "<|endoftext|>")
        padToken = token("pad_token", "<|endoftext|>")
        for t in [bosToken, eosToken, padToken, unknownToken] where vocab[t] == nil {
            throw TokenizationError.invalidFile(path: vocabURL.path, reason: "the special token \(t) is not in the vocabulary")
        }
        vocabulary = vocab
        tokensById = Dictionary(vocab.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        self.ranks = ranks
        modelMaxLength = min(config["model_max_length"] as? Int ?? 77, 1 << 20)
    }

    public func encode(_ text: String, options: EncodingOptions) throws -> Encoding {
        var tokens: [String] = []
        for (segment, special) in splitOnSpecial(text) {
            if special { tokens.append(segment); continue }
            for piece in pieces(normalize(segment)) {
                let encoded = String(String.UnicodeScalarView(piece.utf8.map { byteToUnicode[Int($0)] }))
                tokens += bpe(encoded)
            }
        }
        let limit = options.maxLength ?? modelMaxLength
        let room = options.addSpecialTokens ? max(limit - 2, 0) : limit
        let kept = Array(tokens.prefix(room))
        var all = options.addSpecialTokens ? [bosToken] + kept + [eosToken] : kept
        let unknownId = vocabulary[unknownToken]!
        var ids = all.map { vocabulary[$0] ?? unknownId }
        var mask = Array(repeating: 1, count: ids.count)
        if options.padToMaxLength && ids.count < limit {
            let n = limit - ids.count
            ids += Array(repeating: padTokenId, count: n)
            mask += Array(repeating: 0, count: n)
            all += Array(repeating: padToken, count: n)
        }
        return Encoding(ids: ids, attentionMask: mask, tokens: all, morphemes: nil, truncatedTokens: tokens.count - kept.count)
    }

    func splitOnSpecial(_ text: String) -> [(String, Bool)] {
        var out: [(String, Bool)] = []
        var rest = Substring(text)
        let specials = Array(Set([bosToken, eosToken]))
        while !rest.isEmpty {
            let hits = specials.compactMap { s in rest.range(of: s).map { ($0, s) } }
            guard let (range, s) = hits.min(by: { $0.0.lowerBound < $1.0.lowerBound }) else {
                out.append((String(rest), false))
                break
            }
            if range.lowerBound > rest.startIndex { out.append((String(rest[..<range.lowerBound]), false)) }
            out.append((s, true))
            rest = rest[range.upperBound...]
        }
        return out
    }

    /// NFC, white-space runs to one space, lowercase.
    func normalize(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var inSpace = false
        for scalar in text.precomposedStringWithCanonicalMapping.unicodeScalars {
            if scalar.properties.isWhitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
            } else {
                out.append(scalar)
                inSpace = false
            }
        }
        return String(out).lowercased()
    }

    /// The matches of CLIP's split pattern, in order; everything else (white space) is dropped.
    func pieces(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var out: [String] = []
        var i = 0
        func isLetter(_ s: Unicode.Scalar) -> Bool {
            switch s.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
            default: return false
            }
        }
        func isNumber(_ s: Unicode.Scalar) -> Bool {
            switch s.properties.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: return true
            default: return false
            }
        }
        let contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
        while i < scalars.count {
            let s = scalars[i]
            if s == "'" {
                if let c = contractions.first(where: { c in
                    let cs = Array(c.unicodeScalars)
                    return i + cs.count <= scalars.count && Array(scalars[i..<(i + cs.count)]) == cs
                }) {
                    out.append(c)
                    i += c.unicodeScalars.count
                    continue
                }
            }
            if isLetter(s) {
                var j = i
                while j < scalars.count && isLetter(scalars[j]) { j += 1 }
                out.append(String(String.UnicodeScalarView(scalars[i..<j])))
                i = j
            } else if isNumber(s) {
                out.append(String(s))
                i += 1
            } else if s.properties.isWhitespace {
                i += 1
            } else {
                var j = i
                while j < scalars.count && !isLetter(scalars[j]) && !isNumber(scalars[j]) && !scalars[j].properties.isWhitespace {
                    j += 1
                }
                out.append(String(String.UnicodeScalarView(scalars[i..<j])))
                i = j
            }
        }
        return out
    }

    /// Byte-pair merges of one byte-level word, "</w>" on its last symbol.
    func bpe(_ word: String) -> [String] {
        lock.lock()
        if let hit = cache[word] { lock.unlock(); return hit }
        lock.unlock()
        var symbols = word.unicodeScalars.map { String($0) }
        guard !symbols.isEmpty else { return [] }
        symbols[symbols.count - 1] += "</w>"
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for k in 0..<(symbols.count - 1) {
                if let rank = ranks[symbols[k] + " " + symbols[k + 1]], best == nil || rank < best!.rank {
                    best = (rank, k)
                }
            }
            guard let (_, k) = best else { break }
            let first = symbols[k], second = symbols[k + 1]
            var merged: [String] = []
            var i = 0
            while i < symbols.count {
                if i < symbols.count - 1 && symbols[i] == first && symbols[i + 1] == second {
                    merged.append(first + second)
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
        lock.lock()
        if cache.count < 100_000 { cache[word] = symbols }
        lock.unlock()
        return symbols
    }
}

/// GPT-2's byte -> printable character table: printable Latin-1 bytes map to themselves, the others to
/// U+0100 upwards, in byte order.
let byteToUnicode: [Unicode.Scalar] = {
    var printable = Set<Int>()
    for range in [33...126, 161...172, 174...255] { printable.formUnion(range) }
    var table = [Unicode.Scalar](repeating: " ", count: 256)
    var next = 256
    for byte in 0..<256 {
        if printable.contains(byte) {
            table[byte] = Unicode.Scalar(UInt32(byte))!
        } else {
            table[byte] = Unicode.Scalar(UInt32(next))!
            next += 1
        }
    }
    return table
}()

extension CLIPTokenizer {
    /// The BPE model of a fast tokenizer file: model.vocab (token -> id) and model.merges, each merge a
    /// "a b" string (tokenizers < 0.20) or an ["a", "b"] pair (newer), in rank order.
    static func bpeFromTokenizerJSON(_ url: URL) throws -> (vocab: [String: Int], ranks: [String: Int]) {
        guard let root = try? JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any],
              let model = root["model"] as? [String: Any] else {
            throw TokenizationError.invalidFile(path: url.path, reason: "not a tokenizer.json with a \"model\" object")
        }
        guard (model["type"] as? String ?? "BPE") == "BPE" else {
            throw TokenizationError.invalidFile(path: url.path, reason: "model type \(model["type"] ?? "?") is not BPE")
        }
        guard let vocab = model["vocab"] as? [String: Int], let merges = model["merges"] as? [Any] else {
            throw TokenizationError.invalidFile(path: url.path, reason: "model.vocab or model.merges is missing")
        }
        var ranks: [String: Int] = [:]
        for (i, merge) in merges.enumerated() {
            let pair: String
            if let text = merge as? String, text.split(separator: " ").count == 2 {
                pair = text
            } else if let parts = merge as? [String], parts.count == 2 {
                pair = parts[0] + " " + parts[1]
            } else {
                throw TokenizationError.invalidFile(path: url.path, reason: "merge \(i) is not a pair of symbols")
            }
            if ranks[pair] == nil { ranks[pair] = ranks.count }
        }
        return (vocab, ranks)
    }
}
