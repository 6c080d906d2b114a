// WordPiece (Schuster and Nakajima 2012; BERT's WordpieceTokenizer in transformers): each
// whitespace-separated word is split greedily into the longest vocabulary entries, the pieces after the
// first prefixed with "##"; a word with no split, or longer than `maxInputCharsPerWord` code points,
// becomes the unknown token.

import Foundation

public struct Vocabulary: Sendable {
    public let tokens: [String]
    public let ids: [String: Int]

    /// vocab.txt: one token per line, the line number is the id (as transformers' load_vocab).
    public init(contentsOf url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { throw TokenizationError.missingFile(path: url.path) }
        let data = try Data(contentsOf: url)
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizationError.invalidFile(path: url.path, reason: "not UTF-8")
        }
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw TokenizationError.invalidFile(path: url.path, reason: "empty vocabulary") }
        try self.init(tokens: lines, path: url.path)
    }

    public init(tokens: [String], path: String = "<vocab>") throws {
        var ids: [String: Int] = [:]
        for (i, token) in tokens.enumerated() where ids[token] == nil { ids[token] = i }
        self.tokens = tokens
        self.ids = ids
        trie = ByteTrie(tokens)
    }

    public func id(_ token: String) -> Int? { ids[token] }

    /// The tokens by UTF-8 bytes (Swift's String hashing normalises, which costs more than the whole lookup).
    let trie: ByteTrie
}

/// A trie over the UTF-8 bytes of a token list: the edges (node, byte) -> node in one open-addressing hash
/// table of UInt64 keys, the id of the token ending at each node (the first occurrence when a token repeats).
struct ByteTrie: Sendable {
    var keys: [UInt64]
    var targets: [Int32]
    var terminal: [Int32] = [-1]
    let shift: UInt64
    static let empty = UInt64.max

    init(_ tokens: [String]) {
        let edges = tokens.reduce(0) { $0 + $1.utf8.count } + 1
        var bits: UInt64 = 4
        while (1 << bits) < 2 * edges { bits += 1 }
        keys = Array(repeating: Self.empty, count: 1 << bits)
        targets = Array(repeating: -1, count: 1 << bits)
        shift = 64 - bits
        for (i, token) in tokens.enumerated() {
            var node = 0
            for b in token.utf8 {
                if let next = child(node, b) {
                    node = next
                } else {
                    terminal.append(-1)
                    insert(node, b, terminal.count - 1)
                    node = terminal.count - 1
                }
            }
            if terminal[node] == -1 { terminal[node] = Int32(i) }
        }
    }

    @inline(__always) func slot(_ key: UInt64) -> Int { Int((key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    mutating func insert(_ node: Int, _ byte: UInt8, _ target: Int) {
        let key = UInt64(node) << 8 | UInt64(byte)
        var i = slot(key)
        while keys[i] != Self.empty { i = (i + 1) & (keys.count - 1) }
        keys[i] = key
        targets[i] = Int32(target)
    }

    @inline(__always) func child(_ node: Int, _ byte: UInt8) -> Int? {
        let key = UInt64(node) << 8 | UInt64(byte)
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { return Int(targets[i]) }
            if k == Self.empty { return nil }
            i = (i + 1) & (keys.count - 1)
        }
    }

    /// The node reached from `node` by `bytes`, or nil.
    func walk(_ bytes: some Sequence<UInt8>, from node: Int = 0) -> Int? {
        var node = node
        for b in bytes {
            guard let next = child(node, b) else { return nil }
            node = next
        }
        return node
    }

    /// The id of exactly `bytes`, or nil.
    func id(_ bytes: some Sequence<UInt8>) -> Int? {
        guard let node = walk(bytes), terminal[node] >= 0 else { return nil }
        return Int(terminal[node])
    }
}

public struct WordPiece: Sendable {
    public let vocabulary: Vocabulary
    public let unknownToken: String
    public let maxInputCharsPerWord: Int

    let unknownId: Int
    /// The trie node of "##", where continuation pieces start (nil: the vocabulary has none).
    let continuation: Int?

    public init(vocabulary: Vocabulary, unknownToken: String = "[UNK]", maxInputCharsPerWord: Int = 100) {
        self.vocabulary = vocabulary
        self.unknownToken = unknownToken
        self.maxInputCharsPerWord = maxInputCharsPerWord
        unknownId = vocabulary.id(unknownToken) ?? 0
        continuation = vocabulary.trie.walk("##".utf8)
    }

    /// The ids of `text`'s WordPiece tokens, appended to `ids`: the greedy longest match as a walk down the
    /// vocabulary's byte trie (the longest prefix in the vocabulary, then "##" continuations).
    public func tokenizeIds(_ text: String, into ids: inout [Int]) {
        let unknownId = self.unknownId, continuation = self.continuation
        var text = text
        text.withUTF8 { bytes in
            // Words: maximal runs of non-white-space scalars (Python's str.split()).
            var position = 0
            while position < bytes.count {
                var start = position, scalars = 0
                // Skip white space.
                while start < bytes.count {
                    let (scalar, width) = decodeScalar(bytes, at: start)
                    if !isPythonSpace(scalar) { break }
                    start += width
                }
                if start >= bytes.count { break }
                var end = start
                while end < bytes.count {
                    let (scalar, width) = decodeScalar(bytes, at: end)
                    if isPythonSpace(scalar) { break }
                    end += width
                    scalars += 1
                }
                position = end
                if scalars > maxInputCharsPerWord {
                    ids.append(unknownId)
                    continue
                }
                let mark = ids.count
                var at = start
                while at < end {
                    var node: Int? = at == start ? 0 : continuation
                    var best: (end: Int, id: Int)?
                    var k = at
                    while let n = node, k < end {
                        node = vocabulary.trie.child(n, bytes[k])
                        k += 1
                        if let m = node, vocabulary.trie.terminal[m] >= 0 { best = (k, Int(vocabulary.trie.terminal[m])) }
                    }
                    guard let (matchEnd, id) = best else {
                        ids.removeSubrange(mark...)
                        ids.append(unknownId)
                        break
                    }
                    ids.append(id)
                    at = matchEnd
                }
            }
        }
    }

    public func tokenize(_ text: String) -> [String] {
        var output: [String] = []
        for word in pythonWhitespaceSplit(text) {
            let scalars = Array(word.unicodeScalars)
            if scalars.count > maxInputCharsPerWord {
                output.append(unknownToken)
                continue
            }
            var pieces: [String] = []
            var start = 0
            var failed = false
            while start < scalars.count {
                var end = scalars.count
                var found: String?
                while start < end {
                    var piece = String(String.UnicodeScalarView(scalars[start..<end]))
                    if start > 0 { piece = "##" + piece }
                    if vocabulary.ids[piece] != nil {
                        found = piece
                        break
                    }
                    end -= 1
                }
                guard let piece = found else {
                    failed = true
                    break
                }
                pieces.append(piece)
                start = end
            }
            if failed { output.append(unknownToken) } else { output += pieces }
        }
        return output
    }
}

/// Python's `str.split()`: splits on every character for which `str.isspace()` is true.
func pythonWhitespaceSplit(_ text: String) -> [String] {
    var words: [String] = []
    var current = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        if isPythonSpace(scalar) {
            if !current.isEmpty { words.append(String(current)); current = String.UnicodeScalarView() }
        } else {
            current.append(scalar)
        }
    }
    if !current.isEmpty { words.append(String(current)) }
    return words
}

func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
        return true
    default:
        return false
    }
}

/// Unicode NFKC as Python's `unicodedata.normalize("NFKC", text)`. Computed as NFKD followed by
/// canonical composition: Foundation's `precomposedStringWithCompatibilityMapping` on Linux leaves
/// half-width voiced katakana decomposed (ｶﾞ -> カ + U+3099 instead of ガ).
public func nfkc(_ text: String) -> String {
    if text.unicodeScalars.allSatisfy(isNFKCStable) { return text }
    return text.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
}

/// Scalars that NFKC leaves alone and that compose with no neighbour among themselves: ASCII, the common
/// Japanese punctuation, hiragana and katakana without the combining / spacing voiced marks, CJK unified
/// ideographs. A text made only of them is its own NFKC (the fast path of a prompt).
@inline(__always) func isNFKCStable(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0x00..<0x80, 0x3001...0x3002, 0x300C...0x300F, 0x3041...0x3096, 0x30A1...0x30FA, 0x30FC, 0x4E00...0x9FFF: return true
    default: return false
    }
}

/// The scalar starting at byte `i` of valid UTF-8, and its width in bytes.
@inline(__always) func decodeScalar(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> (Unicode.Scalar, Int) {
    let b0 = UInt32(bytes[i])
    switch b0 {
    case 0..<0x80: return (Unicode.Scalar(b0)!, 1)
    case 0xC0..<0xE0: return (Unicode.Scalar((b0 & 0x1F) << 6 | UInt32(bytes[i + 1]) & 0x3F) ?? "\u{FFFD}", 2)
    case 0xE0..<0xF0:
        return (Unicode.Scalar((b0 & 0x0F) << 12 | (UInt32(bytes[i + 1]) & 0x3F) << 6 | UInt32(bytes[i + 2]) & 0x3F) ?? "\u{FFFD}", 3)
    default:
        return (Unicode.Scalar((b0 & 0x07) << 18 | (UInt32(bytes[i + 1]) & 0x3F) << 12 | (UInt32(bytes[i + 2]) & 0x3F) << 6
                               | UInt32(bytes[i + 3]) & 0x3F) ?? "\u{FFFD}", 4)
    }
}
