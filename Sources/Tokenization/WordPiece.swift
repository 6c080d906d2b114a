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
    }

    public func id(_ token: String) -> Int? { ids[token] }
}

public struct WordPiece: Sendable {
    public let vocabulary: Vocabulary
    public let unknownToken: String
    public let maxInputCharsPerWord: Int

    public init(vocabulary: Vocabulary, unknownToken: String = "[UNK]", maxInputCharsPerWord: Int = 100) {
        self.vocabulary = vocabulary
        self.unknownToken = unknownToken
        self.maxInputCharsPerWord = maxInputCharsPerWord
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
    text.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
}
