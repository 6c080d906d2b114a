// NetworksError: everything that can go wrong while loading or running a network, with the
// values that help the user fix it (file, key, expected and actual shape, config field).

import Foundation

public enum NetworksError: Error, Equatable {
    /// A weight the model needs is not in the checkpoint (the name as the model asked for it).
    case missingKey(String)
    /// A weight exists but has the wrong shape.
    case shapeMismatch(key: String, expected: [Int], actual: [Int])
    /// Weights in the checkpoint that the model did not use (strict loading).
    case unusedKeys([String])
    /// A config.json lacks a field the model cannot do without.
    case missingConfigField(file: String, field: String)
    /// A config.json is not valid JSON or has a field of the wrong type.
    case invalidConfig(file: String, reason: String)
    /// A folder or path holds no safetensors weights we can read.
    case noWeights(path: String, reason: String)
    /// A pickle checkpoint (.ckpt, .bin, .pt, .pth): never unpickled, since unpickling runs code.
    case pickleRefused(file: String)
    /// A sharded checkpoint's `*.safetensors.index.json` is malformed or names a missing shard.
    case invalidIndex(file: String, reason: String)
    /// config.json names an architecture or option this module does not implement.
    case unsupportedArchitecture(file: String, name: String)
    /// A single-file checkpoint holds no recognisable text encoder under the expected prefixes.
    case unrecognizedCheckpoint(file: String, reason: String)
    /// Bad input to a forward pass (token ids out of range, too many tokens, mismatched mask).
    case invalidInput(String)
    /// An error from the safetensors layer, with the file it concerns.
    case readFailed(file: String, reason: String)
}

extension NetworksError: LocalizedError {
    public var errorDescription: String? {
        switch self {
        case .missingKey(let key):
            return "missing weight '\(key)' in the checkpoint"
        case .shapeMismatch(let key, let expected, let actual):
            return "weight '\(key)' has shape \(actual), expected \(expected)"
        case .unusedKeys(let keys):
            let shown = keys.prefix(10).joined(separator: ", ")
            let more = keys.count > 10 ? " and \(keys.count - 10) more" : ""
            return "\(keys.count) unused weight(s) in the checkpoint: \(shown)\(more)"
        case .missingConfigField(let file, let field):
            return "\(file): config lacks the required field '\(field)'"
        case .invalidConfig(let file, let reason):
            return "\(file): invalid config: \(reason)"
        case .noWeights(let path, let reason):
            return "\(path): no safetensors weights found (\(reason))"
        case .pickleRefused(let file):
            return "\(file): pickle checkpoints are never loaded (unpickling runs code); "
                + "convert it to .safetensors first"
        case .invalidIndex(let file, let reason):
            return "\(file): invalid safetensors index: \(reason)"
        case .unsupportedArchitecture(let file, let name):
            return "\(file): unsupported architecture or option '\(name)'"
        case .unrecognizedCheckpoint(let file, let reason):
            return "\(file): \(reason)"
        case .invalidInput(let message):
            return "invalid input: \(message)"
        case .readFailed(let file, let reason):
            return "\(file): \(reason)"
        }
    }
}
