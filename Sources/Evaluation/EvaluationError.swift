import Foundation

public enum EvaluationError: LocalizedError, Equatable {
    case unreadableFile(path: String, reason: String)
    case invalidSuite(path: String, reason: String)
    case store(path: String, message: String)
    case newerStore(path: String, migrations: [String])
    case invalidRow(String)

    public var errorDescription: String? {
        switch self {
        case .unreadableFile(let path, let reason): return "\(path): cannot be read: \(reason)"
        case .invalidSuite(let path, let reason): return "\(path): invalid prompt suite: \(reason)"
        case .store(let path, let message): return "\(path): results store error: \(message)"
        case .newerStore(let path, let migrations):
            return "\(path) was written by a newer JPGen (unknown schema migrations: \(migrations.joined(separator: ", "))); upgrade JPGen to read it"
        case .invalidRow(let message): return "results store: \(message)"
        }
    }
}
