// SafeTensorsFile: a memory-mapped, fully validated safetensors file.
//
// The whole file is mapped read-only; `parseSafeTensorsHeader` validates the header before any
// tensor can be touched, so a truncated or inconsistent file fails in `init`, never halfway
// through a model load. Tensors are converted to Float32 on request (`tensor(_:)`) or handed out
// as raw bytes (`rawBytes(_:)`, valid while this object lives).

import Foundation
import Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class SafeTensorsFile {
    public let url: URL
    public let metadata: [String: String]
    /// Tensor names in header order.
    public let names: [String]
    public let header: SafeTensorsHeader

    private let base: UnsafeRawPointer?
    private let mappedSize: Int
    private let index: [String: Int]

    public init(url: URL) throws {
        self.url = url
        let path = url.path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw SafeTensorsError.cannotOpen(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError.cannotOpen(file: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.cannotOpen(file: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        var mapped: UnsafeRawPointer? = nil
        if size > 0 {
            let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
            guard let p, p != MAP_FAILED else {
                throw SafeTensorsError.cannotOpen(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
            }
            mapped = UnsafeRawPointer(p)
        }
        let bytes = UnsafeRawBufferPointer(start: mapped, count: size)
        let header: SafeTensorsHeader
        do {
            header = try parseSafeTensorsHeader(bytes, file: path)
        } catch {
            if let mapped { munmap(UnsafeMutableRawPointer(mutating: mapped), size) }
            throw error
        }
        self.base = mapped
        self.mappedSize = size
        self.header = header
        self.metadata = header.metadata
        self.names = header.tensors.map(\.name)
        var index: [String: Int] = [:]
        for (i, t) in header.tensors.enumerated() { index[t.name] = i }
        self.index = index
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), mappedSize) }
    }

    /// All tensors' metadata, in header order.
    public var infos: [SafeTensorsInfo] { header.tensors }

    public func info(_ name: String) -> SafeTensorsInfo? {
        index[name].map { header.tensors[$0] }
    }

    /// The stored bytes of a tensor (valid while this object lives; may be unaligned).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let info = info(name) else { throw SafeTensorsError.missingTensor(file: url.path, key: name) }
        guard let base, info.byteRange.count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + header.dataStart + info.byteRange.lowerBound, count: info.byteRange.count)
    }

    /// Drops the mapped pages of a tensor already read from this process's resident set (they stay
    /// in the page cache), so loading or streaming a model holds its converted tensors, not the file too.
    public func releasePages(_ name: String) {
        guard let raw = try? rawBytes(name) else { return }
        releaseMappedPages(raw)
    }

    /// A tensor converted to Float32, in its stored shape (a scalar has shape []).
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = info(name) else { throw SafeTensorsError.missingTensor(file: url.path, key: name) }
        let raw = try rawBytes(name)
        return try Tensor(shape: info.shape) { dst in
            try convertToFloat32(raw, dtype: info.dtype, into: dst)
        }
    }
}

/// madvise(DONTNEED) over the whole pages inside `raw` (a read-only private mapping: nothing is lost).
public func releaseMappedPages(_ raw: UnsafeRawBufferPointer) {
    guard let base = raw.baseAddress, raw.count > 0 else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (Int(bitPattern: base) + page - 1) / page * page
    let end = (Int(bitPattern: base) + raw.count) / page * page
    if end > start { madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
}
