import Foundation

public enum EvolutionError: LocalizedError, Equatable {
    case invalidParameter(String)
    case invalidBounds(String)
    case tellWithoutAsk
    case eigendecompositionFailed(Int)

    public var errorDescription: String? {
        switch self {
        case .invalidParameter(let message): return "CMA-ES: \(message)"
        case .invalidBounds(let message): return "CMA-ES bounds: \(message)"
        case .tellWithoutAsk: return "CMA-ES: tell() was called without a pending ask()"
        case .eigendecompositionFailed(let info):
            return "CMA-ES: the covariance matrix could not be decomposed (LAPACK dsyev info \(info)); the search has degenerated"
        }
    }
}
