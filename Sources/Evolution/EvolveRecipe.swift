// The `evolve:` section of a merge recipe, and the recipe as a template: every searchable parameter
// names a path into the recipe (dotted keys, list positions as numbers), and a candidate's values are
// written at those paths to give a plain recipe that `evomerge merge` accepts. Any recipe that
// `evomerge merge` accepts can thus be evolved, whatever its method, overrides or stages.
//
//   evolve:
//     parameters:
//       - {path: parameters.weight.a, min: 0, max: 1, init: 0.5}
//       - {path: overrides.0.parameters.density, min: 0.1, max: 1, init: 0.5}
//     population: 8          # lambda; default 4 + floor(3 ln n)
//     generations: 12
//     max_evaluations: 96    # optional budget
//     sigma0: 0.2            # fraction of each parameter's range
//     seed: 0
//     fitness:
//       suite: Examples/prompts/demo-world.yaml
//       split: search
//       scorer: Models/demo-scorer
//       sampler: lcm
//       steps: 4
//       cfg: 1.0
//       seeds_per_prompt: 1
//       seeds: [1, 2, 3, 4]        # optional: replaces the suite's seeds of every prompt
//       penalties: {steps: 0.0, unprompted: 0.5}
//       unprompted_labels: {sun: 太陽, moon: 月}   # tag -> the words the scorer reads for it

import Foundation
import Yams

public struct FitnessSpec: Codable, Equatable {
    public var suite: String
    public var split: String?
    public var scorer: String
    public var sampler: String?
    public var steps: Int?
    public var cfg: Double?
    public var width: Int?
    public var height: Int?
    public var seedsPerPrompt: Int?
    /// Replaces every prompt's seeds (as `evomerge eval --seeds`; the held-out report's too, unless
    /// `--report-seeds`), e.g. to score more seeds than the suite lists.
    public var seeds: [UInt64]?
    public var maxPrompts: Int?
    /// Subtracted from the mean score: name -> weight (e.g. `steps: 0.01` costs 0.01 per sampler step;
    /// `unprompted: w` costs w x the scorer's mean belief that an element the prompt leaves out is drawn).
    public var penalties: [String: Double]?
    /// The elements the `unprompted` penalty looks for: suite tag -> its name in the scorer's language.
    public var unpromptedLabels: [String: String]?

    enum CodingKeys: String, CodingKey {
        case suite, split, scorer, sampler, steps, cfg, width, height, penalties, seeds
        case seedsPerPrompt = "seeds_per_prompt", maxPrompts = "max_prompts", unpromptedLabels = "unprompted_labels"
    }
}

public struct EvolveSpec: Equatable {
    public var space: SearchSpace
    public var paths: [[String]]
    public var settings: SearchSettings
    public var fitness: FitnessSpec
}

/// A recipe with an `evolve:` section: the section parsed, the rest kept as a YAML tree.
public struct EvolveRecipe {
    public let path: String
    public let text: String
    public let spec: EvolveSpec
    let template: Node

    public init(contentsOf url: URL) throws {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw EvolutionError.recipe(path: url.path, message: "cannot be read: \(error.localizedDescription)")
        }
        try self.init(yaml: text, path: url.path)
    }

    public init(yaml text: String, path: String = "<recipe>") throws {
        self.path = path
        self.text = text
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text), case .mapping(var mapping) = node else {
                throw EvolutionError.recipe(path: path, message: "the recipe is not a YAML mapping")
            }
            guard let evolveNode = mapping["evolve"] else {
                throw EvolutionError.recipe(path: path, message: "no 'evolve:' section: say which parameters to search")
            }
            mapping["evolve"] = nil
            spec = try Self.parseSpec(evolveNode, path: path)
            root = .mapping(mapping)
        } catch let error as EvolutionError {
            throw error
        } catch {
            throw EvolutionError.recipe(path: path, message: "invalid YAML: \(error)")
        }
        template = root
        for (parameter, keys) in zip(spec.space.parameters, spec.paths) {
            guard let node = Self.lookup(root, keys) else {
                throw EvolutionError.recipe(path: path, message: "evolve parameter '\(parameter.name)': the recipe has nothing at '\(parameter.name)'")
            }
            guard node.scalar != nil else {
                throw EvolutionError.recipe(path: path, message: "evolve parameter '\(parameter.name)': the value there is not a number (a map or list); name one of its entries")
            }
        }
    }

    static func parseSpec(_ node: Node, path: String) throws -> EvolveSpec {
        func fail(_ message: String) -> EvolutionError { .recipe(path: path, message: "evolve: \(message)") }
        guard let mapping = node.mapping else { throw fail("must be a mapping") }
        guard let list = mapping["parameters"]?.sequence, !list.isEmpty else {
            throw fail("'parameters' must list at least one {path, min, max, init}")
        }
        var parameters: [SearchSpace.Parameter] = []
        var paths: [[String]] = []
        for (i, item) in list.enumerated() {
            guard let p = item.mapping, let name = p["path"]?.string else { throw fail("parameter #\(i + 1) has no 'path'") }
            guard let lower = p["min"]?.float, let upper = p["max"]?.float else {
                throw fail("parameter '\(name)' needs numeric 'min' and 'max'")
            }
            let initial = p["init"]?.float ?? (lower + upper) / 2
            parameters.append(.init(name: name, lower: lower, upper: upper, initial: initial))
            paths.append(name.split(separator: ".").map(String.init))
        }
        let space: SearchSpace
        do { space = try SearchSpace(parameters: parameters) } catch let error as EvolutionError {
            throw fail(error.errorDescription ?? "\(error)")
        }
        func int(_ key: String) throws -> Int? {
            guard let node = mapping[key] else { return nil }
            guard let value = node.int else { throw fail("'\(key)' must be an integer") }
            return value
        }
        guard let generations = try int("generations"), generations >= 1 else { throw fail("'generations' must be a positive integer") }
        if let population = try int("population"), population < 2 { throw fail("'population' must be at least 2") }
        let sigma0 = mapping["sigma0"]?.float ?? 0.2
        guard sigma0 > 0, sigma0 <= 1 else { throw fail("'sigma0' must be in (0, 1] (a fraction of each range)") }
        let settings = SearchSettings(populationSize: try int("population"), generations: generations,
                                      maxEvaluations: try int("max_evaluations"), sigma0: sigma0,
                                      seed: UInt64(max(try int("seed") ?? 0, 0)))
        guard let fitnessNode = mapping["fitness"] else { throw fail("missing 'fitness' (suite and scorer)") }
        let fitness: FitnessSpec
        do {
            fitness = try YAMLDecoder().decode(FitnessSpec.self, from: Yams.serialize(node: fitnessNode))
        } catch {
            throw fail("'fitness' needs at least 'suite' and 'scorer': \(error)")
        }
        return EvolveSpec(space: space, paths: paths, settings: settings, fitness: fitness)
    }

    static func lookup(_ node: Node, _ keys: [String]) -> Node? {
        guard let key = keys.first else { return node }
        switch node {
        case .mapping(let mapping):
            return mapping[key].flatMap { lookup($0, Array(keys.dropFirst())) }
        case .sequence(let sequence):
            guard let index = Int(key), index >= 0, index < sequence.count else { return nil }
            return lookup(sequence[index], Array(keys.dropFirst()))
        default:
            return nil
        }
    }

    static func replacing(_ node: Node, _ keys: [String], with value: Node) -> Node {
        guard let key = keys.first else { return value }
        switch node {
        case .mapping(var mapping):
            if let child = mapping[key] { mapping[key] = replacing(child, Array(keys.dropFirst()), with: value) }
            return .mapping(mapping)
        case .sequence(var sequence):
            if let index = Int(key), index >= 0, index < sequence.count {
                sequence[index] = replacing(sequence[index], Array(keys.dropFirst()), with: value)
            }
            return .sequence(sequence)
        default:
            return node
        }
    }

    /// The plain recipe (no `evolve:` section) with the candidate's values written in, as YAML text.
    public func concreteRecipe(_ values: [String: Double], extra: [String: String] = [:]) throws -> String {
        var node = template
        for (parameter, keys) in zip(spec.space.parameters, spec.paths) {
            guard let value = values[parameter.name] else {
                throw EvolutionError.invalidParameter("no value for '\(parameter.name)'")
            }
            node = Self.replacing(node, keys, with: Node(String(value), Tag(.float)))
        }
        if case .mapping(var mapping) = node {
            for (key, value) in extra.sorted(by: { $0.key < $1.key }) { mapping[Node(key)] = Node(value) }
            node = .mapping(mapping)
        }
        return try Yams.serialize(node: node, allowUnicode: true)
    }
}
