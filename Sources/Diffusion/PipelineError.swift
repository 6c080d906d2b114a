// PipelineError: what can go wrong loading a text-to-image model or running it, each case naming
// the file, part, option or value at fault and what would be valid.

import Foundation

public enum PipelineError: LocalizedError, Equatable {
    case modelNotFound(path: String)
    case missingPart(model: String, part: String, reason: String)
    case unsupportedModel(path: String, reason: String)
    case invalidSize(width: Int, height: Int, reason: String)
    case tooLargeForMemory(width: Int, height: Int, neededMB: Int, availableMB: Int)
    case invalidOption(name: String, value: String, reason: String)
    case unwritableOutput(path: String, reason: String)
    case invalidInitImage(path: String, reason: String)
    case lora(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .modelNotFound(let path):
            return "model not found: \(path) (a diffusers folder with model_index.json, or a .safetensors checkpoint)"
        case .missingPart(let model, let part, let reason):
            return "\(model): the \(part) part is missing: \(reason)"
        case .unsupportedModel(let path, let reason):
            return "\(path): unsupported model: \(reason)"
        case .invalidSize(let width, let height, let reason):
            return "invalid image size \(width)x\(height): \(reason)"
        case .tooLargeForMemory(let width, let height, let needed, let available):
            return "\(width)x\(height) needs about \(needed) MB of memory to generate, more than the \(available) MB available; "
                + "choose a smaller --width/--height"
        case .invalidOption(let name, let value, let reason):
            return "\(name) \(value): \(reason)"
        case .unwritableOutput(let path, let reason):
            return "cannot write the output \(path): \(reason)"
        case .invalidInitImage(let path, let reason):
            return "init image \(path): \(reason)"
        case .lora(let path, let reason):
            return "LoRA \(path): \(reason)"
        }
    }
}
