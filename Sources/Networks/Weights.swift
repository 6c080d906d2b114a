// WeightStore: the name -> tensor source every network loads from, with strict accounting.
//
// A store reads one or more safetensors files (a transformers/diffusers folder, a sharded folder
// with `*.safetensors.index.json`, or one single-file checkpoint). Tensors are memory-mapped and
// converted to Float32 only when taken, whatever dtype they are stored in (f32/f16/bf16/...).
// Every name a model takes is recorded; `finish()` throws on the names nobody took, so a renamed
// or misspelt key can never be silently ignored. Views (`scoped(prefix:)`, `renamed(_:)`,
// `remapped(_:)`) re-key the same files, e.g. the `cond_stage_model.transformer.` part of an SD1
// checkpoint, with their own accounting; a view may also transpose or slice rows of a tensor
// (OpenCLIP's fused `in_proj_weight`).
//
// Configs: `loadConfig(_:from:)` decodes a config.json into a Codable struct whose CodingKeys are
// the exact JSON names; a missing required field becomes `NetworksError.missingConfigField`.

import Foundation
import Kernels
import SafeTensors

public final class WeightStore {
    /// How a stored tensor becomes the tensor a view hands out.
    public enum Transform: Equatable {
        case identity
        /// A rank-2 tensor [R, C] handed out as [C, R] (OpenCLIP's `text_projection`).
        case transposed
        /// Rows `range` of dimension 0 (a q/k/v third of a fused `in_proj_weight` or `in_proj_bias`).
        case rows(Range<Int>)
    }

    /// A tensor's source: `file` indexes `files`, or is `inMemory` for `memory[key]`.
    struct Entry {
        let file: Int
        let key: String
        let transform: Transform
    }

    static let inMemory = -1

    let files: [SafeTensorsFile]
    let memory: [String: Tensor]
    let entries: [String: Entry]
    /// Where the weights come from, for messages (a folder, a file, or a view of one).
    public let origin: String
    private var taken = Set<String>()

    init(files: [SafeTensorsFile], memory: [String: Tensor] = [:], entries: [String: Entry], origin: String) {
        self.files = files
        self.memory = memory
        self.entries = entries
        self.origin = origin
    }

    /// A store over tensors already in memory (random-weight benchmarks, tests, converted weights).
    public convenience init(tensors: [String: Tensor], origin: String = "<memory>") {
        var entries: [String: Entry] = [:]
        for name in tensors.keys { entries[name] = Entry(file: Self.inMemory, key: name, transform: .identity) }
        self.init(files: [], memory: tensors, entries: entries, origin: origin)
    }

    // MARK: Opening

    /// A store over the given safetensors files (shards of one model); a name in two files is an error.
    public convenience init(files urls: [URL]) throws {
        var files: [SafeTensorsFile] = []
        var entries: [String: Entry] = [:]
        for url in urls {
            try Self.refusePickle(url)
            let file = try Self.open(url)
            for name in file.names {
                if let other = entries[name] {
                    throw NetworksError.invalidIndex(
                        file: url.path,
                        reason: "tensor '\(name)' also in \(files[other.file].url.lastPathComponent)")
                }
                entries[name] = Entry(file: files.count, key: name, transform: .identity)
            }
            files.append(file)
        }
        self.init(files: files, entries: entries,
                  origin: urls.count == 1 ? urls[0].path : (urls.first?.deletingLastPathComponent().path ?? "-"))
    }

    /// A store over one single-file checkpoint (`*.safetensors`).
    public convenience init(file url: URL) throws {
        try self.init(files: [url])
    }

    /// A store over a model folder: `model.safetensors`, `diffusion_pytorch_model.safetensors`,
    /// their `*.safetensors.index.json` sharded form, or the folder's only `.safetensors` file.
    /// `variant` selects e.g. `model.fp16.safetensors`.
    public convenience init(folder: URL, variant: String? = nil) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw NetworksError.noWeights(path: folder.path, reason: "not a folder")
        }
        let listing = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
        let stems = ["model", "diffusion_pytorch_model"]
        let suffix = variant.map { ".\($0).safetensors" } ?? ".safetensors"
        for stem in stems where listing.contains(stem + suffix) {
            try self.init(files: [folder.appendingPathComponent(stem + suffix)])
            return
        }
        for stem in stems where listing.contains(stem + suffix + ".index.json") {
            let index = folder.appendingPathComponent(stem + suffix + ".index.json")
            try self.init(index: index)
            return
        }
        let plain = listing.filter { $0.hasSuffix(suffix) }
        let indexes = listing.filter { $0.hasSuffix(suffix + ".index.json") }
        if indexes.count == 1 {
            try self.init(index: folder.appendingPathComponent(indexes[0]))
        } else if plain.count == 1 {
            try self.init(files: [folder.appendingPathComponent(plain[0])])
        } else if plain.isEmpty {
            if let pickle = listing.first(where: { Self.isPickleName($0) }) {
                throw NetworksError.pickleRefused(file: folder.appendingPathComponent(pickle).path)
            }
            throw NetworksError.noWeights(path: folder.path, reason: "no *\(suffix) file")
        } else {
            throw NetworksError.noWeights(
                path: folder.path,
                reason: "several safetensors files and no index: \(plain.joined(separator: ", "))")
        }
    }

    /// A store over the shards named by a `*.safetensors.index.json` (`{"weight_map": {name: file}}`).
    public convenience init(index url: URL) throws {
        struct Index: Decodable { let weight_map: [String: String] }
        let parsed: Index
        do {
            parsed = try JSONDecoder().decode(Index.self, from: Data(contentsOf: url))
        } catch {
            throw NetworksError.invalidIndex(file: url.path, reason: "\(error)")
        }
        let folder = url.deletingLastPathComponent()
        let shardNames = Array(Set(parsed.weight_map.values)).sorted()
        var files: [SafeTensorsFile] = []
        var fileIndex: [String: Int] = [:]
        for shard in shardNames {
            guard !shard.contains("/"), !shard.hasPrefix(".") else {
                throw NetworksError.invalidIndex(file: url.path, reason: "shard name '\(shard)' is not a plain file name")
            }
            let shardURL = folder.appendingPathComponent(shard)
            guard FileManager.default.fileExists(atPath: shardURL.path) else {
                throw NetworksError.invalidIndex(file: url.path, reason: "shard '\(shard)' does not exist")
            }
            try Self.refusePickle(shardURL)
            fileIndex[shard] = files.count
            files.append(try Self.open(shardURL))
        }
        var entries: [String: Entry] = [:]
        for (name, shard) in parsed.weight_map {
            let f = fileIndex[shard]!
            guard files[f].info(name) != nil else {
                throw NetworksError.invalidIndex(file: url.path, reason: "tensor '\(name)' is not in shard '\(shard)'")
            }
            entries[name] = Entry(file: f, key: name, transform: .identity)
        }
        for file in files {
            for name in file.names where entries[name] == nil {
                throw NetworksError.invalidIndex(
                    file: url.path, reason: "tensor '\(name)' in shard '\(file.url.lastPathComponent)' is not in the index")
            }
        }
        self.init(files: files, entries: entries, origin: folder.path)
    }

    static func isPickleName(_ name: String) -> Bool {
        let ext = (name as NSString).pathExtension.lowercased()
        return ["ckpt", "bin", "pt", "pth", "pkl"].contains(ext)
    }

    static func refusePickle(_ url: URL) throws {
        if isPickleName(url.lastPathComponent) { throw NetworksError.pickleRefused(file: url.path) }
    }

    static func open(_ url: URL) throws -> SafeTensorsFile {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw NetworksError.noWeights(path: url.path, reason: "no such file")
        }
        do {
            return try SafeTensorsFile(url: url)
        } catch {
            throw NetworksError.readFailed(file: url.path, reason: error.localizedDescription)
        }
    }

    // MARK: Looking

    /// Every name this store (or view) holds, sorted.
    public var names: [String] { entries.keys.sorted() }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The shape a name would be handed out with (after the view's transform), without loading it.
    public func shape(of name: String) -> [Int]? {
        guard let entry = entries[name], let stored = storedShape(entry) else { return nil }
        switch entry.transform {
        case .identity: return stored
        case .transposed: return stored.count == 2 ? [stored[1], stored[0]] : stored
        case .rows(let range): return stored.isEmpty ? [] : [range.count] + stored.dropFirst()
        }
    }

    func storedShape(_ entry: Entry) -> [Int]? {
        entry.file == Self.inMemory ? memory[entry.key]?.shape : files[entry.file].info(entry.key)?.shape
    }

    /// The stored dtype of a name (before conversion to Float32).
    public func dtype(of name: String) -> SafeTensorsDType? {
        guard let entry = entries[name] else { return nil }
        if entry.file == Self.inMemory { return .F32 }
        return files[entry.file].info(entry.key)?.dtype
    }

    /// The names not taken so far, sorted.
    public var unusedNames: [String] { entries.keys.filter { !taken.contains($0) }.sorted() }

    // MARK: Taking

    /// The tensor `name` as Float32, checked to have `shape`; records the name as used.
    public func take(_ name: String, shape expected: [Int]) throws -> Tensor {
        guard let actual = shape(of: name) else { throw NetworksError.missingKey(name) }
        guard actual == expected else {
            throw NetworksError.shapeMismatch(key: name, expected: expected, actual: actual)
        }
        return try load(name)
    }

    /// The tensor `name` as Float32 whatever its shape (the caller checks); records the name as used.
    public func take(_ name: String) throws -> Tensor {
        guard entries[name] != nil else { throw NetworksError.missingKey(name) }
        return try load(name)
    }

    /// The tensor `name` if present (shape-checked), nil if absent.
    public func optional(_ name: String, shape expected: [Int]) throws -> Tensor? {
        guard contains(name) else { return nil }
        return try take(name, shape: expected)
    }

    /// Marks names as used without loading them (buffers the model recomputes, e.g. `position_ids`).
    public func ignore(where predicate: (String) -> Bool) {
        for name in entries.keys where predicate(name) { taken.insert(name) }
    }

    /// Throws `unusedKeys` if some names were never taken, unless `allowUnused`. The error names
    /// the keys as stored in the file (with a view's prefix), so the user can find them.
    public func finish(allowUnused: Bool = false) throws {
        let unused = Set(unusedNames.map { entries[$0]!.key }).sorted()
        if !unused.isEmpty && !allowUnused { throw NetworksError.unusedKeys(unused) }
    }


    private func load(_ name: String) throws -> Tensor {
        let entry = entries[name]!
        let stored: Tensor
        if entry.file == Self.inMemory {
            stored = memory[entry.key]!
        } else {
            let file = files[entry.file]
            do {
                stored = try file.tensor(entry.key)
                file.releasePages(entry.key)
            } catch {
                throw NetworksError.readFailed(file: file.url.path, reason: "\(entry.key): \(error.localizedDescription)")
            }
        }
        taken.insert(name)
        switch entry.transform {
        case .identity:
            return stored
        case .transposed:
            guard stored.rank == 2 else { return stored }
            return transpose2D(stored)
        case .rows(let range):
            return sliceRows(stored, range)
        }
    }

    // MARK: Views

    /// A view whose names are rewritten by `rule`: each stored (name, shape) becomes zero or more
    /// (new name, transform) pairs. Transforms compose only with `.identity` entries.
    public func remapped(_ rule: (_ name: String, _ shape: [Int]) -> [(String, Transform)]) throws -> WeightStore {
        var mapped: [String: Entry] = [:]
        for name in entries.keys.sorted() {
            let entry = entries[name]!
            for (newName, transform) in rule(name, shape(of: name) ?? []) {
                if mapped[newName] != nil {
                    throw NetworksError.invalidIndex(file: origin, reason: "two tensors map to the name '\(newName)'")
                }
                let combined: Transform
                switch (entry.transform, transform) {
                case (.identity, let t), (let t, .identity): combined = t
                default:
                    throw NetworksError.invalidIndex(file: origin, reason: "cannot stack transforms on '\(name)'")
                }
                mapped[newName] = Entry(file: entry.file, key: entry.key, transform: combined)
            }
        }
        return WeightStore(files: files, memory: memory, entries: mapped, origin: origin)
    }

    /// A view of the names beginning with `prefix`, with the prefix removed.
    public func scoped(prefix: String) -> WeightStore {
        var mapped: [String: Entry] = [:]
        for (name, entry) in entries where name.hasPrefix(prefix) {
            mapped[String(name.dropFirst(prefix.count))] = entry
        }
        return WeightStore(files: files, memory: memory, entries: mapped, origin: origin + " [\(prefix)*]")
    }

    /// A view with every name passed through `rule` (nil drops the name).
    public func renamed(_ rule: (String) -> String?) throws -> WeightStore {
        try remapped { name, _ in rule(name).map { [($0, Transform.identity)] } ?? [] }
    }

    /// The safetensors files behind the store.
    public var fileURLs: [URL] { files.map { $0.url } }

    /// True if some name begins with `prefix`.
    public func hasPrefix(_ prefix: String) -> Bool { entries.keys.contains { $0.hasPrefix(prefix) } }

    /// A view in which the named tensors are replaced by the given ones (LoRA-fused weights); every
    /// replaced name must exist with the same shape.
    public func overlaid(_ tensors: [String: Tensor]) throws -> WeightStore {
        var mapped = entries
        var mem = memory
        for (name, tensor) in tensors {
            guard let stored = shape(of: name) else { throw NetworksError.missingKey("\(name) (in \(origin))") }
            guard stored == tensor.shape else {
                throw NetworksError.shapeMismatch(key: name, expected: stored, actual: tensor.shape)
            }
            let key = "overlay:" + name
            mem[key] = tensor
            mapped[name] = Entry(file: Self.inMemory, key: key, transform: .identity)
        }
        return WeightStore(files: files, memory: mem, entries: mapped, origin: origin)
    }
}

// x: [R, C] -> [C, R]
func transpose2D(_ x: Tensor) -> Tensor {
    let rows = x.shape[0], cols = x.shape[1]
    return x.withUnsafeBufferPointer { src in
        Tensor(shape: [cols, rows]) { dst in
            for r in 0..<rows {
                for c in 0..<cols { dst[c * rows + r] = src[r * cols + c] }
            }
        }
    }
}

// x: [R, ...] -> [range.count, ...]
func sliceRows(_ x: Tensor, _ range: Range<Int>) -> Tensor {
    let rowSize = x.rank == 0 ? 1 : x.count / max(x.shape[0], 1)
    var shape = x.shape
    if !shape.isEmpty { shape[0] = range.count }
    return x.withUnsafeBufferPointer { src in
        Tensor(shape: shape) { dst in
            for i in 0..<(range.count * rowSize) { dst[i] = src[range.lowerBound * rowSize + i] }
        }
    }
}

// MARK: - Configs

/// Decodes a config.json into `T` (a Codable struct whose CodingKeys are the JSON names).
/// A missing required field throws `missingConfigField(file:field:)`, naming the field.
public func loadConfig<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
    let data: Data
    do {
        data = try Data(contentsOf: url)
    } catch {
        throw NetworksError.invalidConfig(file: url.path, reason: "cannot read: \(error.localizedDescription)")
    }
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch DecodingError.keyNotFound(let key, let context) {
        let path = (context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
        throw NetworksError.missingConfigField(file: url.path, field: path)
    } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw NetworksError.invalidConfig(file: url.path, reason: "field '\(path)': \(context.debugDescription)")
    } catch DecodingError.dataCorrupted(let context) {
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw NetworksError.invalidConfig(
            file: url.path, reason: path.isEmpty ? context.debugDescription : "field '\(path)': \(context.debugDescription)")
    } catch let error as NetworksError {
        throw error
    } catch {
        throw NetworksError.invalidConfig(file: url.path, reason: "\(error)")
    }
}

extension KeyedDecodingContainer {
    /// The value for `key`, or `fallback` when the field is absent or null (config defaults).
    public func value<T: Decodable>(_ key: Key, default fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }
}
