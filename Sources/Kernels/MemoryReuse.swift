// Large buffers and their reuse. A UNet step or a VAE decode allocates and frees the same large
// buffers (activations of 5-200 MB, im2col and Winograd workspaces) layer after layer. Fresh
// anonymous memory is zero-filled by the kernel page by page on first touch: at SDXL 1024x1024
// that page clearing took a fifth of a step. `BufferPool` keeps freed blocks of 1 MiB and more,
// grouped in size classes (each at most 1/8 above the request), and hands them to the next request
// of the same class, or, when that class has none idle, lends the smallest idle block of up to twice
// the class (its pages are resident already), so the steady state of a network runs with few page
// faults. Blocks are mapped directly (page aligned, transparent huge pages requested from 2 MiB up)
// and unmapped when the pool lets them go. The pool holds at most `BufferPool.shared.limitBytes` of
// unused blocks (by default 256 MiB or 1/8 of the process's resident size, whichever is more;
// JPGEN_BUFFER_POOL_MB fixes it, 0 turns reuse off), evicting the oldest first, which bounds what
// reuse adds to a run's peak resident size. 256 against 128 (AVX-512 Xeon, 2026-12-05): SD1.5
// UNet step 3.62 -> 3.38 s (peak RSS 3706 -> 3831 MB), SDXL 26.4 -> 23.6 s (10736 -> 10878 MB), SD VAE
// decode 5.31 -> 5.06 s (1123 -> 1256 MB); diffusers' peaks on the same runs: 3936-3997, 10898-11045,
// 1564-1568 MB. Lending larger blocks (2026-12-05, 23:20 UTC): fresh blocks mapped over a warm-up and two
// SDXL steps 3054 -> 476 MB, page clearing 4.5% -> 0.8% of a step (perf), peak RSS SDXL 10606 -> 10733
// MB, SD1.5 3717 -> 3643, SD VAE 1251 -> 1212 (a lent block's spare pages are ones the pool held
// anyway); lending up to 1.25x or 1.5x the class left 1793 or 1397 MB mapped.

import Foundation
#if os(Linux)
import Glibc
#endif

public final class BufferPool: @unchecked Sendable {
    public static let shared: BufferPool = {
        if let mb = Int(ProcessInfo.processInfo.environment["JPGEN_BUFFER_POOL_MB"] ?? "") {
            return BufferPool(limitBytes: mb << 20)
        }
        return BufferPool(limitBytes: 256 << 20, residentDivisor: 8)
    }()

    /// Requests below this go to malloc.
    public static let minimumBytes = 1 << 20

    /// Most bytes of unused blocks kept: the fixed limit, or 1/residentDivisor of the process's
    /// resident size when that is more (read when a block is mapped).
    public var limitBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return currentLimit
    }
    private let fixedLimit, residentDivisor: Int
    private var resident = 0
    private var currentLimit: Int { residentDivisor > 0 ? Swift.max(fixedLimit, resident / residentDivisor) : fixedLimit }
    private let lock = NSLock()
    private var idle: [Int: [UnsafeMutableRawPointer]] = [:]    // size class -> unused blocks
    private var order: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []   // oldest first
    private var idleBytes = 0
    private var lent: [UnsafeMutableRawPointer: Int] = [:]   // blocks handed out for a smaller class

    /// residentDivisor 0: the limit stays limitBytes. Otherwise the pool may also keep 1/residentDivisor
    /// of what the process holds, so that a large model, whose activations are large too, keeps
    /// enough of them. 256 MiB was a fifth of SDXL's 64x64 working set, and its blocks there were
    /// mapped afresh on every use (page clearing: 5% of a step at 1024x1024). With 1/24 (about 440
    /// MiB for SDXL's 10.4 GB; SD1.5 and the VAE stay at 256 MiB), three runs of each alternated: SDXL
    /// step 21.2-21.6 -> 21.0-21.3 s (best of 2-3 steps), peak RSS 10460 -> 10625 MB (diffusers: 10904).
    /// 1/8 (about 1.3 GiB for SDXL; SD1.5 455 MiB; the VAEs stay at 256 MiB), 2026-12-06: SDXL page
    /// clearing 0.4-1.1% -> 0.2% of a step (perf), peak RSS unchanged (10730-10734 MB: the pool's blocks
    /// are in use when the process peaks); SD1.5 peak 3644 MB either way.
    init(limitBytes: Int, residentDivisor: Int = 0) {
        fixedLimit = max(0, limitBytes)
        self.residentDivisor = max(0, residentDivisor)
    }

    /// The block size serving a request of `bytes` (>= minimumBytes): rounded up to a multiple of
    /// an eighth of the request's power of two, so requests within 1/8 share blocks.
    static func sizeClass(_ bytes: Int) -> Int {
        let power = Int.bitWidth - 1 - bytes.leadingZeroBitCount    // floor(log2(bytes))
        let step = Swift.max(4096, 1 << Swift.max(0, power - 3))
        return (bytes + step - 1) / step * step
    }

    /// A block of at least `bytes`, 64-byte aligned (page aligned when pooled): an idle block of the
    /// request's class, else the smallest idle one of up to twice the class, else a fresh one. Its
    /// contents are undefined. Give it back with `release(_:bytes:)` and the same `bytes`.
    public func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        guard bytes >= Self.minimumBytes else {
            return UnsafeMutableRawPointer.allocate(byteCount: Swift.max(bytes, 1), alignment: 64)
        }
        let size = Self.sizeClass(bytes)
        lock.lock()
        // The request's own class, else the smallest idle class up to twice it: a larger block's
        // pages are already resident, where a fresh block's would be cleared page by page.
        let larger = idle[size] == nil ? idle.keys.lazy.filter({ $0 > size && $0 <= 2 * size }).min() : nil
        let found = larger ?? size
        if var blocks = idle[found], let block = blocks.popLast() {
            idle[found] = blocks.isEmpty ? nil : blocks
            if let index = order.firstIndex(where: { $0.pointer == block }) { order.remove(at: index) }
            idleBytes -= found
            if found != size { lent[block] = found }
            lock.unlock()
            return block
        }
        lock.unlock()
        let block = Self.map(size)
        if residentDivisor > 0, let bytes = Self.residentBytes() {
            lock.lock()
            resident = bytes
            lock.unlock()
        }
        return block
    }

    /// Returns a block from `allocate(bytes:)`: kept for reuse while the pool has room, else unmapped.
    public func release(_ block: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= Self.minimumBytes else { block.deallocate(); return }
        var evicted: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []
        lock.lock()
        let size = lent.removeValue(forKey: block) ?? Self.sizeClass(bytes)
        let limit = currentLimit
        guard size <= limit else { lock.unlock(); Self.unmap(block, size); return }
        while idleBytes + size > limit, !order.isEmpty {
            let oldest = order.removeFirst()
            if var blocks = idle[oldest.bytes], let index = blocks.firstIndex(of: oldest.pointer) {
                blocks.remove(at: index)
                idle[oldest.bytes] = blocks.isEmpty ? nil : blocks
            }
            idleBytes -= oldest.bytes
            evicted.append(oldest)
        }
        idle[size, default: []].append(block)
        order.append((size, block))
        idleBytes += size
        lock.unlock()
        for old in evicted { Self.unmap(old.pointer, old.bytes) }
    }

    /// Unmaps every unused block (e.g. after a job, before measuring memory).
    public func drain() {
        lock.lock()
        let all = order
        idle = [:]
        order = []
        idleBytes = 0
        lock.unlock()
        for old in all { Self.unmap(old.pointer, old.bytes) }
    }

    /// Bytes of unused blocks the pool holds now.
    public var heldBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return idleBytes
    }

    /// The process's resident size (Linux: /proc/self/statm), nil where unknown.
    static func residentBytes() -> Int? {
        #if os(Linux)
        guard let file = fopen("/proc/self/statm", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 128)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        let fields = String(cString: line).split(separator: " ")   // size resident shared ... (pages)
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
    }

    private static func map(_ size: Int) -> UnsafeMutableRawPointer {
        #if os(Linux)
        guard let raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            fatalError("out of memory: could not map \(size >> 20) MiB")
        }
        if size >= 2 << 20 { _ = madvise(raw, size, 14) }   // MADV_HUGEPAGE
        return raw
        #else
        return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        #endif
    }

    private static func unmap(_ block: UnsafeMutableRawPointer, _ size: Int) {
        #if os(Linux)
        _ = munmap(block, size)
        #else
        block.deallocate()
        #endif
    }
}

/// A temporary float workspace from the pool, for kernels: `let w = Workspace(count: n); defer { w.release() }`.
struct Workspace {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        self.count = Swift.max(1, count)
        pointer = BufferPool.shared.allocate(bytes: self.count * MemoryLayout<Float>.stride)
            .bindMemory(to: Float.self, capacity: self.count)
    }

    func release() {
        BufferPool.shared.release(UnsafeMutableRawPointer(pointer), bytes: count * MemoryLayout<Float>.stride)
    }
}
