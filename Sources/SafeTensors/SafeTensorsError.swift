// SafeTensorsError: every way a safetensors file (or a conversion, or a write) can be refused.
// Each case names the file and carries the values that explain the problem.

import Foundation

public enum SafeTensorsError: LocalizedError, Equatable {
    // Reading
    case cannotOpen(file: String, reason: String)
    case truncated(file: String, expectedBytes: Int, actualBytes: Int)
    case headerLengthPastEnd(file: String, headerLength: UInt64, fileSize: Int)
    case headerTooLarge(file: String, headerLength: UInt64, limit: Int)
    case headerNotJSON(file: String, reason: String)
    case invalidEntry(file: String, key: String, reason: String)
    case unknownDType(file: String, key: String, dtype: String)
    case invalidMetadata(file: String, reason: String)
    case offsetsOutOfRange(file: String, key: String, offsets: [String], dataSize: Int)
    case overlappingOffsets(file: String, key: String, other: String)
    case gapInData(file: String, key: String, gapStart: Int, gapEnd: Int)
    case sizeMismatch(file: String, key: String, dtype: String, shape: [Int], expectedBytes: Int, actualBytes: Int)
    case unusedData(file: String, dataSize: Int, usedBytes: Int)
    case pickleCheckpoint(file: String, format: String)
    case missingTensor(file: String, key: String)
    // Converting
    case unsupportedConversion(from: String, to: String)
    case bufferSizeMismatch(expectedBytes: Int, actualBytes: Int)
    // Writing
    case invalidName(file: String, key: String)
    case duplicateEntry(file: String, key: String)
    case unknownEntry(file: String, key: String)
    case alreadyWritten(file: String, key: String)
    case wrongElementCount(file: String, key: String, expected: Int, actual: Int)
    case wrongByteCount(file: String, key: String, expected: Int, actual: Int)
    case notWritten(file: String, keys: [String])
    case writeFailed(file: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case let .cannotOpen(file, reason):
            return "\(file): cannot open safetensors file: \(reason)"
        case let .truncated(file, expected, actual):
            return "\(file): truncated safetensors file: its header describes \(expected) bytes but the file has \(actual)"
        case let .headerLengthPastEnd(file, length, size):
            return "\(file): the header length \(length) runs past the end of the \(size)-byte file (truncated, or not a safetensors file)"
        case let .headerTooLarge(file, length, limit):
            return "\(file): the header length \(length) exceeds the limit of \(limit) bytes (not a safetensors file?)"
        case let .headerNotJSON(file, reason):
            return "\(file): the safetensors header is not a JSON object: \(reason)"
        case let .invalidEntry(file, key, reason):
            return "\(file): header entry '\(key)' is invalid: \(reason)"
        case let .unknownDType(file, key, dtype):
            return "\(file): tensor '\(key)' has unknown dtype '\(dtype)' (known: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .invalidMetadata(file, reason):
            return "\(file): __metadata__ must map strings to strings: \(reason)"
        case let .offsetsOutOfRange(file, key, offsets, dataSize):
            return "\(file): tensor '\(key)' has data_offsets [\(offsets.joined(separator: ", "))] outside the \(dataSize)-byte data section"
        case let .overlappingOffsets(file, key, other):
            return "\(file): the data of tensor '\(key)' overlaps that of tensor '\(other)'"
        case let .gapInData(file, key, start, end):
            return "\(file): unused bytes \(start)..<\(end) in the data section before tensor '\(key)'"
        case let .sizeMismatch(file, key, dtype, shape, expected, actual):
            return "\(file): tensor '\(key)' (\(dtype) \(shape)) needs \(expected) bytes but its data_offsets span \(actual)"
        case let .unusedData(file, dataSize, used):
            return "\(file): the data section has \(dataSize) bytes but the tensors use only \(used)"
        case let .pickleCheckpoint(file, format):
            return "\(file): this is a PyTorch pickle checkpoint (\(format)), which JPGen never loads because unpickling can run code; convert it to .safetensors first (e.g. with safetensors.torch.save_file in Python)"
        case let .missingTensor(file, key):
            return "\(file): no tensor named '\(key)'"
        case let .unsupportedConversion(from, to):
            return "cannot convert \(from) to \(to)"
        case let .bufferSizeMismatch(expected, actual):
            return "conversion buffer size mismatch: expected \(expected) bytes, got \(actual)"
        case let .invalidName(file, key):
            return "\(file): invalid tensor name '\(key)' (empty or reserved)"
        case let .duplicateEntry(file, key):
            return "\(file): tensor '\(key)' is listed twice"
        case let .unknownEntry(file, key):
            return "\(file): tensor '\(key)' was not declared when the writer was created"
        case let .alreadyWritten(file, key):
            return "\(file): tensor '\(key)' was already written"
        case let .wrongElementCount(file, key, expected, actual):
            return "\(file): tensor '\(key)' needs \(expected) elements, got \(actual)"
        case let .wrongByteCount(file, key, expected, actual):
            return "\(file): tensor '\(key)' needs \(expected) bytes, got \(actual)"
        case let .notWritten(file, keys):
            return "\(file): tensors never written: \(keys.joined(separator: ", "))"
        case let .writeFailed(file, reason):
            return "\(file): write failed: \(reason)"
        }
    }
}
