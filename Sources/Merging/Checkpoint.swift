// A merge input: a single-file checkpoint (original LDM names) or a diffusers folder (unet/, vae/,
// text_encoder/, ...), memory-mapped, its tensors listed by name with the component each belongs to.
// Folder tensors are named "<component>/<name>" so that one name space covers every component.

import Foundation
import SafeTensors
#if canImport(Glibc)
import Glibc
#endif

public final class Checkpoint {
    public struct Entry {
        public let file: SafeTensorsFile
        public let info: SafeTensorsInfo
        public let component: String
        /// The tensor's name inside its file.
        public let storedName: String
    }

    public let name: String
    public let url: URL
    public let isFolder: Bool
    public private(set) var entries: [String: Entry] = [:]
    public private(set) var order: [String] = []
    /// For folders: the weight file name used by each component (to write the merged folder alike).
    public private(set) var componentFiles: [String: String] = [:]

    public init(name: String, path: String) throws {
        self.name = name
        url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw MergingError.input(name: name, path: path, message: "no such file or folder")
        }
        isFolder = isDirectory.boolValue
        if isFolder {
            let components = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
            for component in components {
                let dir = url.appendingPathComponent(component)
                var sub: ObjCBool = false
                guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &sub), sub.boolValue else { continue }
                let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
                    .filter { $0.hasSuffix(".safetensors") && !$0.contains(".fp16.") && !$0.contains(".bf16.") }.sorted()
                if files.isEmpty {
                    if try FileManager.default.contentsOfDirectory(atPath: dir.path).contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".ckpt") }) {
                        throw MergingError.input(name: name, path: dir.path, message: "holds pickle weights (.bin/.ckpt); convert them to .safetensors first")
                    }
                    continue
                }
                if files.count == 1 { componentFiles[component] = files[0] }
                for file in files { try add(url: dir.appendingPathComponent(file), component: component, prefix: component + "/") }
            }
            guard !entries.isEmpty else {
                throw MergingError.input(name: name, path: path, message: "no component folder holds .safetensors weights")
            }
        } else {
            try add(url: url, component: nil, prefix: "")
        }
    }

    private func add(url: URL, component: String?, prefix: String) throws {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(url: url) } catch {
            throw MergingError.input(name: name, path: url.path, message: error.localizedDescription)
        }
        for info in file.infos {
            let full = prefix + info.name
            guard entries[full] == nil else {
                throw MergingError.input(name: name, path: url.path, message: "the tensor \(full) appears twice")
            }
            entries[full] = Entry(file: file, info: info, component: component ?? singleFileComponent(info.name), storedName: info.name)
            order.append(full)
        }
    }

    /// Float32 values of a tensor, whatever its stored dtype.
    public func floats(_ name: String) throws -> [Float] {
        guard let entry = entries[name] else {
            throw MergingError.input(name: self.name, path: url.path, message: "no tensor \(name)")
        }
        let raw = try entry.file.rawBytes(entry.storedName)
        // Every element is written by the conversion, so the array is not zero-filled first.
        let count = entry.info.shape.reduce(1, *)
        let out = try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try convertToFloat32(raw, dtype: entry.info.dtype, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
            initialized = count
        }
        releaseMappedPages(raw)
        return out
    }

    /// Every weight file of this input (for hashing).
    public var files: [URL] {
        var seen = Set<String>(), urls: [URL] = []
        for name in order {
            let u = entries[name]!.file.url
            if seen.insert(u.path).inserted { urls.append(u) }
        }
        return urls
    }
}

/// The component of a tensor in a single-file checkpoint (original LDM / SGM names).
public func singleFileComponent(_ name: String) -> String {
    if name.hasPrefix("model.diffusion_model.") { return "unet" }
    if name.hasPrefix("first_stage_model.") { return "vae" }
    if name.hasPrefix("cond_stage_model.") || name.hasPrefix("conditioner.embedders.0.") { return "text_encoder" }
    if name.hasPrefix("conditioner.embedders.1.") { return "text_encoder_2" }
    return "other"
}
