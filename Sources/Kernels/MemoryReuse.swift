// Large buffers and their reuse. A UNet step or a VAE decode allocates and frees the same large
// buffers (activations of 5-200 MB, im2col and Winograd workspaces) layer after layer. Fresh
// anonymous memory is zero-filled by the kernel page by page on first touch: at SDXL 1024x1024
// that page clearing took a fifth of a step. `BufferPool` keeps freed blocks of 1 MiB and more,
// grouped in size classes (each at most 1/8 above the request), and hands them to the next request
// of the same class, so the steady state of a network runs without page faults. Blocks are mapped
// directly (page aligned, transparent huge pages requested from 2 MiB up) and unmapped when the
// pool lets them go. The pool holds at most `BufferPool.shared.limitBytes` of unused blocks
// (JPGEN_BUFFER_POOL_MB, default 256; 0 turns reuse off), evicting the oldest first, which bounds
// what reuse adds to a run's peak resident size. 256 against 128 (AVX-512 Xeon, 2026-12-05): SD1.5
// UNet step 3.62 -> 3.38 s (peak RSS 3706 -> 3831 MB), SDXL 26.4 -> 23.6 s (10736 -> 10878 MB), SD VAE
// decode 5.31 -> 5.06 s (1123 -> 1256 MB); diffusers' peaks on the same runs: 3936-3997, 10898-11045,
// 1564-1568 MB.

import Foundation
#if os(Linux)
import Glibc
#endif

public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool(
        limitBytes: (Int(ProcessInfo.processInfo.environment["JPGEN_BUFFER_POOL_MB"] ?? "") ?? 256) << 20)

    /// Requests below this go to malloc.
    public static let minimumBytes = 1 << 20

    /// Most bytes of unused blocks kept.
    public let limitBytes: Int
    private let lock = NSLock()
    private var idle: [Int: [UnsafeMutableRawPointer]] = [:]    // size class -> unused blocks
    private var order: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []   // oldest first
    private var idleBytes = 0

    init(limitBytes: Int) { self.limitBytes = max(0, limitBytes) }

    /// The block size serving a request of `bytes` (>= minimumBytes): rounded up to a multiple of
    /// an eighth of the request's power of two, so requests within 1/8 share blocks.
    static func sizeClass(_ bytes: Int) -> Int {
        let power = Int.bitWidth - 1 - bytes.leadingZeroBitCount    // floor(log2(bytes))
        let step = Swift.max(4096, 1 << Swift.max(0, power - 3))
        return (bytes + step - 1) / step * step
    }

    /// A block of at least `bytes`, 64-byte aligned (page aligned when pooled). Its contents are
    /// undefined. Give it back with `release(_:bytes:)` and the same `bytes`.
    public func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        guard bytes >= Self.minimumBytes else {
            return UnsafeMutableRawPointer.allocate(byteCount: Swift.max(bytes, 1), alignment: 64)
        }
        let size = Self.sizeClass(bytes)
        lock.lock()
        if var blocks = idle[size], let block = blocks.popLast() {
            idle[size] = blocks.isEmpty ? nil : blocks
            if let index = order.firstIndex(where: { $0.pointer == block }) { order.remove(at: index) }
            idleBytes -= size
            lock.unlock()
            return block
        }
        lock.unlock()
        return Self.map(size)
    }

    /// Returns a block from `allocate(bytes:)`: kept for reuse while the pool has room, else unmapped.
    public func release(_ block: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= Self.minimumBytes else { block.deallocate(); return }
        let size = Self.sizeClass(bytes)
        guard size <= limitBytes else { Self.unmap(block, size); return }
        var evicted: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []
        lock.lock()
        while idleBytes + size > limitBytes, !order.isEmpty {
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
