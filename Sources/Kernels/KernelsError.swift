// Errors of the Kernels module. The kernels themselves treat a shape mismatch between their
// arguments as a programmer mistake (precondition with both shapes in the message); these errors
// are for callers that validate data read from files before handing it to a kernel.

import Foundation

public enum KernelsError: LocalizedError, Equatable {
    /// A tensor named `name` has `actual` shape where `expected` was required.
    case shapeMismatch(name: String, expected: [Int], actual: [Int])
    /// `data` holds `actual` elements where the shape needs `expected`.
    case elementCount(shape: [Int], expected: Int, actual: Int)
    /// An argument outside its valid range (e.g. a token id past the embedding table).
    case invalidArgument(String)

    public var errorDescription: String? {
        switch self {
        case let .shapeMismatch(name, expected, actual):
            return "tensor '\(name)' has shape \(actual), expected \(expected)"
        case let .elementCount(shape, expected, actual):
            return "shape \(shape) needs \(expected) elements, got \(actual)"
        case let .invalidArgument(message):
            return message
        }
    }
}

/// Throws `KernelsError.shapeMismatch` unless `tensor.shape == expected`.
public func checkShape(_ tensor: Tensor, _ expected: [Int], name: String) throws {
    if tensor.shape != expected {
        throw KernelsError.shapeMismatch(name: name, expected: expected, actual: tensor.shape)
    }
}

extension Tensor {
    /// A tensor holding `data`, throwing (instead of trapping) when the sizes disagree.
    public init(validatingShape shape: [Int], data: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw KernelsError.invalidArgument("negative dimension in shape \(shape)")
        }
        let expected = shape.reduce(1, *)
        guard expected == data.count else {
            throw KernelsError.elementCount(shape: shape, expected: expected, actual: data.count)
        }
        self.init(shape: shape, data: data)
    }
}

/// Resolves a possibly negative axis against `rank` (precondition: in range).
@inline(__always)
func normalizedAxis(_ axis: Int, rank: Int) -> Int {
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < rank, "axis \(axis) out of range for rank \(rank)")
    return a
}
