// Shared pieces of the kernel benchmarks: timing, seeded inputs, JSON lines, common options.

import ArgumentParser
import COpenBLAS
import Dispatch
import Foundation
import Kernels

/// Options every kernel benchmark takes.
struct KernelBenchOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Timed repetitions per measurement (the best and the median are reported).")
    var repetitions: Int = 3

    @Option(name: .shortAndLong, help: "Threads for OpenBLAS and Kernels' parallel loops (default: all cores).")
    var threads: Int?

    @Option(help: "Size of the square cblas_sgemm product every run measures as the reference (n^3).")
    var referenceSize: Int = 2048

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard referenceSize >= 1 else { throw ValidationError("--reference-size must be positive, got \(referenceSize)") }
    }

    /// Applies --threads and returns the thread count in effect.
    func applyThreads() -> Int {
        if let threads { setThreadCount(threads) } else { setThreadCount(kernelThreadCount) }
        return kernelThreadCount
    }
}

/// Uniform [-1, 1) tensor from a SplitMix64 stream (benchmarks need no particular distribution).
func benchTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed
    return Tensor(shape: shape) { buffer in
        for i in buffer.indices {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            buffer[i] = Float(z >> 40) / Float(1 << 23) - 1
        }
    }
}

/// Operands of a raw cblas_sgemm (row-major, no transposes): C[M, N] = A[M, K] B[K, N].
final class SgemmProblem {
    let m, n, k: Int
    let a, b, c: UnsafeMutablePointer<Float>

    init(m: Int, n: Int, k: Int) {
        (self.m, self.n, self.k) = (m, n, k)
        a = .allocate(capacity: m * k); b = .allocate(capacity: k * n); c = .allocate(capacity: m * n)
        benchTensor([m, k], seed: 1).withUnsafeBufferPointer { a.initialize(from: $0.baseAddress!, count: m * k) }
        benchTensor([k, n], seed: 2).withUnsafeBufferPointer { b.initialize(from: $0.baseAddress!, count: k * n) }
        c.initialize(repeating: 0, count: m * n)
        prepareOpenBLAS()
    }

    deinit { a.deallocate(); b.deallocate(); c.deallocate() }

    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    /// OpenBLAS's cblas_sgemm itself (Kernels' `sgemm` may run its own AVX-512 product instead).
    func run() {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k),
                    b, Int32(n), 0, c, Int32(n))
    }
}

/// Best and median seconds of each body, run round-robin `repetitions` times after one warm-up
/// each, so that every figure of one line sees the same load on a shared machine.
/// `cpu` is the least process CPU time (all threads) of one run: on a shared machine it shows the
/// work done, where wall-clock time also counts waiting for the cores.
func timeInterleaved(_ repetitions: Int, _ bodies: [() -> Void]) -> [(best: Double, median: Double, cpu: Double)] {
    for body in bodies { body() }
    var times = [[Double]](repeating: [], count: bodies.count)
    var cpu = [Double](repeating: .infinity, count: bodies.count)
    for _ in 0..<repetitions {
        for (i, body) in bodies.enumerated() {
            let cpuStart = processCPUSeconds()
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            cpu[i] = min(cpu[i], processCPUSeconds() - cpuStart)
        }
    }
    return times.enumerated().map { i, t in let s = t.sorted(); return (s[0], s[s.count / 2], cpu[i]) }
}

/// CPU time used by this process so far, all threads together.
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// One JSON object on one line, keys in the given order.
func printJSONLine(_ fields: [(String, Any)]) {
    let body = fields.map { key, value -> String in
        let v: String
        switch value {
        case let d as Double: v = d.isFinite ? String(format: "%.6g", d) : "null"
        case let i as Int: v = String(i)
        case let b as Bool: v = b ? "true" : "false"
        case let a as [Int]: v = "[" + a.map(String.init).joined(separator: ",") + "]"
        default: v = "\"" + "\(value)".replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return "\"\(key)\":\(v)"
    }
    print("{" + body.joined(separator: ",") + "}")
    fflush(stdout)
}

/// Parses "A:B" or "AxBxC" style integer lists ("64x64" -> [64, 64]).
func parseInts(_ text: String, separators: Set<Character>) -> [Int]? {
    let parts = text.split(whereSeparator: { separators.contains($0) }).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    return parts.contains(where: { $0 == nil }) || parts.isEmpty ? nil : parts.map { $0! }
}
