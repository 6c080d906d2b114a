// Multi-stage recipes: a `stages:` list of recipes run in order, a stage's output feeding later stages
// as the input `$<stage name>`. A LoRA fusion is a stage too (`method: passthrough` with `loras:`).
//
//   stages:
//     - {name: styles, inputs: {base: base.safetensors, a: a.safetensors, b: b.safetensors}, method: ties, base: base,
//        parameters: {weight: {a: 0.5, b: 0.5}, density: 0.5}}
//     - {name: fast, inputs: {m: $styles}, method: passthrough, loras: [{path: lcm-lora.safetensors, scale: 1.0}]}
//   output: merged.safetensors
//
// Intermediate outputs go beside the final output as hidden temporary files and are removed at the end;
// the final output's metadata holds the whole recipe.

import Foundation
import Yams

public struct StagedRecipe {
    public let path: String
    public let text: String
    let stageNodes: [(name: String, node: Node)]
    public let output: String?
    let folder: URL?

    public var isMultiStage: Bool { !stageNodes.isEmpty }

    public init(contentsOf url: URL) throws {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw MergingError.recipe(path: url.path, message: "cannot be read: \(error.localizedDescription)")
        }
        try self.init(yaml: text, path: url.path, relativeTo: url.deletingLastPathComponent())
    }

    public init(yaml text: String, path: String, relativeTo folder: URL?) throws {
        self.path = path
        self.text = text
        self.folder = folder
        func fail(_ m: String) -> MergingError { .recipe(path: path, message: m) }
        guard let root = (try? Yams.compose(yaml: text))??.mapping else { throw fail("the recipe must be a YAML mapping") }
        guard let list = root["stages"] else {
            stageNodes = []
            output = nil
            return
        }
        for key in root.keys.compactMap(\.string) where !["stages", "output", "evolve"].contains(key) {
            throw fail("'\(key)' belongs inside a stage when the recipe has stages")
        }
        guard let items = list.sequence, !items.isEmpty else { throw fail("'stages' must be a non-empty list") }
        var seen = Set<String>()
        stageNodes = try items.enumerated().map { index, node in
            guard let name = node.mapping?["name"]?.string else { throw fail("stages[\(index)] needs a 'name'") }
            guard seen.insert(name).inserted else { throw fail("two stages are named '\(name)'") }
            return (name, node)
        }
        output = root["output"]?.string.map { p in folder.map { p.hasPrefix("/") ? p : $0.appendingPathComponent(p).path } ?? p }
    }

    /// Runs every stage; returns the files of the final output.
    public func run(output override: String?, progress: (String, MergeProgress) -> Void) throws -> [URL] {
        guard let final = override ?? output else { throw MergingError.recipe(path: path, message: "no output: set 'output:' or pass --output") }
        let finalURL = URL(fileURLWithPath: final)
        var produced: [String: String] = [:]
        var temporaries: [String] = []
        defer { for t in temporaries { try? FileManager.default.removeItem(atPath: t) } }
        var written: [URL] = []
        for (index, (name, node)) in stageNodes.enumerated() {
            guard var mapping = node.mapping else { throw MergingError.recipe(path: path, message: "stage '\(name)' must be a mapping") }
            if var inputs = mapping["inputs"]?.mapping {
                for (key, value) in inputs {
                    guard let reference = value.string, reference.hasPrefix("$") else { continue }
                    guard let produced = produced[String(reference.dropFirst())] else {
                        throw MergingError.recipe(path: path, message: "stage '\(name)': \(reference) is not an earlier stage")
                    }
                    inputs[key] = Node(produced)
                }
                mapping["inputs"] = .mapping(inputs)
            }
            let last = index == stageNodes.count - 1
            let stageText = try Yams.serialize(node: .mapping(mapping), allowUnicode: true)
            let recipe = try Recipe(yaml: stageText, path: "\(path) [stage \(name)]", relativeTo: folder)
            var target: String
            if last {
                target = final
            } else if let own = recipe.output {
                target = own
            } else {
                let folderInput = recipe.inputs.contains { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: $0.path, isDirectory: &d) && d.boolValue }
                target = finalURL.deletingLastPathComponent().appendingPathComponent(".\(finalURL.lastPathComponent).\(name).stage\(folderInput ? "" : ".safetensors")").path
                temporaries.append(target)
            }
            var stageRecipe = recipe
            if last { stageRecipe.text = text }   // the final output's metadata holds the whole recipe
            let plan = try MergeEngine.plan(stageRecipe, outputPath: target)
            written = try MergeEngine.run(plan, to: target) { progress(name, $0) }
            produced[name] = target
        }
        return written
    }
}
