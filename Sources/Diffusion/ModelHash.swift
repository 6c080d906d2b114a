// The model hash written into PNGs, as the AUTOMATIC1111 web UI's "Model hash": the first 10 hex
// digits of the SHA-256 of the weights file (for a diffusers folder, the UNet's). Hashing gigabytes
// takes seconds, so hashes are cached by path, size and modification time in
// $XDG_CACHE_HOME/jpgen/model-hashes.json (~/.cache/jpgen/ by default), as the web UI caches them.

import Foundation
import Merging

public enum ModelHash {
    /// The short hash of a model's identity files (the first 10 hex digits of SHA-256 over their bytes in order).
    public static func short(files: [URL]) throws -> String {
        String(try full(files: files).prefix(10))
    }

    public static func full(files: [URL]) throws -> String {
        let key = try files.map { url -> String in
            let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
            let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
            let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(url.standardizedFileURL.path)|\(size)|\(mtime)"
        }.joined(separator: ";")
        var cache = readCache()
        if let hit = cache[key] { return hit }
        var hasher = SHA256Hasher()
        for url in files {
            guard let handle = FileHandle(forReadingAtPath: url.path) else {
                throw PipelineError.unsupportedModel(path: url.path, reason: "cannot be read")
            }
            defer { try? handle.close() }
            // read(upToCount:) throws on an I/O error (readData(ofLength:) would trap).
            do {
                while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
                    chunk.withUnsafeBytes { hasher.update($0) }
                }
            } catch {
                throw PipelineError.unsupportedModel(path: url.path, reason: "cannot be read: \(error.localizedDescription)")
            }
        }
        let digest = hasher.finalize()
        cache[key] = digest
        writeCache(cache)
        return digest
    }

    static var cacheURL: URL {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(".cache")
        return base.appendingPathComponent("jpgen/model-hashes.json")
    }

    static func readCache() -> [String: String] {
        guard let data = try? Data(contentsOf: cacheURL),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: String] else { return [:] }
        return object
    }

    /// Best effort: an unwritable cache only means hashing again next time. Written to a temporary file, then renamed.
    static func writeCache(_ cache: [String: String]) {
        let url = cacheURL
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard let data = try? JSONSerialization.data(withJSONObject: cache, options: [.sortedKeys]) else { return }
        let temp = url.deletingLastPathComponent().appendingPathComponent(".model-hashes.\(getpid()).tmp")
        guard (try? data.write(to: temp)) != nil else { return }
        if rename(temp.path, url.path) != 0 { try? FileManager.default.removeItem(at: temp) }
    }
}
