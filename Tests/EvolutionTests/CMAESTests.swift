import Foundation
import XCTest

@testable import Evolution

/// CMA-ES on the standard test functions, against pycma's evaluation counts recorded by
/// Tools/fixtures/cmaes_reference.py (same functions, starting point, sigma0, population and target).
final class CMAESTests: XCTestCase {
    struct Reference: Decodable {
        struct Problem: Decodable {
            let function: String
            let dimension: Int
            let x0: Double
            let sigma0: Double
            let popsize: Int?
            let maxEvaluations: Int
            let target: Double
            let runs: Int
            let successes: Int
            let medianEvaluations: Double?
        }
        let cmaVersion: String
        let problems: [Problem]
    }

    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Evolution")

    static func function(_ name: String) -> ([Double]) -> Double {
        switch name {
        case "sphere": return { $0.reduce(0) { $0 + $1 * $1 } }
        case "ellipsoid":
            return { x in
                let n = x.count
                return x.indices.reduce(0) { acc, i in
                    acc + Foundation.pow(1e6, n == 1 ? 0 : Double(i) / Double(n - 1)) * x[i] * x[i]
                }
            }
        case "rosenbrock":
            return { x in
                (0..<(x.count - 1)).reduce(0) { acc, i in
                    let a = x[i + 1] - x[i] * x[i], b = 1 - x[i]
                    return acc + 100 * a * a + b * b
                }
            }
        case "rastrigin":
            return { x in
                10 * Double(x.count) + x.reduce(0) { $0 + $1 * $1 - 10 * Foundation.cos(2 * Double.pi * $1) }
            }
        default: preconditionFailure("unknown test function \(name)")
        }
    }

    /// P(X <= successes) for X hypergeometric: of all successes of both samples, how many fall in
    /// ours if both have the same success rate (Fisher's exact test, lower tail).
    static func fisherLowerTail(successes: Int, runs: Int, referenceSuccesses: Int, referenceRuns: Int) -> Double {
        func logChoose(_ n: Int, _ k: Int) -> Double {
            lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
        }
        let total = runs + referenceRuns, hits = successes + referenceSuccesses
        var p = 0.0
        for x in max(0, hits - referenceRuns)...min(successes, hits) {
            p += exp(logChoose(hits, x) + logChoose(total - hits, runs - x) - logChoose(total, runs))
        }
        return p
    }

    func testFisherLowerTail() {
        // 0/5 against 5/5: 1 / C(10, 5); equal samples: above one half.
        XCTAssertEqual(Self.fisherLowerTail(successes: 0, runs: 5, referenceSuccesses: 5, referenceRuns: 5), 1.0 / 252, accuracy: 1e-12)
        XCTAssertEqual(Self.fisherLowerTail(successes: 9, runs: 11, referenceSuccesses: 11, referenceRuns: 11), 167960.0 / 705432, accuracy: 1e-9)
        XCTAssertGreaterThan(Self.fisherLowerTail(successes: 8, runs: 11, referenceSuccesses: 8, referenceRuns: 11), 0.5)
        XCTAssertLessThan(Self.fisherLowerTail(successes: 5, runs: 11, referenceSuccesses: 11, referenceRuns: 11), 0.05)
    }

    /// Evaluations until the best fitness is below `target`, or nil if `maxEvaluations` ran out.
    static func evaluationsToTarget(_ f: ([Double]) -> Double, dimension: Int, x0: Double, sigma0: Double,
                                    popsize: Int?, target: Double, maxEvaluations: Int, seed: UInt64) throws -> Int? {
        var es = try CMAES(mean: Array(repeating: x0, count: dimension), sigma: sigma0,
                           options: CMAESOptions(populationSize: popsize, seed: seed))
        while es.evaluations < maxEvaluations {
            let population = es.ask()
            let fitness = population.map { f(es.phenotype($0)) }
            try es.tell(fitness: fitness)
            if fitness.min()! < target { return es.evaluations }
            if es.stopReason != nil { return nil }
        }
        return nil
    }

    func testMedianEvaluationsWithinTwentyFivePercentOfPycma() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("pycma_reference.json"))
        let reference = try JSONDecoder().decode(Reference.self, from: data)
        XCTAssertGreaterThanOrEqual(reference.problems.count, 15)
        for problem in reference.problems {
            guard let pycmaMedian = problem.medianEvaluations else { continue }
            let f = Self.function(problem.function)
            var counts: [Int] = []
            for seed in 1...UInt64(problem.runs) {
                if let n = try Self.evaluationsToTarget(
                    f, dimension: problem.dimension, x0: problem.x0, sigma0: problem.sigma0, popsize: problem.popsize,
                    target: problem.target, maxEvaluations: problem.maxEvaluations, seed: seed + 1000) {
                    counts.append(n)
                }
            }
            // Success rate no worse than pycma's: Fisher's exact test, one-sided, at the 5% level (on
            // Rosenbrock n >= 4 a run can end in the local minimum, so a run or two either way is chance).
            let p = Self.fisherLowerTail(successes: counts.count, runs: problem.runs,
                                         referenceSuccesses: problem.successes, referenceRuns: problem.runs)
            XCTAssertGreaterThan(p, 0.05, "\(problem.function) n=\(problem.dimension): \(counts.count)/\(problem.runs) runs " +
                                 "reached the target against pycma's \(problem.successes)/\(problem.runs) (p = \(p))")
            guard !counts.isEmpty else { continue }
            counts.sort()
            let median = counts.count % 2 == 1
                ? Double(counts[counts.count / 2])
                : Double(counts[counts.count / 2 - 1] + counts[counts.count / 2]) / 2
            let ratio = median / pycmaMedian
            print("CMA-ES \(problem.function) n=\(problem.dimension): median \(median) evaluations, pycma \(pycmaMedian), ratio \(String(format: "%.2f", ratio))")
            // Tolerance: within 25% of pycma's median, as the issue asks (fewer evaluations are fine).
            XCTAssertLessThanOrEqual(ratio, 1.25, "\(problem.function) n=\(problem.dimension): \(median) vs pycma \(pycmaMedian)")
        }
    }

    func testSameSeedSameTrajectoryAcrossSaveAndLoad() throws {
        let f = Self.function("ellipsoid")
        var uninterrupted = try CMAES(mean: Array(repeating: 1, count: 6), sigma: 0.5, options: CMAESOptions(seed: 7))
        var resumed = uninterrupted
        for generation in 0..<40 {
            let a = uninterrupted.ask()
            try uninterrupted.tell(fitness: a.map(f))
            // Round-trip the resumed copy through JSON every generation, and ask twice (as a killed run does).
            let data = try JSONEncoder().encode(resumed)
            resumed = try JSONDecoder().decode(CMAES.self, from: data)
            let b = resumed.ask()
            XCTAssertEqual(resumed.ask(), b, "asking again before tell must repeat the generation")
            XCTAssertEqual(a, b, "generation \(generation) differs after a save and load")
            try resumed.tell(fitness: b.map(f))
        }
        XCTAssertEqual(uninterrupted, resumed)
    }

    func testBoundTransformMatchesPycmaExamples() throws {
        // pycma's docstring example for BoxConstraintsLinQuadTransformation with margin_width2:
        // tf([[1,2],[1,11],[1,11]]) maps [1.52, -2.2, -0.2, 2, 4, 10.4] to [1.52, 4.1, 2.1, 2.0, 4.0, 10.4]
        // (bounds beyond the third coordinate repeat the last pair).
        let lower = [1.0, 1, 1, 1, 1, 1], upper = [2.0, 11, 11, 11, 11, 11]
        let transform = try BoundTransform(lower: lower, upper: upper)
        let y = transform.apply([1.52, -2.2, -0.2, 2, 4, 10.4])
        let expected = [1.52, 4.1, 2.1, 2.0, 4.0, 10.4]
        for (a, b) in zip(y, expected) { XCTAssertEqual(a, b, accuracy: 1e-9) }
        XCTAssertEqual(transform.marginUpper[0], 0.1, accuracy: 1e-12)
        XCTAssertEqual(transform.marginUpper[1], 0.55, accuracy: 1e-12)
        // Every genotype lands inside the box.
        var rng = SeededNormalGenerator(seed: 3)
        for _ in 0..<1000 {
            let x = (0..<6).map { _ in rng.nextNormal() * 50 }
            for (i, v) in transform.apply(x).enumerated() {
                XCTAssertGreaterThanOrEqual(v, lower[i])
                XCTAssertLessThanOrEqual(v, upper[i])
            }
        }
    }

    func testBoundedSearchFindsOptimumOnTheBoundary() throws {
        // Minimum of the sphere centred at 3 lies on the upper bound 1 of the box [-1, 1]^4.
        var es = try CMAES(mean: Array(repeating: 0, count: 4), sigma: 0.3,
                           options: CMAESOptions(seed: 5, lowerBounds: Array(repeating: -1, count: 4),
                                                 upperBounds: Array(repeating: 1, count: 4)))
        for _ in 0..<300 {
            let population = es.ask()
            try es.tell(fitness: population.map { es.phenotype($0).reduce(0) { $0 + ($1 - 3) * ($1 - 3) } })
        }
        let best = es.phenotype(es.bestGenotype!)
        for v in best { XCTAssertEqual(v, 1, accuracy: 1e-4) }
    }

    func testBadInputErrors() throws {
        XCTAssertThrowsError(try CMAES(mean: [], sigma: 1)) {
            XCTAssertEqual($0 as? EvolutionError, .invalidParameter("the search needs at least one coordinate"))
        }
        XCTAssertThrowsError(try CMAES(mean: [0], sigma: 0)) {
            XCTAssertEqual($0 as? EvolutionError, .invalidParameter("sigma0 must be positive, got 0.0"))
        }
        XCTAssertThrowsError(try BoundTransform(lower: [1], upper: [1])) {
            guard case .invalidBounds = $0 as? EvolutionError else { return XCTFail("\($0)") }
        }
        var es = try CMAES(mean: [0, 0], sigma: 1)
        XCTAssertThrowsError(try es.tell(fitness: [1])) { XCTAssertEqual($0 as? EvolutionError, .tellWithoutAsk) }
        _ = es.ask()
        XCTAssertThrowsError(try es.tell(fitness: [1])) {
            guard case .invalidParameter = $0 as? EvolutionError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try es.tell(fitness: Array(repeating: .nan, count: es.lambda)))
    }
}
