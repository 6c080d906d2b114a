// The search loop: CMA-ES proposes genomes, the evaluator scores them, the store keeps every trial and
// the optimiser state after every generation. Resuming reloads the last saved state, asks CMA-ES for
// the same generation again (the generator's state is part of the saved state, so the genomes are
// identical), reuses the trials already finished and evaluates only the rest: a run with a given seed
// follows the same trajectory whether or not it was interrupted.

import Foundation

/// The searchable parameters: a name, bounds and an initial value for each.
public struct SearchSpace: Codable, Equatable {
    public struct Parameter: Codable, Equatable {
        public var name: String
        public var lower: Double
        public var upper: Double
        public var initial: Double

        public init(name: String, lower: Double, upper: Double, initial: Double) {
            self.name = name
            self.lower = lower
            self.upper = upper
            self.initial = initial
        }
    }

    public var parameters: [Parameter]

    public init(parameters: [Parameter]) throws {
        guard !parameters.isEmpty else { throw EvolutionError.invalidParameter("the evolve section names no parameter to search") }
        var seen = Set<String>()
        for p in parameters {
            guard seen.insert(p.name).inserted else { throw EvolutionError.invalidParameter("parameter '\(p.name)' is named twice") }
            guard p.lower < p.upper else {
                throw EvolutionError.invalidBounds("parameter '\(p.name)': lower bound \(p.lower) is not below upper bound \(p.upper)")
            }
            guard p.initial >= p.lower, p.initial <= p.upper else {
                throw EvolutionError.invalidBounds("parameter '\(p.name)': initial value \(p.initial) lies outside [\(p.lower), \(p.upper)]")
            }
        }
        self.parameters = parameters
    }
}

public struct SearchSettings: Codable, Equatable {
    public var populationSize: Int?
    public var generations: Int
    /// Stops once this many candidates have been evaluated, if set (whole generations only).
    public var maxEvaluations: Int?
    /// Initial step size as a fraction of each parameter's range (parameters are searched normalised to [0, 1]).
    public var sigma0: Double
    public var seed: UInt64

    public init(populationSize: Int? = nil, generations: Int, maxEvaluations: Int? = nil, sigma0: Double = 0.2, seed: UInt64 = 0) {
        self.populationSize = populationSize
        self.generations = generations
        self.maxEvaluations = maxEvaluations
        self.sigma0 = sigma0
        self.seed = seed
    }
}

public struct GenerationSummary {
    public var generation: Int
    public var generations: Int
    public var bestFitness: Double
    public var meanFitness: Double
    public var bestSoFar: Double
    public var evaluations: Int
    public var reusedEvaluations: Int
    public var seconds: Double
    public var etaSeconds: Double
}

public struct SearchResult {
    public var bestFitness: Double
    public var bestParameters: [String: Double]
    public var evaluations: Int
    public var generations: Int
}

public final class EvolutionSearch {
    public let space: SearchSpace
    public let settings: SearchSettings
    public let store: TrialStore
    let evaluator: CandidateEvaluator

    /// Opens (or creates) the run's store. `recipe` is the text of the recipe being evolved; resuming a
    /// store that was started with another recipe or other settings is refused.
    public init(space: SearchSpace, settings: SearchSettings, recipe: String, store: TrialStore,
                evaluator: CandidateEvaluator, resume: Bool) throws {
        self.space = space
        self.settings = settings
        self.store = store
        self.evaluator = evaluator
        let settingsJSON = try Self.settingsJSON(space: space, settings: settings)
        if let info = try store.runInfo() {
            guard resume else { throw EvolutionError.runExists(path: store.url.path) }
            guard info.recipe == recipe, info.settings == settingsJSON else {
                throw EvolutionError.resumeMismatch(path: store.url.path)
            }
        } else {
            try store.startRun(recipe: recipe, settings: settingsJSON)
        }
    }

    /// What identifies a run's trajectory: the space and every setting but the budget (generations,
    /// max evaluations), so that a run can be resumed with a larger budget and continue where it stopped.
    static func settingsJSON(space: SearchSpace, settings: SearchSettings) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var identity = settings
        identity.generations = 0
        identity.maxEvaluations = nil
        struct Both: Encodable { let space: SearchSpace; let settings: SearchSettings }
        return String(decoding: try encoder.encode(Both(space: space, settings: identity)), as: UTF8.self)
    }

    /// Genotypes live in [0, 1] per parameter; this maps a (bounded) phenotype to concrete values.
    func concrete(_ unit: [Double]) -> [String: Double] {
        var values: [String: Double] = [:]
        for (p, u) in zip(space.parameters, unit) { values[p.name] = p.lower + u * (p.upper - p.lower) }
        return values
    }

    func freshOptimizer() throws -> CMAES {
        let initial = space.parameters.map { ($0.initial - $0.lower) / ($0.upper - $0.lower) }
        let n = initial.count
        return try CMAES(mean: initial, sigma: settings.sigma0,
                         options: CMAESOptions(populationSize: settings.populationSize, seed: settings.seed,
                                               lowerBounds: Array(repeating: 0, count: n),
                                               upperBounds: Array(repeating: 1, count: n)))
    }

    /// Runs (or continues) the search until `generations` or `maxEvaluations` is reached.
    public func run(progress: (GenerationSummary) -> Void = { _ in }) throws -> SearchResult {
        var optimizer: CMAES
        var bestSoFar = -Double.infinity
        if let last = try store.lastGeneration() {
            optimizer = try JSONDecoder().decode(CMAES.self, from: Data(last.optimizerState.utf8))
            bestSoFar = last.bestSoFar
        } else {
            optimizer = try freshOptimizer()
        }
        var timePerGeneration: [Double] = []
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        while optimizer.generation < settings.generations,
              settings.maxEvaluations.map({ optimizer.evaluations + optimizer.lambda <= $0 }) ?? true,
              optimizer.stopReason == nil {
            let started = Date()
            let generation = optimizer.generation + 1
            let genomes = optimizer.ask()
            var results: [Int: CandidateResult] = [:]
            var reused = 0
            for trial in try store.trials(generation: generation) {
                // A finished trial is reused only if it is the same genome (it always is, for a same-seed run).
                guard trial.candidate < genomes.count,
                      trial.genome == String(decoding: try encoder.encode(genomes[trial.candidate]), as: UTF8.self) else {
                    throw EvolutionError.resumeMismatch(path: store.url.path)
                }
                let scores = try JSONDecoder().decode([String: Double].self, from: Data(trial.scores.utf8))
                results[trial.candidate] = CandidateResult(generation: generation, candidate: trial.candidate,
                                                           fitness: trial.fitness, scores: scores, seconds: trial.seconds)
                reused += 1
            }
            let requests = genomes.indices.filter { results[$0] == nil }.map {
                CandidateRequest(generation: generation, candidate: $0, parameters: concrete(optimizer.phenotype(genomes[$0])))
            }
            try evaluator.evaluate(requests) { result in
                guard result.generation == generation, result.candidate >= 0, result.candidate < genomes.count,
                      results[result.candidate] == nil else {
                    throw EvolutionError.invalidParameter("evaluator returned an unexpected result: generation \(result.generation), candidate \(result.candidate)")
                }
                guard result.fitness.isFinite else {
                    throw EvolutionError.invalidParameter("candidate \(result.candidate) of generation \(generation) has fitness \(result.fitness)")
                }
                let request = requests.first { $0.candidate == result.candidate }!
                try store.save(TrialRecord(
                    generation: generation, candidate: result.candidate,
                    genome: String(decoding: try encoder.encode(genomes[result.candidate]), as: UTF8.self),
                    parameters: String(decoding: try encoder.encode(request.parameters), as: UTF8.self),
                    fitness: result.fitness,
                    scores: String(decoding: try encoder.encode(result.scores), as: UTF8.self),
                    seconds: result.seconds, finishedAt: Date()))
                results[result.candidate] = result
            }
            guard results.count == genomes.count else {
                throw EvolutionError.invalidParameter("evaluator finished \(results.count) of \(genomes.count) candidates of generation \(generation)")
            }
            let fitness = genomes.indices.map { results[$0]!.fitness }
            try optimizer.tell(fitness: fitness.map { -$0 })   // CMA-ES minimises
            let best = fitness.max()!, mean = fitness.reduce(0, +) / Double(fitness.count)
            bestSoFar = max(bestSoFar, best)
            let seconds = Date().timeIntervalSince(started)
            try store.save(GenerationRecord(
                generation: generation,
                optimizerState: String(decoding: try encoder.encode(optimizer), as: UTF8.self),
                bestFitness: best, meanFitness: mean, bestSoFar: bestSoFar, seconds: seconds, finishedAt: Date()))
            timePerGeneration.append(seconds)
            let average = timePerGeneration.reduce(0, +) / Double(timePerGeneration.count)
            progress(GenerationSummary(
                generation: generation, generations: settings.generations, bestFitness: best, meanFitness: mean,
                bestSoFar: bestSoFar, evaluations: optimizer.evaluations, reusedEvaluations: reused, seconds: seconds,
                etaSeconds: average * Double(settings.generations - generation)))
        }
        guard let best = try store.bestTrial() else { throw EvolutionError.invalidParameter("the run evaluated no candidate") }
        return SearchResult(
            bestFitness: best.fitness,
            bestParameters: try JSONDecoder().decode([String: Double].self, from: Data(best.parameters.utf8)),
            evaluations: optimizer.evaluations, generations: optimizer.generation)
    }
}
