// The one interface through which a search evaluates its candidates. Candidates are independent of
// each other, so an evaluator may run them in any order and in parallel (worker processes here; a
// distributed backend can implement the same protocol without the search changing).

import Foundation

/// One candidate of one generation: its concrete parameter values (named as in the recipe's
/// `evolve:` section, already inside their bounds).
public struct CandidateRequest: Codable, Equatable {
    public var generation: Int
    public var candidate: Int
    public var parameters: [String: Double]

    public init(generation: Int, candidate: Int, parameters: [String: Double]) {
        self.generation = generation
        self.candidate = candidate
        self.parameters = parameters
    }
}

/// The outcome of evaluating one candidate. Fitness is maximised (a mean CLIP score, less penalties).
public struct CandidateResult: Codable, Equatable {
    public var generation: Int
    public var candidate: Int
    public var fitness: Double
    /// Score per prompt and seed ("prompt-id/seed" -> score).
    public var scores: [String: Double]
    public var seconds: Double

    public init(generation: Int, candidate: Int, fitness: Double, scores: [String: Double], seconds: Double) {
        self.generation = generation
        self.candidate = candidate
        self.fitness = fitness
        self.scores = scores
        self.seconds = seconds
    }
}

public protocol CandidateEvaluator {
    /// Evaluates every request, calling `onResult` once per request as soon as it finishes (in any
    /// order), so that finished work is stored even if the run is killed before the batch ends.
    func evaluate(_ requests: [CandidateRequest], onResult: (CandidateResult) throws -> Void) throws
}

/// Evaluates in this process, one candidate after another, with a closure.
public struct InProcessEvaluator: CandidateEvaluator {
    let body: (CandidateRequest) throws -> CandidateResult

    public init(_ body: @escaping (CandidateRequest) throws -> CandidateResult) {
        self.body = body
    }

    public func evaluate(_ requests: [CandidateRequest], onResult: (CandidateResult) throws -> Void) throws {
        for request in requests { try onResult(try body(request)) }
    }
}
