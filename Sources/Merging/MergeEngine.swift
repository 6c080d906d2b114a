// The streaming merge: inputs stay memory-mapped, and each output tensor is read from every input,
// merged, converted and written before the next is touched, so resident memory stays near
// (inputs + 1) x the largest tensor whatever the model's size. Everything is checked before anything
// is written; the output goes to a temporary file (or folder) renamed into place at the end, and
// embeds the recipe and the sha256 of every input in its `__metadata__`.

import Foundation
import Kernels
import SafeTensors

public struct MergeProgress {
    public var tensorsDone: Int
    public var tensorsTotal: Int
    public var bytesRead: Int
    public var seconds: Double
}

public struct MergePlan {
    public struct Item {
        public let name: String
        public let shape: [Int]
        public let component: String
        /// Input to copy the tensor from (components set to `copy`, or non-float tensors); nil: merge.
        public let copyFrom: String?
        public let floating: Bool
    }
    public let items: [Item]
    public let recipe: Recipe
    public let checkpoints: [String: Checkpoint]
    public let outputIsFolder: Bool
    /// LoRA modules to fuse, by the tensor they change.
    public let loras: [String: [(module: LoRAModule, scale: Float)]]
}

public enum MergeEngine {
    /// Opens the inputs and checks them against each other; throws before anything is written.
    public static func plan(_ recipe: Recipe, outputPath: String?) throws -> MergePlan {
        var checkpoints: [String: Checkpoint] = [:]
        for (name, path) in recipe.inputs {
            if path.hasSuffix(".ckpt") || path.hasSuffix(".pt") || path.hasSuffix(".pth") || path.hasSuffix(".bin") {
                throw MergingError.input(name: name, path: path, message: "pickle checkpoints are never unpickled (it runs code); convert it to .safetensors first")
            }
            checkpoints[name] = try Checkpoint(name: name, path: path)
        }
        let folders = Set(checkpoints.values.map(\.isFolder))
        guard folders.count == 1 else {
            throw MergingError.mismatch(["inputs mix single files and diffusers folders: \(recipe.inputs.map { "\($0.name): \(checkpoints[$0.name]!.isFolder ? "folder" : "file")" }.joined(separator: ", "))"])
        }
        if let outputPath {
            let out = URL(fileURLWithPath: outputPath).standardizedFileURL.path
            for (name, path) in recipe.inputs {
                let input = URL(fileURLWithPath: path).standardizedFileURL.path
                if out == input || out.hasPrefix(input + "/") || input.hasPrefix(out + "/") {
                    throw MergingError.output(path: outputPath, message: "the output would overwrite input '\(name)'")
                }
            }
        }
        let reference = checkpoints[recipe.base ?? recipe.inputs[0].name]!
        var problems: [String] = []
        var items: [MergePlan.Item] = []
        for name in reference.order {
            let entry = reference.entries[name]!
            let component = entry.component
            let policy = recipe.components[component] ?? .merge
            if policy == .omit { continue }
            let floating = [.F16, .BF16, .F32, .F64].contains(entry.info.dtype)
            if case .copy(let source) = policy {
                guard let other = checkpoints[source]!.entries[name] else {
                    problems.append("\(name): missing from '\(source)', which the recipe copies \(component) from")
                    continue
                }
                items.append(.init(name: name, shape: other.info.shape, component: component, copyFrom: source, floating: floating))
                continue
            }
            for (inputName, _) in recipe.inputs where inputName != reference.name {
                guard let other = checkpoints[inputName]!.entries[name] else {
                    problems.append("\(name) \(entry.info.shape): missing from '\(inputName)'")
                    continue
                }
                if other.info.shape != entry.info.shape {
                    problems.append("\(name): \(entry.info.shape) in '\(reference.name)' but \(other.info.shape) in '\(inputName)'")
                }
            }
            items.append(.init(name: name, shape: entry.info.shape, component: component,
                               copyFrom: floating ? nil : reference.name, floating: floating))
        }
        for (inputName, _) in recipe.inputs where inputName != reference.name {
            for name in checkpoints[inputName]!.order where reference.entries[name] == nil {
                let component = checkpoints[inputName]!.entries[name]!.component
                if recipe.components[component] == .omit { continue }
                problems.append("\(name): in '\(inputName)' but not in '\(reference.name)'")
            }
        }
        if !problems.isEmpty {
            throw MergingError.mismatch(Array(problems.prefix(10)) + (problems.count > 10 ? ["... and \(problems.count - 10) more"] : []))
        }
        var loras: [String: [(module: LoRAModule, scale: Float)]] = [:]
        for (path, scale) in recipe.loras {
            for module in try LoRA.modules(file: URL(fileURLWithPath: path), modelNames: items.map(\.name)) {
                loras[module.target, default: []].append((module, scale))
            }
        }
        return MergePlan(items: items, recipe: recipe, checkpoints: checkpoints,
                         outputIsFolder: reference.isFolder && !(outputPath ?? "").hasSuffix(".safetensors"), loras: loras)
    }

    /// The merged Float32 values of one planned tensor.
    public static func merged(_ item: MergePlan.Item, plan: MergePlan) throws -> [Float] {
        var values = try mergedBeforeLoRA(item, plan: plan)
        for (module, scale) in plan.loras[item.name] ?? [] {
            try LoRA.fuse(module, scale: scale, into: &values, shape: item.shape)
        }
        return values
    }

    static func mergedBeforeLoRA(_ item: MergePlan.Item, plan: MergePlan) throws -> [Float] {
        let recipe = plan.recipe
        if let source = item.copyFrom { return try plan.checkpoints[source]!.floats(item.name) }
        if recipe.method == .passthrough { return try plan.checkpoints[recipe.inputs[0].name]!.floats(item.name) }
        let inputs = try recipe.inputs.map { try plan.checkpoints[$0.name]!.floats(item.name) }
        var out = [Float](repeating: 0, count: inputs[0].count)
        func param(_ p: String, _ input: String, _ fallback: Double) throws -> Float {
            Float(try recipe.parameter(p, input: input, tensor: item.name, fallback: fallback))
        }
        let names = recipe.inputs.map(\.name)
        try withBuffers(inputs) { buffers in
            try out.withUnsafeMutableBufferPointer { dst in
                switch recipe.method {
                case .linear:
                    let weights = try names.map { try param("weight", $0, 1.0 / Double(names.count)) }
                    mergeLinear(buffers, weights: weights, normalize: try param("normalize", names[0], 1) != 0, into: dst)
                case .addDifference:
                    let base = names.firstIndex(of: recipe.base!)!
                    let others = names.indices.filter { $0 != base }
                    mergeAddDifference(a: buffers[others[0]], b: buffers[others[1]], c: buffers[base],
                                       alpha: try param("alpha", names[others[1]], 1), into: dst)
                case .slerp:
                    let base = names.firstIndex(of: recipe.base!)!, other = 1 - base
                    mergeSlerp(a: buffers[base], b: buffers[other], t: try param("t", names[other], 0.5),
                               rows: item.shape.first ?? 1, into: dst)
                case .passthrough:
                    break
                case .taskArithmetic, .ties, .dareLinear, .dareTies:
                    let base = names.firstIndex(of: recipe.base!)!
                    let others = names.indices.filter { $0 != base }
                    let method = recipe.method
                    let rescale = DARERescale(rawValue: recipe.word("rescale", fallback: "density")) ?? .density
                    let options = TaskVectorOptions(
                        weights: try others.map { try param("weight", names[$0], 1) },
                        densities: try others.map { try param("density", names[$0], 1) },
                        sparsify: method == .ties ? .magnitude : (method == .taskArithmetic ? .none : .random),
                        consensus: method == .ties || method == .dareTies,
                        normalize: try param("normalize", names[0], method == .ties ? 1 : 0) != 0,
                        lambda: try param("lambda", names[0], 1), rescale: rescale,
                        seed: recipe.seed ^ fnv1a(item.name))
                    mergeTaskVectors(base: buffers[base], models: others.map { buffers[$0] }, options: options, into: dst)
                }
            }
        }
        return out
    }

    /// Writes the merge; returns the files written.
    @discardableResult
    public static func run(_ plan: MergePlan, to outputPath: String,
                           progress: (MergeProgress) -> Void = { _ in }) throws -> [URL] {
        let started = Date()
        let recipe = plan.recipe
        var metadata = ["format": "pt", "jpgen_recipe": recipe.text]
        // Input hashes, computed on a background thread while the tensors are merged; the header gets
        // fixed-length placeholders that are patched with the digests before the files are renamed.
        let allFiles = recipe.inputs.flatMap { input in plan.checkpoints[input.name]!.files.map { (input.name, $0) } }
        let placeholders = allFiles.indices.map { i -> String in
            let tag = "pending\(i)"
            return tag + String(repeating: "z", count: 64 - tag.count)
        }
        let hashing = InputHashing(files: allFiles.map(\.1))
        var hashes: [String: [String: String]] = [:]
        for (name, path) in recipe.inputs {
            let digest = allFiles.indices.filter { allFiles[$0].0 == name }.map { placeholders[$0] }.joined(separator: ",")
            hashes[name] = ["path": path, "sha256": digest]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        metadata["jpgen_inputs"] = String(decoding: try encoder.encode(hashes), as: UTF8.self)

        // Group the tensors by output file.
        let output = URL(fileURLWithPath: outputPath)
        var groups: [(url: URL, items: [MergePlan.Item], stored: (String) -> String)] = []
        if plan.outputIsFolder {
            let reference = plan.checkpoints[recipe.base ?? recipe.inputs[0].name]!
            for component in Array(Set(plan.items.map(\.component))).sorted() {
                let fileName = reference.componentFiles[component] ?? "diffusion_pytorch_model.safetensors"
                let prefix = component + "/"
                groups.append((output.appendingPathComponent(component).appendingPathComponent(fileName),
                               plan.items.filter { $0.component == component }, { String($0.dropFirst(prefix.count)) }))
            }
        } else {
            groups.append((output, plan.items, { $0 }))
        }
        // Folder output: build it beside the destination, then rename.
        let staging = plan.outputIsFolder
            ? output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).\(UUID().uuidString).tmp") : output
        if plan.outputIsFolder {
            let reference = plan.checkpoints[recipe.base ?? recipe.inputs[0].name]!
            do {
                try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
                try copyNonWeightFiles(from: reference.url, to: staging, omit: Set(recipe.components.filter { $0.value == .omit }.map(\.key)))
                try copyComponentConfigs(recipe, plan: plan, reference: reference.url, to: staging)
            } catch {
                try? FileManager.default.removeItem(at: staging)
                throw MergingError.output(path: outputPath, message: "cannot create the output folder: \(error.localizedDescription)")
            }
        }
        var written: [URL] = []
        var done = 0, bytes = 0
        do {
            for group in groups {
                let target = plan.outputIsFolder
                    ? staging.appendingPathComponent(group.url.deletingLastPathComponent().lastPathComponent).appendingPathComponent(group.url.lastPathComponent)
                    : group.url
                let entries = group.items.map { item -> (name: String, dtype: SafeTensorsDType, shape: [Int]) in
                    let stored = plan.checkpoints[item.copyFrom ?? recipe.inputs[0].name]!.entries[item.name]!.info.dtype
                    return (group.stored(item.name), item.floating ? recipe.dtype : stored, item.shape)
                }
                let writer = try SafeTensorsWriter(url: target, entries: entries, metadata: metadata)
                // The next floating tensor is merged on another thread while this one is converted and
                // written (writing into the page cache is a third of a linear merge's time).
                var ahead: MergeAhead?
                for (index, item) in group.items.enumerated() {
                    if item.floating {
                        let current = ahead?.name == item.name ? ahead! : MergeAhead(item, plan: plan)
                        ahead = group.items[(index + 1)...].first(where: \.floating).map { MergeAhead($0, plan: plan) }
                        let values = try current.values()
                        try values.withUnsafeBufferPointer { try writer.write(group.stored(item.name), float32: $0) }
                        bytes += values.count * 4 * recipe.inputs.count
                    } else {
                        let source = plan.checkpoints[item.copyFrom!]!
                        let entry = source.entries[item.name]!
                        try writer.write(group.stored(item.name), raw: try entry.file.rawBytes(entry.storedName))
                    }
                    done += 1
                    progress(MergeProgress(tensorsDone: done, tensorsTotal: plan.items.count, bytesRead: bytes,
                                           seconds: Date().timeIntervalSince(started)))
                }
                let digests = try hashing.wait()
                for (placeholder, digest) in zip(placeholders, digests) {
                    try writer.patchMetadata(placeholder: placeholder, value: digest)
                }
                try writer.finish()
                written.append(group.url)
            }
            if plan.outputIsFolder {
                if FileManager.default.fileExists(atPath: output.path) {
                    // Swap folders by renames (replaceItemAt fails on Linux for a non-empty folder): the old
                    // output moves aside, the new one takes its name, then the old one is removed.
                    let aside = output.deletingLastPathComponent()
                        .appendingPathComponent(".\(output.lastPathComponent).\(UUID().uuidString).old")
                    try FileManager.default.moveItem(at: output, to: aside)
                    do { try FileManager.default.moveItem(at: staging, to: output) } catch {
                        try? FileManager.default.moveItem(at: aside, to: output)
                        throw error
                    }
                    try? FileManager.default.removeItem(at: aside)
                } else {
                    try FileManager.default.moveItem(at: staging, to: output)
                }
            }
        } catch {
            if plan.outputIsFolder { try? FileManager.default.removeItem(at: staging) }
            throw error
        }
        return written
    }

    /// One tensor merged on a background thread; `values()` waits for it.
    final class MergeAhead: @unchecked Sendable {
        let name: String
        private var result: Result<[Float], Error>?
        private let finished = DispatchSemaphore(value: 0)

        init(_ item: MergePlan.Item, plan: MergePlan) {
            name = item.name
            DispatchQueue.global().async {
                self.result = Result { try MergeEngine.merged(item, plan: plan) }
                self.finished.signal()
            }
        }

        deinit { finished.wait() }   // an abandoned merge (an error elsewhere) still ends before its plan goes

        func values() throws -> [Float] {
            finished.wait()
            finished.signal()
            return try result!.get()
        }
    }

    /// Merges in memory (no file written): every planned tensor as Float32, keyed by its name.
    public static func mergeInMemory(_ plan: MergePlan) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for item in plan.items where item.floating {
            out[item.name] = Tensor(shape: item.shape, data: try merged(item, plan: plan))
        }
        return out
    }
}

/// Configs, tokenizer files and the like of a diffusers folder (everything but weights).
func copyNonWeightFiles(from source: URL, to destination: URL, omit: Set<String>) throws {
    let fm = FileManager.default
    for item in try fm.contentsOfDirectory(atPath: source.path) where !omit.contains(item) {
        let from = source.appendingPathComponent(item), to = destination.appendingPathComponent(item)
        var isDirectory: ObjCBool = false
        _ = fm.fileExists(atPath: from.path, isDirectory: &isDirectory)
        if isDirectory.boolValue {
            try fm.createDirectory(at: to, withIntermediateDirectories: true)
            try copyNonWeightFiles(from: from, to: to, omit: [])
        } else if !item.hasSuffix(".safetensors") && !item.hasSuffix(".bin") && !item.hasSuffix(".ckpt") {
            try fm.copyItem(at: from, to: to)
        }
    }
}

/// The inputs that a folder output's component folders take their configs and other non-weight files
/// from, where it is not the reference input: a component the recipe copies (`text_encoder: copy b`)
/// comes whole from that input, and so does its tokenizer (`tokenizer` goes with `text_encoder`,
/// `tokenizer_2` with `text_encoder_2`) unless the recipe names the tokenizer itself. Components
/// without weights can be named too: `scheduler: copy b` takes b's scheduler (and so its sampling
/// defaults).
func componentConfigSources(_ recipe: Recipe) -> [String: String] {
    var sources: [String: String] = [:]
    for (component, policy) in recipe.components {
        if case .copy(let input) = policy { sources[component] = input }
    }
    for (encoder, tokenizer) in [("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")]
    where recipe.components[tokenizer] == nil {
        if let input = sources[encoder] { sources[tokenizer] = input }
    }
    return sources
}

/// Replaces the folders of `componentConfigSources` in the staged output by the named inputs' (their
/// weights are written separately) and takes their entries in model_index.json from those inputs'.
func copyComponentConfigs(_ recipe: Recipe, plan: MergePlan, reference: URL, to staging: URL) throws {
    let fm = FileManager.default
    let indexURL = staging.appendingPathComponent("model_index.json")
    var index = (try? Data(contentsOf: indexURL)).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    var indexChanged = false
    for (component, input) in componentConfigSources(recipe).sorted(by: { $0.key < $1.key }) {
        guard let source = plan.checkpoints[input]?.url, source.standardizedFileURL != reference.standardizedFileURL else { continue }
        let from = source.appendingPathComponent(component)
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: from.path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
        let to = staging.appendingPathComponent(component)
        try? fm.removeItem(at: to)
        try fm.createDirectory(at: to, withIntermediateDirectories: true)
        try copyNonWeightFiles(from: from, to: to, omit: [])
        if index != nil,
           let data = try? Data(contentsOf: source.appendingPathComponent("model_index.json")),
           let other = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let entry = other[component] {
            index![component] = entry
            indexChanged = true
        }
    }
    if let index, indexChanged {
        let data = try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: indexURL)
    }
}

/// Calls `body` with buffer views of the arrays.
func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
    var views: [UnsafeBufferPointer<Float>] = []
    func recurse(_ i: Int) throws -> R {
        if i == arrays.count { return try body(views) }
        return try arrays[i].withUnsafeBufferPointer { p in
            views.append(p)
            defer { views.removeLast() }
            return try recurse(i + 1)
        }
    }
    return try recurse(0)
}

/// FNV-1a of a string: a stable per-tensor seed for DARE's masks.
func fnv1a(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
    }
    return h
}

/// SHA-256 of the input files on a background thread (one file after another: the merge has the cores).
final class InputHashing: @unchecked Sendable {
    private var digests: [String] = []
    private var failure: Error?
    private let done = DispatchSemaphore(value: 0)

    init(files: [URL]) {
        Thread.detachNewThread { [self] in
            do { digests = try files.map { try SHA256Hasher.file($0) } } catch { failure = error }
            done.signal()
        }
    }

    /// The digests in file order (blocks until they are known; may be called more than once).
    func wait() throws -> [String] {
        done.wait()
        done.signal()
        if let failure { throw failure }
        return digests
    }
}
