// The subword models of the `tokenizers` library as tokenizer.json describes them (model.type):
//   Unigram (models/unigram/model.rs): the Viterbi of sentencepiece's EncodeOptimized in f64 over every
//     vocabulary entry, unknown characters scoring min_score - 10; runs of unknowns fused into one token;
//     with byte_fallback an unknown token becomes <0xXX> byte tokens when all of them exist.
//   BPE (models/bpe/model.rs, word.rs): characters (unknowns fused into the unk token, or <0xXX> byte
//     tokens with byte_fallback), then the merge of lowest rank, leftmost first, until none applies;
//     continuing_subword_prefix / end_of_word_suffix on inner / last characters; ignore_merges returns a
//     word found whole in the vocabulary.

import Foundation

protocol TokenizersModel: Sendable {
    /// The ids of one pre-tokenized piece.
    func tokenize(_ piece: String) -> [Int]
    func id(_ token: String) -> Int?
    func token(_ id: Int) -> String?
}

struct UnigramModel: TokenizersModel {
    let vocab: [(String, Double)]
    let ids: [[UInt8]: Int]
    let unkId: Int
    let byteFallback: Bool
    let minScore: Double
    let maxPieceBytes: Int

    init(vocab: [(String, Double)], unkId: Int?, byteFallback: Bool, path: String) throws {
        guard !vocab.isEmpty else { throw TokenizationError.invalidFile(path: path, reason: "model.vocab is empty") }
        guard let unkId, unkId >= 0, unkId < vocab.count else {
            throw TokenizationError.invalidFile(path: path, reason: "model.unk_id \(unkId.map(String.init) ?? "null") is not an index of model.vocab (\(vocab.count) entries)")
        }
        var ids: [[UInt8]: Int] = [:]
        var minScore = Double.infinity, longest = 1
        for (i, (token, score)) in vocab.enumerated() {
            let bytes = Array(token.utf8)
            ids[bytes] = i   // a repeated token keeps its last id, as the Rust map does
            longest = max(longest, bytes.count)
            minScore = min(minScore, score)
        }
        self.vocab = vocab
        self.ids = ids
        self.unkId = unkId
        self.byteFallback = byteFallback
        self.minScore = minScore
        maxPieceBytes = longest
    }

    func id(_ token: String) -> Int? { ids[Array(token.utf8)] }
    func token(_ id: Int) -> String? { id >= 0 && id < vocab.count ? vocab[id].0 : nil }

    func tokenize(_ piece: String) -> [Int] {
        let text = Array(piece.utf8)
        let size = text.count
        if size == 0 { return [] }
        let unknownScore = minScore - 10
        var bestScore = [Double](repeating: 0, count: size + 1)
        var bestStart = [Int](repeating: -1, count: size + 1)
        var bestId = [Int](repeating: 0, count: size + 1)
        var key = [UInt8]()
        var start = 0
        while start < size {
            let here = bestScore[start]
            let charLength = min(utf8Length(text[start]), size - start)
            var hasSingle = false
            key.removeAll(keepingCapacity: true)
            var end = start
            while end < size && end - start < maxPieceBytes {
                key.append(text[end])
                end += 1
                guard let id = ids[key] else { continue }
                let candidate = vocab[id].1 + here
                if bestStart[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    bestStart[end] = start
                    bestId[end] = id
                }
                if end - start == charLength { hasSingle = true }
            }
            if !hasSingle {
                let end = start + charLength
                let candidate = unknownScore + here
                if bestStart[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    bestStart[end] = start
                    bestId[end] = unkId
                }
            }
            start += charLength
        }
        // Backtrack; fuse runs of unknowns into one string (its id: the vocabulary's or unk).
        var pieces: [(Range<Int>, Int)] = []
        var end = size
        while end > 0 {
            let s = bestStart[end]
            if bestId[end] == unkId, let last = pieces.last, last.1 == unkId, last.0.lowerBound == end {
                pieces[pieces.count - 1] = (s..<last.0.upperBound, unkId)
            } else {
                pieces.append((s..<end, bestId[end]))
            }
            end = s
        }
        var out: [Int] = []
        for (range, id) in pieces.reversed() {
            if id != unkId { out.append(id); continue }
            let bytes = Array(text[range])
            if let known = ids[bytes] { out.append(known); continue }
            if byteFallback {
                let byteIds = bytes.map { ids[Array(String(format: "<0x%02X>", $0).utf8)] }
                if byteIds.allSatisfy({ $0 != nil }) { out += byteIds.map { $0! }; continue }
            }
            out.append(unkId)
        }
        return out
    }
}

struct BPEModel: TokenizersModel {
    let vocab: [String: Int]
    let tokensById: [Int: String]
    /// (left id, right id) -> (rank, merged id).
    let merges: [UInt64: (rank: Int, id: Int)]
    let unkToken: String?
    let fuseUnk: Bool
    let byteFallback: Bool
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    let ignoreMerges: Bool

    init(vocab: [String: Int], merges: [(String, String)], unkToken: String?, fuseUnk: Bool, byteFallback: Bool,
         continuingSubwordPrefix: String?, endOfWordSuffix: String?, ignoreMerges: Bool, path: String) throws {
        var table: [UInt64: (rank: Int, id: Int)] = [:]
        let prefixLength = continuingSubwordPrefix?.count ?? 0
        for (rank, (a, b)) in merges.enumerated() {
            guard let left = vocab[a], let right = vocab[b] else {
                throw TokenizationError.invalidFile(path: path, reason: "merge \(rank) '\(a) \(b)': a symbol is not in model.vocab")
            }
            let merged = a + (prefixLength > 0 && b.hasPrefix(continuingSubwordPrefix!) ? String(b.dropFirst(prefixLength)) : b)
            guard let id = vocab[merged] else {
                throw TokenizationError.invalidFile(path: path, reason: "merge \(rank) '\(a) \(b)': '\(merged)' is not in model.vocab")
            }
            table[UInt64(left) << 32 | UInt64(right)] = (rank, id)
        }
        if let unkToken, vocab[unkToken] == nil {
            throw TokenizationError.invalidFile(path: path, reason: "model.unk_token '\(unkToken)' is not in model.vocab")
        }
        self.vocab = vocab
        tokensById = Dictionary(vocab.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        self.merges = table
        self.unkToken = unkToken
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        self.ignoreMerges = ignoreMerges
    }

    func id(_ token: String) -> Int? { vocab[token] }
    func token(_ id: Int) -> String? { tokensById[id] }

    func tokenize(_ piece: String) -> [Int] {
        if piece.isEmpty { return [] }
        if ignoreMerges, let id = vocab[piece] { return [id] }
        // 1. Characters (merge_word).
        var symbols: [Int] = []
        var unknown: Int?
        let scalars = Array(piece.unicodeScalars)
        for (k, scalar) in scalars.enumerated() {
            var s = String(scalar)
            if k > 0, let p = continuingSubwordPrefix { s = p + s }
            if k == scalars.count - 1, let e = endOfWordSuffix { s += e }
            if let id = vocab[s] {
                if let u = unknown { symbols.append(u); unknown = nil }
                symbols.append(id)
                continue
            }
            if byteFallback {
                let byteIds = s.utf8.map { vocab[String(format: "<0x%02X>", $0)] }
                if byteIds.allSatisfy({ $0 != nil }) {
                    symbols += byteIds.map { $0! }
                    continue
                }
            }
            if let unkToken, let unkId = vocab[unkToken] {
                if unknown != nil && !fuseUnk { symbols.append(unknown!) }
                unknown = unkId
            }
        }
        if let u = unknown { symbols.append(u) }
        if symbols.count < 2 { return symbols }
        // 2. Merges (Word::merge_all): lowest rank, then leftmost position.
        var next = Array(1...symbols.count).map { $0 == symbols.count ? -1 : $0 }
        var prev = Array(-1..<(symbols.count - 1))
        var alive = Array(repeating: true, count: symbols.count)
        var heap = MergeHeap()
        for i in 0..<max(symbols.count - 1, 0) {
            if let m = merges[UInt64(symbols[i]) << 32 | UInt64(symbols[i + 1])] { heap.push((m.rank, i, m.id)) }
        }
        while let top = heap.pop() {
            let pos = top.pos
            guard alive[pos], next[pos] != -1 else { continue }
            let right = next[pos]
            guard let m = merges[UInt64(symbols[pos]) << 32 | UInt64(symbols[right])], m.id == top.id else { continue }
            symbols[pos] = top.id
            alive[right] = false
            next[pos] = next[right]
            if next[right] != -1 { prev[next[right]] = pos }
            if prev[pos] >= 0, let m = merges[UInt64(symbols[prev[pos]]) << 32 | UInt64(symbols[pos])] {
                heap.push((m.rank, prev[pos], m.id))
            }
            if next[pos] != -1, let m = merges[UInt64(symbols[pos]) << 32 | UInt64(symbols[next[pos]])] {
                heap.push((m.rank, pos, m.id))
            }
        }
        return symbols.indices.filter { alive[$0] }.map { symbols[$0] }
    }
}

/// A min-heap of (rank, position, merged id), ordered by rank then position.
struct MergeHeap {
    var items: [(rank: Int, pos: Int, id: Int)] = []
    static func before(_ a: (rank: Int, pos: Int, id: Int), _ b: (rank: Int, pos: Int, id: Int)) -> Bool {
        a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
    }
    mutating func push(_ item: (rank: Int, pos: Int, id: Int)) {
        items.append(item)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.before(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }
    mutating func pop() -> (rank: Int, pos: Int, id: Int)? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Self.before(items[l], items[m]) { m = l }
                if r < items.count && Self.before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
