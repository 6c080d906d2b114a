// A merge recipe (YAML): the whole truth of a merge. Keys:
//
//   inputs: {a: path/to/a.safetensors, b: path/to/folder, c: path/to/c.safetensors}
//   method: ties          # linear | add_difference | task_arithmetic | ties | dare_linear | dare_ties | slerp
//   base: c               # for the methods that take one
//   parameters:           # a number, or a map per input
//     weight: {a: 0.7, b: 0.3}
//     density: 0.5
//   overrides:            # most specific wins: tensors (glob) > blocks > modules > global
//     - {blocks: [IN00, OUT11], parameters: {weight: {a: 1.0, b: 0.0}}}
//     - {modules: attention, parameters: {weight: {a: 0.2, b: 0.8}}}
//     - {tensors: "*.norm*", parameters: {weight: {a: 0.5, b: 0.5}}}
//   components: {text_encoder: merge, vae: copy a}   # merge (default) | copy NAME | omit
//                         # folder outputs: a copied component brings its configs too (a text encoder
//                         # its tokenizer), and `scheduler: copy a` takes a's scheduler
//   loras: [{path: lcm-lora.safetensors, scale: 1.0}] # fused into the result (kohya or PEFT names)
//   seed: 0
//   dtype: fp16           # fp16 | bf16 | fp32
//   output: merged.safetensors
//
// Parameters by method: linear: weight (per input), normalize; add_difference: alpha (a + alpha (b - c)
// with a, b, c the first, second and base input); task_arithmetic: weight, lambda, normalize; ties:
// weight, density, lambda, normalize; dare_*: weight, density, rescale (density | l1 | none), lambda,
// normalize; slerp: t (0 = base, 1 = the other input).

import Foundation
import SafeTensors
import Yams

public struct Recipe: Sendable {
    public enum Component: Equatable, Sendable { case merge, copy(String), omit }

    public struct Override: Sendable {
        public var blocks: [String]?
        public var modules: ModuleClass?
        public var tensors: String?
        public var parameters: [String: ParameterValue]
    }

    public enum ParameterValue: Equatable, Sendable {
        case number(Double)
        case perInput([String: Double])
        case text(String)
        case flag(Bool)
    }

    public var path: String
    public var text: String
    public var inputs: [(name: String, path: String)]
    public var method: MergeMethod
    public var base: String?
    public var parameters: [String: ParameterValue]
    public var overrides: [Override]
    public var components: [String: Component]
    public var seed: UInt64
    public var dtype: SafeTensorsDType
    public var output: String?
    public var loras: [(path: String, scale: Float)]

    public init(contentsOf url: URL) throws {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw MergingError.recipe(path: url.path, message: "cannot be read: \(error.localizedDescription)")
        }
        try self.init(yaml: text, path: url.path, relativeTo: url.deletingLastPathComponent())
    }

    /// Parses a recipe; input and output paths are taken relative to `relativeTo` (the recipe's folder)
    /// unless absolute.
    public init(yaml text: String, path: String = "<recipe>", relativeTo folder: URL? = nil) throws {
        self.path = path
        self.text = text
        func fail(_ message: String) -> MergingError { .recipe(path: path, message: message) }
        let node: Node
        do {
            guard let parsed = try Yams.compose(yaml: text) else { throw fail("the recipe is empty") }
            node = parsed
        } catch let error as MergingError { throw error } catch {
            throw fail("invalid YAML: \(error)")
        }
        guard let root = node.mapping else { throw fail("the recipe must be a mapping") }
        let known: Set<String> = ["inputs", "method", "base", "parameters", "overrides", "components", "seed", "dtype", "output",
                                  "evolve", "loras", "name"]
        for key in root.keys.compactMap(\.string) where !known.contains(key) {
            throw fail("unknown key '\(key)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        func resolve(_ p: String) -> String {
            guard let folder, !p.hasPrefix("/") else { return p }
            // Relative paths are relative to the recipe's folder, or, failing that, to the working directory.
            let candidate = folder.appendingPathComponent(p).path
            return FileManager.default.fileExists(atPath: candidate) || !FileManager.default.fileExists(atPath: p) ? candidate : p
        }
        guard let inputsNode = root["inputs"]?.mapping, !inputsNode.isEmpty else {
            throw fail("'inputs' must map input names to checkpoint paths")
        }
        inputs = try inputsNode.map { key, value in
            guard let name = key.string, let p = value.string else { throw fail("'inputs' must map names to paths") }
            return (name, resolve(p))
        }
        let names = Set(inputs.map(\.name))
        guard let methodName = root["method"]?.string else { throw fail("missing 'method'") }
        guard let method = MergeMethod(rawValue: methodName) else {
            throw fail("unknown method '\(methodName)' (known: \(MergeMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        self.method = method
        base = root["base"]?.string
        if method.needsBase {
            guard let base else { throw fail("method \(methodName) needs 'base' (one of the inputs)") }
            guard names.contains(base) else { throw fail("base '\(base)' is not one of the inputs (\(inputs.map(\.name).joined(separator: ", ")))") }
        }
        switch method {
        case .addDifference: if inputs.count != 3 { throw fail("add_difference takes three inputs (a + alpha (b - base)), got \(inputs.count)") }
        case .slerp: if inputs.count != 2 { throw fail("slerp takes two inputs, got \(inputs.count)") }
        case .passthrough: if inputs.count != 1 { throw fail("passthrough takes one input, got \(inputs.count)") }
        default: if inputs.count < 2 { throw fail("\(methodName) needs at least two inputs") }
        }
        func parseParameters(_ node: Node?, context: String) throws -> [String: ParameterValue] {
            guard let node else { return [:] }
            guard let mapping = node.mapping else { throw fail("\(context) must be a mapping") }
            var out: [String: ParameterValue] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { throw fail("\(context): parameter names must be strings") }
                if let map = value.mapping {
                    var perInput: [String: Double] = [:]
                    for (k, v) in map {
                        guard let input = k.string, names.contains(input) else {
                            throw fail("\(context).\(name): '\(k.string ?? "?")' is not an input")
                        }
                        guard let number = v.float else { throw fail("\(context).\(name).\(input) must be a number") }
                        perInput[input] = number
                    }
                    out[name] = .perInput(perInput)
                } else if let b = value.bool, value.scalar?.string == "true" || value.scalar?.string == "false" {
                    out[name] = .flag(b)
                } else if let number = value.float {
                    out[name] = .number(number)
                } else if let s = value.string {
                    out[name] = .text(s)
                } else {
                    throw fail("\(context).\(name) must be a number, a map per input, or a word")
                }
            }
            return out
        }
        parameters = try parseParameters(root["parameters"], context: "parameters")
        overrides = try (root["overrides"]?.sequence ?? []).enumerated().map { index, item in
            guard let m = item.mapping else { throw fail("overrides[\(index)] must be a mapping") }
            var o = Override(parameters: try parseParameters(m["parameters"], context: "overrides[\(index)].parameters"))
            if let blocks = m["blocks"] {
                let list = blocks.sequence?.compactMap(\.string) ?? blocks.string.map { [$0] } ?? []
                let valid = Set(blockNames(sdxl: false) + blockNames(sdxl: true))
                for b in list where !valid.contains(b) { throw fail("overrides[\(index)]: unknown block '\(b)' (BASE, IN00.., M00, OUT00..)") }
                o.blocks = list
            }
            if let module = m["modules"]?.string {
                guard let value = ModuleClass(rawValue: module) else { throw fail("overrides[\(index)]: modules must be attention or other, got '\(module)'") }
                o.modules = value
            }
            o.tensors = m["tensors"]?.string
            if o.blocks == nil && o.modules == nil && o.tensors == nil {
                throw fail("overrides[\(index)] selects nothing: give blocks, modules or tensors")
            }
            return o
        }
        components = [:]
        for (key, value) in root["components"]?.mapping ?? [:] {
            guard let name = key.string, let word = value.string else { throw fail("'components' must map component names to merge, copy NAME or omit") }
            let parts = word.split(separator: " ").map(String.init)
            switch parts.first {
            case "merge": components[name] = .merge
            case "omit": components[name] = .omit
            case "copy" where parts.count == 2 && names.contains(parts[1]): components[name] = .copy(parts[1])
            default: throw fail("components.\(name): '\(word)' is not merge, omit or copy INPUT")
            }
        }
        seed = UInt64(root["seed"]?.int ?? 0)
        switch root["dtype"]?.string ?? "fp16" {
        case "fp16", "float16", "f16": dtype = .F16
        case "bf16", "bfloat16": dtype = .BF16
        case "fp32", "float32", "f32": dtype = .F32
        case let other: throw fail("unknown dtype '\(other)' (fp16, bf16, fp32)")
        }
        output = root["output"]?.string.map(resolve)
        loras = try (root["loras"]?.sequence ?? []).enumerated().map { index, item in
            guard let p = item.mapping?["path"]?.string ?? item.string else { throw fail("loras[\(index)] needs a 'path'") }
            return (resolve(p), Float(item.mapping?["scale"]?.float ?? 1))
        }
    }

    /// The value of a parameter for one input at one tensor: the most specific override that sets it
    /// (tensors glob > blocks > modules), else the global value, else `fallback`.
    public func parameter(_ name: String, input: String, tensor: String, fallback: Double) throws -> Double {
        let place = tensorPlace(tensor)
        var chosen: ParameterValue? = parameters[name]
        var rank = 0
        for o in overrides {
            guard let value = o.parameters[name] else { continue }
            var matches = true, specificity = 0
            if let glob = o.tensors { matches = matches && globMatches(glob, tensor); specificity = max(specificity, 3) }
            if let blocks = o.blocks { matches = matches && blocks.contains(place.block); specificity = max(specificity, 2) }
            if let module = o.modules { matches = matches && module == place.module; specificity = max(specificity, 1) }
            if matches && specificity >= rank {
                chosen = value
                rank = specificity
            }
        }
        switch chosen {
        case .number(let v)?: return v
        case .perInput(let map)?:
            guard let v = map[input] else {
                throw MergingError.recipe(path: path, message: "parameter '\(name)' has no value for input '\(input)'")
            }
            return v
        case .flag(let b)?: return b ? 1 : 0
        case .text(let s)?: throw MergingError.recipe(path: path, message: "parameter '\(name)' must be a number, got '\(s)'")
        case nil: return fallback
        }
    }

    public func word(_ name: String, fallback: String) -> String {
        if case .text(let s)? = parameters[name] { return s }
        if case .flag(let b)? = parameters[name] { return b ? "true" : "false" }
        return fallback
    }
}
