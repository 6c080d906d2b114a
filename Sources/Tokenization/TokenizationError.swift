import Foundation

public enum TokenizationError: LocalizedError, Equatable {
    case dictionaryNotFound(path: String, hint: String)
    case mecabFailed(String)
    case missingFile(path: String)
    case invalidFile(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case invalidUTF8(source: String)
    case nulCharacter(source: String)
    case inputTooLong(bytes: Int, limit: Int)

    public var errorDescription: String? {
        switch self {
        case .dictionaryNotFound(let path, let hint): return "MeCab dictionary not found at \(path): \(hint)"
        case .mecabFailed(let message): return "MeCab: \(message)"
        case .missingFile(let path): return "\(path): no such tokenizer file"
        case .invalidFile(let path, let reason): return "\(path): invalid tokenizer file: \(reason)"
        case .unsupported(let path, let reason): return "\(path): unsupported tokenizer: \(reason)"
        case .invalidUTF8(let source): return "\(source): the text is not valid UTF-8"
        case .nulCharacter(let source): return "\(source): the text contains a NUL character"
        case .inputTooLong(let bytes, let limit): return "the text is \(bytes) bytes long; the limit is \(limit) bytes"
        }
    }
}
