import Foundation

public enum MergingError: LocalizedError, Equatable {
    case recipe(path: String, message: String)
    case input(name: String, path: String, message: String)
    case mismatch([String])
    case output(path: String, message: String)

    public var errorDescription: String? {
        switch self {
        case .recipe(let path, let message): return "\(path): \(message)"
        case .input(let name, let path, let message): return "input '\(name)' (\(path)): \(message)"
        case .mismatch(let lines): return "the inputs do not match; nothing was written:\n  " + lines.joined(separator: "\n  ")
        case .output(let path, let message): return "\(path): \(message)"
        }
    }
}
