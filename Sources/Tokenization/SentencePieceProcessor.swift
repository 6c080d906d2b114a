// Encoding with a SentencePiece model exactly as the `sentencepiece` library does
// (SentencePieceProcessor::Encode in sentencepiece_processor.cc):
//   1. normalise (normalizer.cc, Normalizer::Normalize): user-defined pieces kept as they are, else the
//      precompiled charsmap's longest rule; leading, trailing and repeated spaces dropped when
//      remove_extra_whitespaces; "▁" prepended when add_dummy_prefix; spaces escaped as "▁";
//   2. segment: unigram (unigram_model.cc, Model::EncodeOptimized: Viterbi over the pieces found at each
//      byte, an unknown character scoring min_score - 10, user-defined pieces length * max_score - 0.1,
//      unused pieces skipped) or BPE (bpe_model.cc: merge the adjacent pair whose merged piece has the
//      highest score, leftmost first; unused pieces resegmented);
//   3. runs of unknown pieces merge into one <unk>, or with byte_fallback become <0xXX> byte pieces.

import Foundation

public final class SentencePieceProcessor: @unchecked Sendable {
    public let model: SentencePieceModel
    let charsmap: PrecompiledCharsmap?
    /// NORMAL, USER_DEFINED and UNUSED pieces (the pieces a segmentation may produce), by UTF-8 bytes.
    let pieceIds: [[UInt8]: Int]
    /// Every piece's id by text (PieceToId: the reserved pieces too).
    let allIds: [String: Int]
    let userDefined: [[UInt8]]
    let userDefinedLengths: [Int]
    let minScore: Float, maxScore: Float
    let maxPieceBytes: Int
    let byteIds: [Int]

    public init(model: SentencePieceModel, path: String) throws {
        self.model = model
        charsmap = model.normalizerSpec.precompiledCharsmap.isEmpty ? nil
            : try PrecompiledCharsmap(model.normalizerSpec.precompiledCharsmap, path: path)
        var ids: [[UInt8]: Int] = [:], all: [String: Int] = [:]
        var user: [[UInt8]] = []
        var minScore = Float.greatestFiniteMagnitude, maxScore = Float.leastNormalMagnitude   // FLT_MAX, FLT_MIN
        var longest = 1
        for (i, p) in model.pieces.enumerated() {
            all[p.piece] = i
            switch p.type {
            case .normal, .userDefined, .unused:
                let bytes = Array(p.piece.utf8)
                ids[bytes] = i
                longest = max(longest, bytes.count)
                if p.type == .userDefined { user.append(bytes) }
            default: break
            }
            if p.type == .normal {
                minScore = min(minScore, p.score)
                maxScore = max(maxScore, p.score)
            }
        }
        pieceIds = ids
        allIds = all
        userDefined = user
        userDefinedLengths = Array(Set(user.map(\.count))).sorted(by: >)
        self.minScore = minScore
        self.maxScore = maxScore
        maxPieceBytes = longest
        byteIds = model.byteFallback ? (0..<256).map { all[String(format: "<0x%02X>", $0)]! } : []
    }

    public convenience init(contentsOf url: URL) throws {
        try self.init(model: try SentencePieceModel(contentsOf: url), path: url.path)
    }

    /// The ids of `text` (sentencepiece's `encode(text)`).
    public func encode(_ text: String) -> [Int] {
        let normalized = normalize(text)
        if normalized.isEmpty { return [] }
        let segments = model.modelType == .bpe ? bpe(normalized) : unigram(normalized)
        var ids: [Int] = []
        ids.reserveCapacity(segments.count)
        var previousUnknown = false
        for (range, id) in segments {
            let unknown = id == model.unkId
            if unknown && model.byteFallback {
                for k in range { ids.append(byteIds[Int(normalized[k])]) }
            } else if !(unknown && previousUnknown) {
                ids.append(id)
            }
            previousUnknown = unknown
        }
        return ids
    }

    // MARK: 1. normalisation

    /// A user-defined piece at `start` (PrefixMatcher): its byte length, else 0.
    func userDefinedMatch(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int) -> Int {
        for length in userDefinedLengths where start + length <= bytes.count {
            if userDefined.contains(where: { $0.count == length && $0.elementsEqual(bytes[start..<(start + length)]) }) { return length }
        }
        return 0
    }

    /// Normalizer::NormalizePrefix: (replacement, bytes consumed) at `start`.
    func normalizePrefix(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int) -> (ArraySlice<UInt8>, Int) {
        if !userDefined.isEmpty {
            let n = userDefinedMatch(bytes, at: start)
            if n > 0 { return (ArraySlice(bytes[start..<(start + n)]), n) }
        }
        if let charsmap, let (length, value) = charsmap.longestPrefix(bytes, from: start, to: bytes.count) {
            return (value, length)
        }
        let n = min(utf8Length(bytes[start]), bytes.count - start)
        return (ArraySlice(bytes[start..<(start + n)]), n)
    }

    /// Normalizer::Normalize, as UTF-8 bytes.
    public func normalize(_ text: String) -> [UInt8] {
        let spec = model.normalizerSpec
        let space: [UInt8] = spec.escapeWhitespaces ? [0xE2, 0x96, 0x81] : [0x20]
        var input = Array(text.utf8)
        return input.withUnsafeMutableBufferPointer { mutable -> [UInt8] in
            let bytes = UnsafeBufferPointer(mutable)
            var position = 0
            if spec.removeExtraWhitespaces {
                while position < bytes.count {
                    let (value, n) = normalizePrefix(bytes, at: position)
                    guard value.elementsEqual([0x20]) else { break }
                    position += n
                }
            }
            if position >= bytes.count { return [] }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count * 3)
            if !model.treatWhitespaceAsSuffix && spec.addDummyPrefix { out += space }
            var previousSpace = spec.removeExtraWhitespaces
            while position < bytes.count {
                let (value, n) = normalizePrefix(bytes, at: position)
                var piece = value[...]
                while previousSpace, piece.first == 0x20 { piece = piece.dropFirst() }
                if !piece.isEmpty {
                    for b in piece {
                        if spec.escapeWhitespaces && b == 0x20 { out += space } else { out.append(b) }
                    }
                    previousSpace = piece.last == 0x20
                }
                position += n
                if !spec.removeExtraWhitespaces { previousSpace = false }
            }
            if spec.removeExtraWhitespaces {
                while out.count >= space.count && out.suffix(space.count).elementsEqual(space) { out.removeLast(space.count) }
            }
            if model.treatWhitespaceAsSuffix && spec.addDummyPrefix { out += space }
            return out
        }
    }

    // MARK: 2. segmentation

    /// unigram::Model::EncodeOptimized: (byte range, id) of the best segmentation.
    func unigram(_ text: [UInt8]) -> [(Range<Int>, Int)] {
        let size = text.count
        let unknownScore = minScore - 10   // kUnkPenalty
        // best[e]: the best path ending at byte e: (score, start, id); start -1 = none yet.
        var bestScore = [Float](repeating: 0, count: size + 1)
        var bestStart = [Int](repeating: -1, count: size + 1)
        var bestId = [Int](repeating: -1, count: size + 1)
        var key = [UInt8]()
        key.reserveCapacity(maxPieceBytes)
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
                guard let id = pieceIds[key] else { continue }
                let piece = model.pieces[id]
                if piece.type == .unused { continue }
                let length = end - start
                let score = piece.type == .userDefined ? Float(length) * maxScore - 0.1 : piece.score
                let candidate = score + here
                if bestStart[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    bestStart[end] = start
                    bestId[end] = id
                }
                if length == charLength { hasSingle = true }
            }
            if !hasSingle {
                let end = start + charLength
                let candidate = unknownScore + here
                if bestStart[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    bestStart[end] = start
                    bestId[end] = model.unkId
                }
            }
            start += charLength
        }
        var result: [(Range<Int>, Int)] = []
        var end = size
        while end > 0 {
            let s = bestStart[end]
            result.append((s..<end, bestId[end]))
            end = s
        }
        return result.reversed()
    }

    /// bpe::Model::SampleEncode (no dropout): (byte range, id) of the merged symbols.
    func bpe(_ text: [UInt8]) -> [(Range<Int>, Int)] {
        struct Symbol { var prev: Int; var next: Int; var freeze: Bool; var start: Int; var length: Int }
        struct Pair { var left: Int; var right: Int; var score: Float; var size: Int }
        var symbols: [Symbol] = []
        text.withUnsafeBufferPointer { bytes in
            var position = 0
            while position < bytes.count {
                var n = userDefined.isEmpty ? 0 : userDefinedMatch(bytes, at: position)
                let freeze = n > 0
                if n == 0 { n = min(utf8Length(bytes[position]), bytes.count - position) }
                let index = symbols.count
                symbols.append(Symbol(prev: index - 1, next: position + n >= bytes.count ? -1 : index + 1,
                                      freeze: freeze, start: position, length: n))
                position += n
            }
        }
        // The agenda: a max-heap on (score, then smaller left).
        var heap: [Pair] = []
        func before(_ a: Pair, _ b: Pair) -> Bool { a.score > b.score || (a.score == b.score && a.left < b.left) }
        func push(_ p: Pair) {
            heap.append(p)
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard before(heap[i], heap[parent]) else { break }
                heap.swapAt(i, parent)
                i = parent
            }
        }
        func pop() -> Pair {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var i = 0
                while true {
                    let l = 2 * i + 1, r = l + 1
                    var m = i
                    if l < heap.count && before(heap[l], heap[m]) { m = l }
                    if r < heap.count && before(heap[r], heap[m]) { m = r }
                    if m == i { break }
                    heap.swapAt(i, m)
                    i = m
                }
            }
            return top
        }
        var unusedSplits: [Range<Int>: (Range<Int>, Range<Int>)] = [:]   // rev_merge, by byte range
        func addPair(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0, !symbols[left].freeze, !symbols[right].freeze else { return }
            let start = symbols[left].start, size = symbols[left].length + symbols[right].length
            guard let id = pieceIds[Array(text[start..<(start + size)])] else { return }
            push(Pair(left: left, right: right, score: model.pieces[id].score, size: size))
            if model.pieces[id].type == .unused {
                unusedSplits[start..<(start + size)] = (start..<(start + symbols[left].length),
                                                        symbols[right].start..<(symbols[right].start + symbols[right].length))
            }
        }
        if symbols.count > 1 { for i in 1..<symbols.count { addPair(i - 1, i) } }
        while !heap.isEmpty {
            let top = pop()
            let l = symbols[top.left], r = symbols[top.right]
            if l.length == 0 || r.length == 0 || l.length + r.length != top.size { continue }
            symbols[top.left].length += r.length
            symbols[top.left].next = r.next
            if r.next >= 0 { symbols[r.next].prev = top.left }
            symbols[top.right].length = 0
            addPair(symbols[top.left].prev, top.left)
            addPair(top.left, symbols[top.left].next)
        }
        var output: [(Range<Int>, Int)] = []
        func resegment(_ range: Range<Int>) {
            let bytes = Array(text[range])
            let id = pieceIds[bytes] ?? allIds[String(decoding: bytes, as: UTF8.self)] ?? model.unkId
            if model.pieces[id].type == .unused, let (a, b) = unusedSplits[range] {
                resegment(a)
                resegment(b)
            } else {
                output.append((range, id))
            }
        }
        var index = symbols.isEmpty ? -1 : 0
        while index != -1 {
            resegment(symbols[index].start..<(symbols[index].start + symbols[index].length))
            index = symbols[index].next
        }
        return output
    }
}

/// The length of a UTF-8 sequence from its first byte (sentencepiece's OneCharLen).
@inline(__always) func utf8Length(_ lead: UInt8) -> Int {
    switch lead {
    case 0..<0x80: return 1
    case 0xC0..<0xE0: return 2
    case 0xE0..<0xF0: return 3
    case 0xF0...0xFF: return 4
    default: return 1
    }
}
