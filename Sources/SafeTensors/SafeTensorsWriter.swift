// SafeTensorsWriter: streams tensors into a new safetensors file, one at a time.
//
// The header is computed up front from the declared entries and written to a temporary file
// beside the destination; each tensor's bytes are then written at its offset (so a merge never
// holds more than one tensor), and `finish()` checks that every entry was written, fsyncs, and
// renames the temporary file onto the destination. A writer dropped without `finish()` removes
// its temporary file, so a failed run never leaves a partial checkpoint under the final name.
//
// The bytes match Python's `safetensors.torch.save_file` for the same tensors and metadata
// (safetensors/src/tensor.rs `prepare` and `serialize`): tensors laid out by dtype (the Rust
// enum order, descending) then name; header JSON in serde_json's compact form; `__metadata__`
// first; the header padded with spaces to a multiple of 8. Python writes metadata keys in hash
// order, so files with two or more metadata keys match only up to that order (we sort keys).
// An empty `metadata` writes no `__metadata__` (Python's `metadata=None`).

import Foundation
import Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class SafeTensorsWriter {
    public let url: URL
    /// Entries in file (layout) order.
    public let layout: [SafeTensorsInfo]
    /// Size of the finished file in bytes.
    public let fileSize: Int

    private let tempPath: String
    private var fd: Int32
    private let dataStart: Int
    private let index: [String: Int]
    private var written: [Bool]
    private var finished = false
    /// The header's JSON bytes as first written (for `patchMetadata`).
    private var headerJSON: [UInt8] = []

    public init(url: URL, entries: [(name: String, dtype: SafeTensorsDType, shape: [Int])],
                metadata: [String: String]) throws {
        self.url = url
        let path = url.path
        var seen = Set<String>()
        for e in entries {
            guard !e.name.isEmpty, e.name != "__metadata__" else { throw SafeTensorsError.invalidName(file: path, key: e.name) }
            guard seen.insert(e.name).inserted else { throw SafeTensorsError.duplicateEntry(file: path, key: e.name) }
            guard e.shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError.invalidEntry(file: path, key: e.name, reason: "negative dimension in \(e.shape)")
            }
        }
        // Layout: dtype rank descending, then name (Rust `String` order = UTF-8 byte order).
        let sorted = entries.sorted { a, b in
            if a.dtype.layoutRank != b.dtype.layoutRank { return a.dtype.layoutRank > b.dtype.layoutRank }
            return Array(a.name.utf8).lexicographicallyPrecedes(Array(b.name.utf8))
        }
        var offset = 0
        var layout: [SafeTensorsInfo] = []
        for e in sorted {
            let size = e.shape.reduce(1, *) * e.dtype.byteSize
            layout.append(SafeTensorsInfo(name: e.name, dtype: e.dtype, shape: e.shape, byteRange: offset..<(offset + size)))
            offset += size
        }
        self.layout = layout
        var header = safeTensorsHeaderBytes(layout, metadata: metadata)
        self.headerJSON = header
        var prefix = [UInt8](repeating: 0, count: 8)
        let n = UInt64(header.count)
        for i in 0..<8 { prefix[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }
        header.insert(contentsOf: prefix, at: 0)
        self.dataStart = header.count
        self.fileSize = header.count + offset
        var index: [String: Int] = [:]
        for (i, t) in layout.enumerated() { index[t.name] = i }
        self.index = index
        self.written = [Bool](repeating: false, count: layout.count)

        // Temporary file beside the destination (same filesystem, so rename is atomic).
        let dir = url.deletingLastPathComponent().path
        tempPath = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw SafeTensorsError.writeFailed(file: path, reason: "cannot create \(tempPath): \(String(cString: strerror(errno)))")
        }
        do {
            try header.withUnsafeBytes { try writeAll($0, at: 0) }
        } catch {
            close(fd)
            fd = -1
            unlink(tempPath)
            throw error
        }
    }

    deinit {
        if !finished {
            if fd >= 0 { close(fd) }
            unlink(tempPath)
        }
    }

    /// Writes a tensor given as Float32, converted to its declared dtype.
    public func write(_ name: String, float32 values: UnsafeBufferPointer<Float>) throws {
        let (i, info) = try entry(name)
        guard values.count == info.count else {
            throw SafeTensorsError.wrongElementCount(file: url.path, key: name, expected: info.count, actual: values.count)
        }
        if info.dtype == .F32 {
            try writeAll(UnsafeRawBufferPointer(values), at: dataStart + info.byteRange.lowerBound)
        } else {
            // Convert in bounded chunks so memory stays small for huge tensors.
            let chunk = 1 << 20
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * info.dtype.byteSize, alignment: 64)
            defer { buffer.deallocate() }
            var start = 0
            while start < values.count {
                let end = min(start + chunk, values.count)
                let out = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<((end - start) * info.dtype.byteSize)])
                try convertFromFloat32(UnsafeBufferPointer(rebasing: values[start..<end]), to: info.dtype, into: out)
                try writeAll(UnsafeRawBufferPointer(out), at: dataStart + info.byteRange.lowerBound + start * info.dtype.byteSize)
                start = end
            }
        }
        written[i] = true
    }

    /// Writes a tensor's bytes as stored (little-endian elements of its declared dtype).
    public func write(_ name: String, raw: UnsafeRawBufferPointer) throws {
        let (i, info) = try entry(name)
        guard raw.count == info.byteRange.count else {
            throw SafeTensorsError.wrongByteCount(file: url.path, key: name, expected: info.byteRange.count, actual: raw.count)
        }
        try writeAll(raw, at: dataStart + info.byteRange.lowerBound)
        written[i] = true
    }

    /// Replaces a placeholder in the header (e.g. a digest computed while the tensors were written)
    /// with a value of the same UTF-8 length, before `finish()`. The placeholder must occur exactly once.
    public func patchMetadata(placeholder: String, value: String) throws {
        let old = Array(placeholder.utf8), new = Array(value.utf8)
        guard old.count == new.count, !old.isEmpty else {
            throw SafeTensorsError.writeFailed(file: url.path, reason: "metadata patch of a different length")
        }
        var hits: [Int] = []
        if headerJSON.count >= old.count {
            for i in 0...(headerJSON.count - old.count) where headerJSON[i] == old[0] && Array(headerJSON[i..<(i + old.count)]) == old {
                hits.append(i)
            }
        }
        guard hits.count == 1 else {
            throw SafeTensorsError.writeFailed(file: url.path, reason: "metadata placeholder found \(hits.count) times")
        }
        headerJSON.replaceSubrange(hits[0]..<(hits[0] + old.count), with: new)
        try new.withUnsafeBytes { try writeAll($0, at: 8 + hits[0]) }
    }

    /// Checks every entry was written, fsyncs, and renames the temporary file onto `url`.
    public func finish() throws {
        guard !finished, fd >= 0 else { throw SafeTensorsError.writeFailed(file: url.path, reason: "writer already finished") }
        let missing = layout.indices.filter { !written[$0] }.map { layout[$0].name }
        guard missing.isEmpty else { throw SafeTensorsError.notWritten(file: url.path, keys: missing) }
        // Zero-size trailing tensors: make sure the file has its full length.
        if ftruncate(fd, off_t(fileSize)) != 0 || fsync(fd) != 0 {
            throw SafeTensorsError.writeFailed(file: url.path, reason: String(cString: strerror(errno)))
        }
        close(fd)
        fd = -1
        guard rename(tempPath, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tempPath)
            finished = true
            throw SafeTensorsError.writeFailed(file: url.path, reason: "rename failed: \(reason)")
        }
        finished = true
    }

    private func entry(_ name: String) throws -> (Int, SafeTensorsInfo) {
        guard !finished, fd >= 0 else { throw SafeTensorsError.writeFailed(file: url.path, reason: "writer already finished") }
        guard let i = index[name] else { throw SafeTensorsError.unknownEntry(file: url.path, key: name) }
        guard !written[i] else { throw SafeTensorsError.alreadyWritten(file: url.path, key: name) }
        return (i, layout[i])
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        guard var p = bytes.baseAddress else { return }
        var remaining = bytes.count
        var at = offset
        while remaining > 0 {
            let n = pwrite(fd, p, remaining, off_t(at))
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError.writeFailed(file: url.path, reason: String(cString: strerror(errno)))
            }
            p += n
            remaining -= n
            at += n
        }
    }
}

/// The JSON header (padded with spaces to a multiple of 8 bytes) for tensors in layout order.
func safeTensorsHeaderBytes(_ layout: [SafeTensorsInfo], metadata: [String: String]) -> [UInt8] {
    var out: [UInt8] = [UInt8(ascii: "{")]
    var first = true
    if !metadata.isEmpty {
        out.append(contentsOf: Array("\"__metadata__\":{".utf8))
        for (i, key) in metadata.keys.sorted().enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendJSONString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            appendJSONString(metadata[key]!, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        first = false
    }
    for t in layout {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        appendJSONString(t.name, to: &out)
        out.append(contentsOf: Array(":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[".utf8))
        out.append(contentsOf: Array(t.shape.map(String.init).joined(separator: ",").utf8))
        out.append(contentsOf: Array("],\"data_offsets\":[\(t.byteRange.lowerBound),\(t.byteRange.upperBound)]}".utf8))
    }
    out.append(UInt8(ascii: "}"))
    while out.count % 8 != 0 { out.append(0x20) }
    return out
}

/// Writes whole tensors in one call (small files: fixtures, demo models); every tensor is stored
/// as `dtype`. Streams through `SafeTensorsWriter`, so the bytes match Python's as above.
public func writeSafeTensors(_ tensors: [String: Tensor], to url: URL, dtype: SafeTensorsDType = .F32,
                             metadata: [String: String] = [:]) throws {
    let names = tensors.keys.sorted()
    let writer = try SafeTensorsWriter(
        url: url, entries: names.map { (name: $0, dtype: dtype, shape: tensors[$0]!.shape) }, metadata: metadata)
    for name in names {
        try tensors[name]!.withUnsafeBufferPointer { try writer.write(name, float32: $0) }
    }
    try writer.finish()
}
