// Threading: how Kernels spreads work over cores.
//
// Two pools do the work and must not oversubscribe the cores together:
// - OpenBLAS's own threads run every cblas_sgemm. Kernels call sgemm only from the calling thread,
//   never from inside `parallelFor`, so OpenBLAS always has the cores to itself.
// - `parallelFor` (Dispatch's concurrentPerform) runs the memory-bound work: norms, softmax,
//   activations, elementwise arithmetic, im2col copies. It splits `count` items into at most
//   `kernelThreadCount` contiguous chunks.
// `setThreadCount(n)` sets both to n.
//
// OpenBLAS's idle threads spin (sched_yield in a loop) for 2^28 cycles, about 0.1 s, after each
// product before they sleep. Between products Kernels' own workers (attention, Winograd
// transforms, norms) use every core, and a spinning BLAS thread took a share of the CPU from them
// (a tenth of an SD1.5 UNet step on 2 cores went to scheduling). Kernels shortens the spin to 2^18
// cycles (~0.1 ms: back-to-back products still find the threads awake) by setting
// OPENBLAS_THREAD_TIMEOUT=18 unless the user set it. OpenBLAS reads that variable when it loads, so
// its thread pool is restarted once, before the first product, through openblas_read_env,
// blas_thread_shutdown_ and blas_thread_init (looked up at run time; skipped where the OpenBLAS
// build lacks them, e.g. a serial or OpenMP one).

import COpenBLAS
import Dispatch
import Foundation
#if os(Linux)
import Glibc
#endif

/// True once the OpenBLAS thread pool runs with the short idle spin (see the header).
let openBLASIdleSpinShortened: Bool = {
    #if os(Linux)
    guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil else { return false }
    guard let readEnv = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "openblas_read_env"),   // RTLD_DEFAULT
          let shutdown = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "blas_thread_shutdown_"),
          let initialize = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "blas_thread_init") else { return false }
    typealias Call = @convention(c) () -> Int32
    setenv("OPENBLAS_THREAD_TIMEOUT", "18", 0)
    _ = unsafeBitCast(readEnv, to: Call.self)()
    _ = unsafeBitCast(shutdown, to: Call.self)()
    _ = unsafeBitCast(initialize, to: Call.self)()
    unsetenv("OPENBLAS_THREAD_TIMEOUT")   // child processes configure themselves the same way
    return true
    #else
    return false
    #endif
}()

/// Sets OpenBLAS up as Kernels does before its first product (the short idle spin), for callers
/// of cblas functions outside Kernels.
public func prepareOpenBLAS() {
    _ = openBLASIdleSpinShortened
}

/// Upper bound on the threads Kernels uses (Dispatch chunks and OpenBLAS threads). It starts at
/// OpenBLAS's own count, so OPENBLAS_NUM_THREADS limits both pools unless setThreadCount is called.
nonisolated(unsafe) private var threadLimit: Int = max(1, min(Int(openblas_get_num_threads()),
                                                              ProcessInfo.processInfo.activeProcessorCount))

/// The number of threads Kernels currently spreads work over.
public var kernelThreadCount: Int { threadLimit }

/// Sets the threads used by `parallelFor` and by OpenBLAS (at least 1).
public func setThreadCount(_ n: Int) {
    threadLimit = max(1, n)
    openblas_set_num_threads(Int32(threadLimit))
}

/// Calls `body(i)` for every i in 0..<count, spread over up to `kernelThreadCount` threads in
/// contiguous chunks. `body` must be safe to run concurrently for distinct indices.
/// Never call cblas_sgemm from `body` (OpenBLAS runs its own threads).
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    let chunks = min(count, threadLimit)
    if chunks == 1 {
        for i in 0..<count { body(i) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        let lo = chunk * count / chunks
        let hi = (chunk + 1) * count / chunks
        for i in lo..<hi { body(i) }
    }
}

/// Calls `body(range)` on contiguous sub-ranges covering 0..<count, in parallel when `count` is at
/// least `grain` per thread (so that small jobs stay on the calling thread).
public func parallelRanges(_ count: Int, grain: Int = 1 << 14, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let chunks = max(1, min(threadLimit, count / max(grain, 1)))
    if chunks == 1 {
        body(0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        body((chunk * count / chunks)..<((chunk + 1) * count / chunks))
    }
}

/// Hands out work to worker threads as they come free: indices 0, 1, 2, ... below a limit, each once
/// (`claim(below:)`), or shrinking ranges of 0 ..< total (`claimRange`). A worker that finishes early,
/// or whose core the host takes away for a while, leaves the rest to the others.
final class WorkCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    func claim(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < limit else { return nil }
        next += 1
        return next - 1
    }

    /// The next range of 0 ..< total: 1 / `share` of what is left (guided scheduling: large ranges
    /// first, then smaller ones, so that the workers finish close together), at least `minimum` and at
    /// most `maximum` (unless `minimum` is larger).
    func claimRange(total: Int, share: Int, minimum: Int, maximum: Int = .max) -> Range<Int>? {
        lock.lock()
        defer { lock.unlock() }
        guard next < total else { return nil }
        let size = Swift.min(total - next, Swift.max(minimum, Swift.min(maximum, (total - next) / Swift.max(share, 1))))
        next += size
        return (next - size)..<next
    }
}

/// Above 0 while `parallelWorkersWithSerialBLAS` runs: every product is then single-threaded.
/// Changed only by the thread that starts the workers, before and after they run.
nonisolated(unsafe) var serialBLASDepth = 0

/// Runs `body(worker)` for worker = 0..<workers on separate threads (workers <= kernelThreadCount),
/// with OpenBLAS limited to one thread meanwhile, so that each worker may call sgemm on its own
/// data without oversubscribing the cores. OpenBLAS's thread count is restored afterwards.
public func parallelWorkersWithSerialBLAS(_ workers: Int, _ body: (Int) -> Void) {
    let count = max(1, min(workers, threadLimit))
    if count == 1 {
        body(0)
        return
    }
    openblas_set_num_threads(1)
    serialBLASDepth += 1
    defer {
        serialBLASDepth -= 1
        openblas_set_num_threads(Int32(threadLimit))
    }
    DispatchQueue.concurrentPerform(iterations: count) { body($0) }
}
