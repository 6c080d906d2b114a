import Foundation

public enum EvolutionError: LocalizedError, Equatable {
    case invalidParameter(String)
    case invalidBounds(String)
    case tellWithoutAsk
    case eigendecompositionFailed(Int)
    case store(path: String, message: String)
    case runExists(path: String)
    case resumeMismatch(path: String)
    case worker(index: Int, message: String)
    case recipe(path: String, message: String)

    public var errorDescription: String? {
        switch self {
        case .invalidParameter(let message): return "evolve: \(message)"
        case .invalidBounds(let message): return "evolve bounds: \(message)"
        case .tellWithoutAsk: return "CMA-ES: tell() was called without a pending ask()"
        case .eigendecompositionFailed(let info):
            return "CMA-ES: the covariance matrix could not be decomposed (LAPACK dsyev info \(info)); the search has degenerated"
        case .store(let path, let message): return "\(path): trial store error: \(message)"
        case .runExists(let path):
            return "\(path) already holds a run: pass --resume to continue it, or choose another --run-dir"
        case .resumeMismatch(let path):
            return "\(path) was started with another recipe, search space or settings (or another seed): it cannot be resumed with these; choose another --run-dir"
        case .worker(let index, let message): return "evaluation worker \(index): \(message)"
        case .recipe(let path, let message): return "\(path): \(message)"
        }
    }
}
