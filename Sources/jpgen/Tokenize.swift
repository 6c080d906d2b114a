// jpgen tokenize: a prompt's ids, tokens and (for MeCab pipelines) morphemes, as a model's tokenizer
// sees it. With --stdin, one line in, one JSON object out, so thousands of strings run in one process.
import ArgumentParser
import Foundation
import Tokenization

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how a model's tokenizer splits a prompt (ids, tokens, MeCab morphemes).")

    @Argument(help: "The text (omit with --stdin).")
    var text: String?

    @Option(help: "A model folder (or its tokenizer/ folder).")
    var model: String

    @Flag(help: "Print one JSON object with ids, tokens, attention_mask and morphemes.")
    var json = false

    @Flag(help: "Read one text per line from standard input; print one JSON object per line.")
    var stdin = false

    @Option(name: .customLong("user-dic"), help: "Also use this compiled MeCab user dictionary (.dic).")
    var userDictionaries: [String] = []

    @Flag(help: "Pad to the model's maximum length.")
    var pad = false

    func validate() throws {
        if stdin && text != nil { throw ValidationError("give the text as an argument or with --stdin, not both") }
        if !stdin && text == nil { throw ValidationError("missing the text to tokenize (or --stdin)") }
    }

    func run() throws {
        let tokenizer = try loadTokenizer(folder: URL(fileURLWithPath: model),
                                          options: TokenizerLoadOptions(extraUserDictionaries: userDictionaries))
        let options = EncodingOptions(padToMaxLength: pad)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if stdin {
            // Bytes, not readLine: invalid UTF-8 must be an error, not silently replaced.
            var lines = FileHandle.standardInput.readDataToEndOfFile().split(separator: 0x0A, omittingEmptySubsequences: false)
            if lines.last?.isEmpty == true { lines.removeLast() }
            for (index, line) in lines.enumerated() {
                var bytes = Data(line)
                if bytes.last == 0x0D { bytes.removeLast() }
                let text = try validatedText(bytes, source: "stdin line \(index + 1)")
                let encoding = try tokenizer.encode(text, options: options)
                print(String(decoding: try encoder.encode(encoding), as: UTF8.self))
            }
            return
        }
        let encoding = try tokenizer.encode(try validatedText(text!, source: "the prompt argument"), options: options)
        if encoding.truncatedTokens > 0 {
            FileHandle.standardError.write(Data("warning: the prompt is \(encoding.truncatedTokens) tokens longer than the model's maximum of \(tokenizer.modelMaxLength); the tokens after '\(encoding.tokens[encoding.tokens.count - 2])' are dropped\n".utf8))
        }
        if json {
            print(String(decoding: try encoder.encode(encoding), as: UTF8.self))
            return
        }
        if let morphemes = encoding.morphemes {
            print("morphemes: " + morphemes.map(\.surface).joined(separator: " | "))
        }
        print("tokens:    " + encoding.tokens.joined(separator: " "))
        print("ids:       " + encoding.ids.map(String.init).joined(separator: " "))
    }
}
