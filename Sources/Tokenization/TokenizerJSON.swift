// A fast tokenizer from its `tokenizer.json` (the `tokenizers` library's serialisation), the pipeline of
// tokenizers' TokenizerImpl::encode:
//   1. added tokens: those with normalized=false are found in the raw text (leftmost, longest; lstrip /
//      rstrip take the white space beside them), those with normalized=true in the normalised pieces;
//   2. normalizer on each other piece: Sequence, Precompiled, Replace (string or regex), Strip, NFC, NFD,
//      NFKC, NFKD, Lowercase, Prepend;
//   3. pre-tokenizer: Sequence, WhitespaceSplit, Metaspace (prepend_scheme always / first / never, split);
//   4. model: Unigram or BPE (TokenizersModels.swift);
//   5. truncation to model_max_length less the template's special tokens, then the post-processor:
//      TemplateProcessing, RobertaProcessing or BertProcessing (single sequence).
// Other component types are an error naming the type and the file.

import Foundation

public final class FastTokenizer: TextTokenizer, @unchecked Sendable {
    struct AddedToken {
        let id: Int
        let content: [UInt8]
        let lstrip: Bool, rstrip: Bool, singleWord: Bool, normalized: Bool
    }

    indirect enum Normalizer {
        case sequence([Normalizer])
        case precompiled(PrecompiledCharsmap)
        case replace(NSRegularExpression, String)
        case strip(left: Bool, right: Bool)
        case nfc, nfd, nfkc, nfkd, lowercase
        case prepend(String)
    }

    indirect enum PreTokenizer {
        case sequence([PreTokenizer])
        case whitespaceSplit
        case metaspace(replacement: String, prepend: String, split: Bool)
    }

    let model: any TokenizersModel
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let rawAdded: [AddedToken], normalizedAdded: [AddedToken]
    let addedById: [Int: String]
    let prefixIds: [Int], suffixIds: [Int]
    public let modelMaxLength: Int
    public let padTokenId: Int
    let mecab: MeCabPreTokenizer?

    /// Loads `tokenizer.json` of `folder`; `config` is the folder's tokenizer_config.json (may be empty).
    init(folder: URL, config: [String: Any], options: TokenizerLoadOptions) throws {
        let url = folder.appendingPathComponent("tokenizer.json")
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw TokenizationError.missingFile(path: path) }
        let root: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
                throw TokenizationError.invalidFile(path: path, reason: "not a JSON object")
            }
            root = object
        } catch let error as TokenizationError {
            throw error
        } catch {
            throw TokenizationError.invalidFile(path: path, reason: "not JSON: \(error.localizedDescription)")
        }
        guard let modelObject = root["model"] as? [String: Any] else {
            throw TokenizationError.invalidFile(path: path, reason: "no \"model\" object")
        }
        let model = try Self.model(modelObject, path: path)
        self.model = model
        normalizer = try (root["normalizer"] as? [String: Any]).map { try Self.normalizer($0, path: path) }
        preTokenizer = try (root["pre_tokenizer"] as? [String: Any]).map { try Self.preTokenizer($0, path: path) }

        var raw: [AddedToken] = [], normalized: [AddedToken] = [], byId: [Int: String] = [:]
        for (k, entry) in (root["added_tokens"] as? [[String: Any]] ?? []).enumerated() {
            guard let id = entry["id"] as? Int, let content = entry["content"] as? String, !content.isEmpty else {
                throw TokenizationError.invalidFile(path: path, reason: "added_tokens[\(k)] has no id or content")
            }
            let special = entry["special"] as? Bool ?? false
            let token = AddedToken(id: id, content: Array(content.utf8), lstrip: entry["lstrip"] as? Bool ?? false,
                                   rstrip: entry["rstrip"] as? Bool ?? false, singleWord: entry["single_word"] as? Bool ?? false,
                                   normalized: entry["normalized"] as? Bool ?? !special)
            if token.normalized { normalized.append(token) } else { raw.append(token) }
            byId[id] = content
        }
        rawAdded = raw.sorted { $0.content.count > $1.content.count }
        normalizedAdded = normalized.sorted { $0.content.count > $1.content.count }
        addedById = byId

        (prefixIds, suffixIds) = try Self.postProcessor(root["post_processor"] as? [String: Any], path: path)
        let truncation = (root["truncation"] as? [String: Any])?["max_length"] as? Int
        modelMaxLength = min(config["model_max_length"] as? Int ?? truncation ?? 512, 1 << 20)
        let padToken = specialToken(config, "pad_token")
        padTokenId = padToken.flatMap { t in byId.first { $0.value == t }?.key ?? model.id(t) }
            ?? ((root["padding"] as? [String: Any])?["pad_id"] as? Int) ?? 0
        mecab = try MeCabPreTokenizer(config: config, folder: folder, options: options)
    }

    // MARK: loading the components

    static func model(_ object: [String: Any], path: String) throws -> any TokenizersModel {
        let type = object["type"] as? String ?? (object["merges"] != nil ? "BPE" : "")
        switch type {
        case "Unigram":
            guard let entries = object["vocab"] as? [[Any]] else {
                throw TokenizationError.invalidFile(path: path, reason: "model.vocab of a Unigram model is not a list of [piece, score]")
            }
            var vocab: [(String, Double)] = []
            vocab.reserveCapacity(entries.count)
            for (i, e) in entries.enumerated() {
                guard e.count == 2, let piece = e[0] as? String, let score = (e[1] as? NSNumber)?.doubleValue else {
                    throw TokenizationError.invalidFile(path: path, reason: "model.vocab[\(i)] is not [piece, score]")
                }
                vocab.append((piece, score))
            }
            return try UnigramModel(vocab: vocab, unkId: object["unk_id"] as? Int, byteFallback: object["byte_fallback"] as? Bool ?? false, path: path)
        case "BPE":
            guard let vocab = object["vocab"] as? [String: Int] else {
                throw TokenizationError.invalidFile(path: path, reason: "model.vocab of a BPE model is not an object of token -> id")
            }
            var merges: [(String, String)] = []
            for (i, m) in (object["merges"] as? [Any] ?? []).enumerated() {
                if let s = m as? String, let space = s.firstIndex(of: " ") {
                    merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
                } else if let pair = m as? [String], pair.count == 2 {
                    merges.append((pair[0], pair[1]))
                } else {
                    throw TokenizationError.invalidFile(path: path, reason: "model.merges[\(i)] is not a pair")
                }
            }
            if let dropout = object["dropout"] as? Double, dropout > 0 {
                throw TokenizationError.unsupported(path: path, reason: "BPE dropout \(dropout) (random; JPGen encodes deterministically)")
            }
            return try BPEModel(vocab: vocab, merges: merges, unkToken: object["unk_token"] as? String,
                                fuseUnk: object["fuse_unk"] as? Bool ?? false, byteFallback: object["byte_fallback"] as? Bool ?? false,
                                continuingSubwordPrefix: object["continuing_subword_prefix"] as? String,
                                endOfWordSuffix: object["end_of_word_suffix"] as? String,
                                ignoreMerges: object["ignore_merges"] as? Bool ?? false, path: path)
        default:
            throw TokenizationError.unsupported(path: path, reason: "model type '\(type)' (supported: Unigram, BPE)")
        }
    }

    static func pattern(_ object: [String: Any]?, path: String, what: String) throws -> NSRegularExpression {
        if let s = object?["String"] as? String { return try NSRegularExpression(pattern: NSRegularExpression.escapedPattern(for: s)) }
        if let r = object?["Regex"] as? String {
            do { return try NSRegularExpression(pattern: r) } catch {
                throw TokenizationError.invalidFile(path: path, reason: "\(what): the regex '\(r)' does not compile")
            }
        }
        throw TokenizationError.invalidFile(path: path, reason: "\(what) has no String or Regex pattern")
    }

    static func normalizer(_ o: [String: Any], path: String) throws -> Normalizer {
        let type = o["type"] as? String ?? ""
        switch type {
        case "Sequence": return .sequence(try (o["normalizers"] as? [[String: Any]] ?? []).map { try normalizer($0, path: path) })
        case "Precompiled":
            guard let b64 = o["precompiled_charsmap"] as? String else { return .sequence([]) }
            guard let data = Data(base64Encoded: b64) else {
                throw TokenizationError.invalidFile(path: path, reason: "normalizer Precompiled: precompiled_charsmap is not base64")
            }
            return .precompiled(try PrecompiledCharsmap(data, path: path))
        case "Replace":
            return .replace(try pattern(o["pattern"] as? [String: Any], path: path, what: "normalizer Replace"),
                            NSRegularExpression.escapedTemplate(for: o["content"] as? String ?? ""))
        case "Strip": return .strip(left: o["strip_left"] as? Bool ?? true, right: o["strip_right"] as? Bool ?? true)
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(o["prepend"] as? String ?? "")
        default:
            throw TokenizationError.unsupported(path: path, reason: "normalizer type '\(type)' (supported: Sequence, Precompiled, Replace, Strip, NFC, NFD, NFKC, NFKD, Lowercase, Prepend)")
        }
    }

    static func preTokenizer(_ o: [String: Any], path: String) throws -> PreTokenizer {
        let type = o["type"] as? String ?? ""
        switch type {
        case "Sequence": return .sequence(try (o["pretokenizers"] as? [[String: Any]] ?? []).map { try preTokenizer($0, path: path) })
        case "WhitespaceSplit": return .whitespaceSplit
        case "Metaspace":
            let scheme = o["prepend_scheme"] as? String ?? ((o["add_prefix_space"] as? Bool ?? true) ? "always" : "never")
            guard ["always", "first", "never"].contains(scheme) else {
                throw TokenizationError.invalidFile(path: path, reason: "Metaspace prepend_scheme '\(scheme)'")
            }
            return .metaspace(replacement: o["replacement"] as? String ?? "▁", prepend: scheme, split: o["split"] as? Bool ?? true)
        default:
            throw TokenizationError.unsupported(path: path, reason: "pre_tokenizer type '\(type)' (supported: Sequence, WhitespaceSplit, Metaspace)")
        }
    }

    /// The ids before and after the sequence (single-sequence template).
    static func postProcessor(_ o: [String: Any]?, path: String) throws -> ([Int], [Int]) {
        guard let o else { return ([], []) }
        let type = o["type"] as? String ?? ""
        switch type {
        case "TemplateProcessing":
            let specials = o["special_tokens"] as? [String: [String: Any]] ?? [:]
            var before: [Int] = [], after: [Int] = [], seenSequence = false
            for item in o["single"] as? [[String: Any]] ?? [] {
                if item["Sequence"] != nil { seenSequence = true; continue }
                guard let name = (item["SpecialToken"] as? [String: Any])?["id"] as? String,
                      let ids = specials[name]?["ids"] as? [Int] else {
                    throw TokenizationError.invalidFile(path: path, reason: "post_processor: a template item is not a known special token")
                }
                if seenSequence { after += ids } else { before += ids }
            }
            return (before, after)
        case "RobertaProcessing", "BertProcessing":
            guard let cls = (o["cls"] as? [Any])?.last as? Int, let sep = (o["sep"] as? [Any])?.last as? Int else {
                throw TokenizationError.invalidFile(path: path, reason: "post_processor \(type) without cls/sep ids")
            }
            return ([cls], [sep])
        default:
            throw TokenizationError.unsupported(path: path, reason: "post_processor type '\(type)' (supported: TemplateProcessing, RobertaProcessing, BertProcessing)")
        }
    }

    // MARK: encoding

    public func encode(_ text: String, options: EncodingOptions) throws -> Encoding {
        var ids: [Int] = []
        var morphemes: [Morpheme]? = mecab == nil ? nil : []
        for (segment, added, atStart) in splitAdded(Array(text.utf8), tokens: rawAdded, startsAtZero: true) {
            if let added { ids.append(added); continue }
            var piece = String(decoding: segment, as: UTF8.self)
            if let mecab {
                let (joined, parsed) = try mecab.split(piece)
                morphemes! += parsed
                piece = joined
            }
            let normalizedText = normalizer.map { apply($0, piece) } ?? piece
            for (part, added2, atStart2) in splitAdded(Array(normalizedText.utf8), tokens: normalizedAdded, startsAtZero: atStart) {
                if let added2 { ids.append(added2); continue }
                for word in preTokenize(String(decoding: part, as: UTF8.self), atStart: atStart2) {
                    ids += model.tokenize(word)
                }
            }
        }
        return finishEncoding(ids: ids, prefix: options.addSpecialTokens ? prefixIds : [],
                              suffix: options.addSpecialTokens ? suffixIds : [],
                              limit: options.maxLength ?? modelMaxLength, pad: options.padToMaxLength ? padTokenId : nil,
                              morphemes: morphemes) { self.addedById[$0] ?? self.model.token($0) ?? "<unk>" }
    }

    /// Splits bytes on added tokens: (bytes, the token's id or nil, whether the piece starts the text).
    func splitAdded(_ bytes: [UInt8], tokens: [AddedToken], startsAtZero: Bool) -> [([UInt8], Int?, Bool)] {
        if bytes.isEmpty { return [] }
        if tokens.isEmpty { return [(bytes, nil, startsAtZero)] }
        var out: [([UInt8], Int?, Bool)] = []
        var chunkStart = 0, i = 0
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }
        func isWordByte(_ b: UInt8) -> Bool { b >= 0x80 || (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || b == 0x5F }
        while i < bytes.count {
            var matched: AddedToken?
            for t in tokens where i + t.content.count <= bytes.count && bytes[i..<(i + t.content.count)].elementsEqual(t.content) {
                if t.singleWord {
                    let before = i > 0 && isWordByte(bytes[i - 1]), after = i + t.content.count < bytes.count && isWordByte(bytes[i + t.content.count])
                    if before || after { continue }
                }
                matched = t
                break
            }
            guard let t = matched else { i += 1; continue }
            var start = i, end = i + t.content.count
            if t.lstrip { while start > chunkStart && isSpace(bytes[start - 1]) { start -= 1 } }
            if t.rstrip { while end < bytes.count && isSpace(bytes[end]) { end += 1 } }
            if start > chunkStart { out.append((Array(bytes[chunkStart..<start]), nil, startsAtZero && chunkStart == 0)) }
            out.append((Array(bytes[start..<end]), t.id, false))
            i = end
            chunkStart = end
        }
        if chunkStart < bytes.count { out.append((Array(bytes[chunkStart...]), nil, startsAtZero && chunkStart == 0)) }
        return out
    }

    func apply(_ n: Normalizer, _ s: String) -> String {
        switch n {
        case .sequence(let list): return list.reduce(s) { apply($1, $0) }
        case .precompiled(let map): return map.normalizeLikeTokenizers(s)
        case .replace(let regex, let template):
            return regex.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s), withTemplate: template)
        case .strip(let left, let right):
            var scalars = Substring(s).unicodeScalars[...]
            if left { while let f = scalars.first, f.properties.isWhitespace { scalars = scalars.dropFirst() } }
            if right { while let l = scalars.last, l.properties.isWhitespace { scalars = scalars.dropLast() } }
            return String(String.UnicodeScalarView(scalars))
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return nfkc(s)
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case .prepend(let p): return s.isEmpty ? s : p + s
        }
    }

    func preTokenize(_ text: String, atStart: Bool) -> [String] {
        guard let preTokenizer else { return text.isEmpty ? [] : [text] }
        return run(preTokenizer, [(text, atStart)]).map(\.0)
    }

    /// Applies a pre-tokenizer to each piece; a piece carries whether it starts the original text.
    func run(_ p: PreTokenizer, _ pieces: [(String, Bool)]) -> [(String, Bool)] {
        switch p {
        case .sequence(let list): return list.reduce(pieces) { run($1, $0) }
        case .whitespaceSplit:
            var out: [(String, Bool)] = []
            for (piece, atStart) in pieces {
                var current = String.UnicodeScalarView(), first = true, offset = 0, wordStart = 0
                for scalar in piece.unicodeScalars {
                    if scalar.properties.isWhitespace {
                        if !current.isEmpty { out.append((String(current), atStart && first && wordStart == 0)); current = .init(); first = false }
                    } else {
                        if current.isEmpty { wordStart = offset }
                        current.append(scalar)
                    }
                    offset += 1
                }
                if !current.isEmpty { out.append((String(current), atStart && first && wordStart == 0)) }
            }
            return out
        case .metaspace(let replacement, let prepend, let split):
            var out: [(String, Bool)] = []
            let mark = replacement.unicodeScalars.first ?? "▁"
            for (piece, atStart) in pieces where !piece.isEmpty {
                // Byte-wise, as the Rust code: spaces become the replacement, which is prepended when asked.
                var scalars = String.UnicodeScalarView()
                for scalar in piece.unicodeScalars { if scalar == " " { scalars += replacement.unicodeScalars } else { scalars.append(scalar) } }
                if scalars.first != mark && (prepend == "always" || (prepend == "first" && atStart)) {
                    scalars = replacement.unicodeScalars + scalars
                }
                guard split else { out.append((String(scalars), atStart)); continue }
                // MergedWithNext: each replacement character starts a new piece.
                var current = String.UnicodeScalarView(), first = true
                for scalar in scalars {
                    if scalar == mark && !current.isEmpty {
                        out.append((String(current), atStart && first))
                        current = .init()
                        first = false
                    }
                    current.append(scalar)
                }
                if !current.isEmpty { out.append((String(current), atStart && first)) }
            }
            return out
        }
    }
}
