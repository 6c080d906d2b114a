import Foundation
import XCTest

@testable import Evolution

final class EvolutionSearchTests: XCTestCase {
    struct Interrupted: Error {}

    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("evolve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    let space = try! SearchSpace(parameters: [
        .init(name: "weight.a", lower: 0, upper: 1, initial: 0.5),
        .init(name: "weight.b", lower: 0, upper: 1, initial: 0.5),
        .init(name: "density", lower: 0.1, upper: 1, initial: 0.5),
    ])
    let settings = SearchSettings(populationSize: 6, generations: 12, sigma0: 0.3, seed: 42)

    /// A smooth fitness with its maximum at (0.8, 0.2, 0.9), and one score per "prompt".
    static func score(_ request: CandidateRequest) -> CandidateResult {
        let p = request.parameters
        let a = p["weight.a"]! - 0.8, b = p["weight.b"]! - 0.2, d = p["density"]! - 0.9
        let fitness = 1 - (a * a + b * b + d * d)
        return CandidateResult(generation: request.generation, candidate: request.candidate, fitness: fitness,
                               scores: ["p1/1": fitness + 0.01, "p2/1": fitness - 0.01], seconds: 0.001)
    }

    func testSearchImprovesAndStoresEveryTrial() throws {
        let store = try TrialStore(url: directory.appendingPathComponent("evolve.sqlite"))
        let search = try EvolutionSearch(space: space, settings: settings, recipe: "recipe", store: store,
                                         evaluator: InProcessEvaluator(Self.score), resume: false)
        var summaries: [GenerationSummary] = []
        let result = try search.run { summaries.append($0) }
        XCTAssertEqual(result.generations, 12)
        XCTAssertEqual(result.evaluations, 72)
        XCTAssertEqual(try store.allTrials().count, 72)
        XCTAssertEqual(try store.generations().count, 12)
        XCTAssertEqual(summaries.map(\.generation), Array(1...12))
        XCTAssertGreaterThan(result.bestFitness, 0.99)
        XCTAssertGreaterThan(summaries.last!.meanFitness, summaries.first!.meanFitness)
        XCTAssertEqual(result.bestParameters["weight.a"]!, 0.8, accuracy: 0.1)
        for trial in try store.allTrials() {
            let parameters = try JSONDecoder().decode([String: Double].self, from: Data(trial.parameters.utf8))
            XCTAssertTrue((0.1...1).contains(parameters["density"]!), "parameters stay inside their bounds")
        }
    }

    func testInterruptedRunResumesOnTheSameTrajectoryWithoutRedoingWork() throws {
        // Uninterrupted reference run.
        let referenceStore = try TrialStore(url: directory.appendingPathComponent("reference.sqlite"))
        _ = try EvolutionSearch(space: space, settings: settings, recipe: "recipe", store: referenceStore,
                                evaluator: InProcessEvaluator(Self.score), resume: false).run()

        // The same run, killed in the middle of generation 5 (after 27 evaluations), then resumed twice
        // more after further interruptions.
        let url = directory.appendingPathComponent("interrupted.sqlite")
        var calls = 0
        for killAfter in [27, 45, Int.max] {
            let store = try TrialStore(url: url)
            let search = try EvolutionSearch(space: space, settings: settings, recipe: "recipe", store: store,
                                             evaluator: InProcessEvaluator { request in
                                                 if calls >= killAfter { throw Interrupted() }
                                                 calls += 1
                                                 return Self.score(request)
                                             }, resume: true)
            do {
                _ = try search.run()
                XCTAssertEqual(killAfter, Int.max, "the run should have been interrupted")
            } catch is Interrupted {
                XCTAssertNotEqual(killAfter, Int.max)
            }
        }
        XCTAssertEqual(calls, 72, "every candidate evaluated exactly once across the interruptions")
        let resumed = try TrialStore(url: url)
        let a = try referenceStore.allTrials(), b = try resumed.allTrials()
        XCTAssertEqual(a.map(\.genome), b.map(\.genome))
        XCTAssertEqual(a.map(\.fitness), b.map(\.fitness))
        XCTAssertEqual(try referenceStore.generations().map(\.optimizerState), try resumed.generations().map(\.optimizerState))
    }

    func testExistingRunNeedsResumeAndTheSameSettings() throws {
        let url = directory.appendingPathComponent("evolve.sqlite")
        _ = try EvolutionSearch(space: space, settings: settings, recipe: "recipe", store: try TrialStore(url: url),
                                evaluator: InProcessEvaluator(Self.score), resume: false)
        XCTAssertThrowsError(try EvolutionSearch(space: space, settings: settings, recipe: "recipe", store: try TrialStore(url: url),
                                                 evaluator: InProcessEvaluator(Self.score), resume: false)) {
            XCTAssertEqual($0 as? EvolutionError, .runExists(path: url.path))
        }
        var other = settings
        other.seed = 43
        XCTAssertThrowsError(try EvolutionSearch(space: space, settings: other, recipe: "recipe", store: try TrialStore(url: url),
                                                 evaluator: InProcessEvaluator(Self.score), resume: true)) {
            XCTAssertEqual($0 as? EvolutionError, .resumeMismatch(path: url.path))
        }
        XCTAssertThrowsError(try EvolutionSearch(space: space, settings: settings, recipe: "another recipe",
                                                 store: try TrialStore(url: url),
                                                 evaluator: InProcessEvaluator(Self.score), resume: true)) {
            XCTAssertEqual($0 as? EvolutionError, .resumeMismatch(path: url.path))
        }
    }

    func testResumingWithALargerBudgetContinuesTheSameTrajectory() throws {
        let referenceStore = try TrialStore(url: directory.appendingPathComponent("reference.sqlite"))
        _ = try EvolutionSearch(space: space, settings: settings, recipe: "recipe", store: referenceStore,
                                evaluator: InProcessEvaluator(Self.score), resume: false).run()
        // Five generations, then resumed with the full twelve.
        let url = directory.appendingPathComponent("extended.sqlite")
        var short = settings
        short.generations = 5
        let first = try EvolutionSearch(space: space, settings: short, recipe: "recipe", store: try TrialStore(url: url),
                                        evaluator: InProcessEvaluator(Self.score), resume: false).run()
        XCTAssertEqual(first.generations, 5)
        var calls = 0
        let second = try EvolutionSearch(space: space, settings: settings, recipe: "recipe", store: try TrialStore(url: url),
                                         evaluator: InProcessEvaluator { calls += 1; return Self.score($0) }, resume: true).run()
        XCTAssertEqual(second.generations, 12)
        XCTAssertEqual(calls, 7 * 6, "only the new generations are evaluated")
        XCTAssertEqual(try referenceStore.allTrials().map(\.genome), try TrialStore(url: url).allTrials().map(\.genome))
    }

    func testSearchSpaceValidation() {
        XCTAssertThrowsError(try SearchSpace(parameters: [])) {
            XCTAssertEqual($0 as? EvolutionError, .invalidParameter("the evolve section names no parameter to search"))
        }
        XCTAssertThrowsError(try SearchSpace(parameters: [.init(name: "w", lower: 0, upper: 1, initial: 2)])) {
            XCTAssertEqual($0 as? EvolutionError, .invalidBounds("parameter 'w': initial value 2.0 lies outside [0.0, 1.0]"))
        }
        XCTAssertThrowsError(try SearchSpace(parameters: [.init(name: "w", lower: 0, upper: 1, initial: 0.5),
                                                         .init(name: "w", lower: 0, upper: 1, initial: 0.5)])) {
            XCTAssertEqual($0 as? EvolutionError, .invalidParameter("parameter 'w' is named twice"))
        }
    }

    func testNonFiniteFitnessIsRefused() throws {
        let store = try TrialStore(url: directory.appendingPathComponent("evolve.sqlite"))
        let search = try EvolutionSearch(space: space, settings: settings, recipe: "r", store: store,
                                         evaluator: InProcessEvaluator { request in
                                             CandidateResult(generation: request.generation, candidate: request.candidate,
                                                             fitness: .nan, scores: [:], seconds: 0)
                                         }, resume: false)
        XCTAssertThrowsError(try search.run()) {
            XCTAssertEqual($0 as? EvolutionError, .invalidParameter("candidate 0 of generation 1 has fitness nan"))
        }
        XCTAssertEqual(try store.allTrials().count, 0, "nothing half-written")
    }
}
