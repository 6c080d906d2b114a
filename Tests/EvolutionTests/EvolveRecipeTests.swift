import Foundation
import XCTest
import Yams

@testable import Evolution

final class EvolveRecipeTests: XCTestCase {
    let recipe = """
        inputs: {a: Models/demo-lcm, b: Models/demo-ukiyoe, c: Models/demo-base}
        method: ties
        base: c
        parameters:
          weight: {a: 0.7, b: 0.3}
          density: 0.5
        overrides:
          - {modules: attention, parameters: {weight: {a: 0.2, b: 0.8}}}
        seed: 0
        dtype: fp16
        output: merged.safetensors
        evolve:
          parameters:
            - {path: parameters.weight.a, min: 0, max: 1, init: 0.7}
            - {path: parameters.density, min: 0.1, max: 1}
            - {path: overrides.0.parameters.weight.b, min: 0, max: 1, init: 0.8}
          population: 6
          generations: 5
          sigma0: 0.25
          seed: 3
          fitness: {suite: Examples/prompts/demo-world.yaml, split: search, scorer: Models/demo-scorer, steps: 4, seeds_per_prompt: 1}
        """

    func testParsesTheSectionAndWritesConcreteRecipes() throws {
        let r = try EvolveRecipe(yaml: recipe, path: "r.yaml")
        XCTAssertEqual(r.spec.space.parameters.map(\.name), ["parameters.weight.a", "parameters.density", "overrides.0.parameters.weight.b"])
        XCTAssertEqual(r.spec.space.parameters[1].initial, 0.55, accuracy: 1e-12, "init defaults to the middle of the range")
        XCTAssertEqual(r.spec.settings, SearchSettings(populationSize: 6, generations: 5, sigma0: 0.25, seed: 3))
        XCTAssertEqual(r.spec.fitness.scorer, "Models/demo-scorer")
        XCTAssertEqual(r.spec.fitness.steps, 4)

        let text = try r.concreteRecipe(["parameters.weight.a": 0.125, "parameters.density": 0.9,
                                         "overrides.0.parameters.weight.b": 0.5], extra: ["output": "best.safetensors"])
        let concrete = try Yams.load(yaml: text) as! [String: Any]
        XCTAssertNil(concrete["evolve"], "the concrete recipe has no evolve section")
        let parameters = concrete["parameters"] as! [String: Any]
        XCTAssertEqual((parameters["weight"] as! [String: Any])["a"] as? Double, 0.125)
        XCTAssertEqual((parameters["weight"] as! [String: Any])["b"] as? Double, 0.3, "untouched values stay")
        XCTAssertEqual(parameters["density"] as? Double, 0.9)
        let override = (concrete["overrides"] as! [[String: Any]])[0]
        XCTAssertEqual(((override["parameters"] as! [String: Any])["weight"] as! [String: Any])["b"] as? Double, 0.5)
        XCTAssertEqual(concrete["output"] as? String, "best.safetensors")
        XCTAssertEqual(concrete["method"] as? String, "ties")
    }

    func testBadSectionsNameTheProblem() {
        func error(_ yaml: String) -> String {
            do { _ = try EvolveRecipe(yaml: yaml, path: "r.yaml"); return "no error" } catch {
                return (error as? EvolutionError)?.errorDescription ?? "\(error)"
            }
        }
        let base = "method: linear\nparameters: {weight: {a: 0.5, b: 0.5}}\n"
        XCTAssertEqual(error(base), "r.yaml: no 'evolve:' section: say which parameters to search")
        XCTAssertEqual(error(base + "evolve: {parameters: [{path: parameters.weight.c, min: 0, max: 1}], generations: 2, fitness: {suite: s, scorer: m}}"),
                       "r.yaml: evolve parameter 'parameters.weight.c': the recipe has nothing at 'parameters.weight.c'")
        XCTAssertEqual(error(base + "evolve: {parameters: [{path: parameters.weight, min: 0, max: 1}], generations: 2, fitness: {suite: s, scorer: m}}"),
                       "r.yaml: evolve parameter 'parameters.weight': the value there is not a number (a map or list); name one of its entries")
        XCTAssertEqual(error(base + "evolve: {parameters: [{path: parameters.weight.a, min: 1, max: 0}], generations: 2, fitness: {suite: s, scorer: m}}"),
                       "r.yaml: evolve: evolve bounds: parameter 'parameters.weight.a': lower bound 1.0 is not below upper bound 0.0")
        XCTAssertEqual(error(base + "evolve: {parameters: [{path: parameters.weight.a, min: 0, max: 1}], fitness: {suite: s, scorer: m}}"),
                       "r.yaml: evolve: 'generations' must be a positive integer")
        XCTAssertTrue(error(base + "evolve: {parameters: [{path: parameters.weight.a, min: 0, max: 1}], generations: 2, fitness: {suite: s}}")
                        .hasPrefix("r.yaml: evolve: 'fitness' needs at least 'suite' and 'scorer'"))
        XCTAssertEqual(error("- a\n- b\n"), "r.yaml: the recipe is not a YAML mapping")
    }
}
