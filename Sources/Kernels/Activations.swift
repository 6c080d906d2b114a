// Activation functions, elementwise, spread over cores.
// References: torch.nn.functional.gelu (approximate="none" / "tanh"), torch.nn.SiLU,
// transformers.activations.QuickGELUActivation (x * sigmoid(1.702 x), CLIP).
// exp, erf and tanh are FastMath's vectorisable approximations (about 1e-7 absolute error).

import CKernels
import Foundation

/// GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)).
public func gelu(_ x: Tensor) -> Tensor { unaryMap(x, grain: 1 << 12, GeluOp()) }
struct GeluOp: UnaryElementOp {
    @inline(__always) func callAsFunction(_ v: Float) -> Float { 0.5 * v * (1 + fastErf(v * 0.70710678118654752)) }
}

/// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
public func geluTanh(_ x: Tensor) -> Tensor { unaryMap(x, grain: 1 << 12, GeluTanhOp()) }
struct GeluTanhOp: UnaryElementOp {
    @inline(__always) func callAsFunction(_ v: Float) -> Float {
        0.5 * v * (1 + fastTanh(0.79788456080286536 * (v + 0.044715 * v * v * v)))
    }
}

/// Logistic sigmoid 1 / (1 + exp(-x)) (fastExp clamps, so large |x| gives 0 or 1, never NaN).
public func sigmoid(_ x: Tensor) -> Tensor { unaryMap(x, grain: 1 << 12, SigmoidOp()) }
struct SigmoidOp: UnaryElementOp { @inline(__always) func callAsFunction(_ v: Float) -> Float { fastSigmoid(v) } }

/// SiLU (swish): x * sigmoid(x).
public func silu(_ x: Tensor) -> Tensor { unaryMap(x, grain: 1 << 12, SiluOp()) }
struct SiluOp: UnaryElementOp { @inline(__always) func callAsFunction(_ v: Float) -> Float { v * fastSigmoid(v) } }

/// QuickGELU (CLIP): x * sigmoid(1.702 x).
public func quickGelu(_ x: Tensor) -> Tensor { unaryMap(x, grain: 1 << 12, QuickGeluOp()) }
struct QuickGeluOp: UnaryElementOp { @inline(__always) func callAsFunction(_ v: Float) -> Float { v * fastSigmoid(1.702 * v) } }

/// ReLU: max(x, 0).
public func relu(_ x: Tensor) -> Tensor { unaryMap(x, ClampOp(lo: 0, hi: .infinity)) }

/// Elementwise tanh.
public func tanh(_ x: Tensor) -> Tensor { unaryMap(x, grain: 1 << 12, TanhOp()) }
struct TanhOp: UnaryElementOp { @inline(__always) func callAsFunction(_ v: Float) -> Float { fastTanh(v) } }

/// Elementwise exp.
public func exp(_ x: Tensor) -> Tensor { unaryMap(x, grain: 1 << 12, ExpOp()) }
struct ExpOp: UnaryElementOp { @inline(__always) func callAsFunction(_ v: Float) -> Float { fastExp(v) } }

/// GEGLU (diffusers.models.activations.GEGLU): x: [..., 2F] -> a * gelu(gate), a, gate = halves.
public func geglu(_ x: Tensor) -> Tensor {
    let twoF = x.shape[x.rank - 1]
    precondition(twoF % 2 == 0, "geglu needs an even last dimension, got \(x.shape)")
    let f = twoF / 2, rows = x.count / max(twoF, 1)
    let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [f])
    let src = x.base, dst = out.fresh
    parallelRanges(rows, grain: max(1, 4096 / max(f, 1))) { r in
        // CKernels' AVX-512 loop where the CPU has it (this one, built for baseline x86-64, runs 4 lanes)
        if jpgen_geglu_rows(src + r.lowerBound * twoF, r.count, f, dst + r.lowerBound * f) != 0 { return }
        for row in r {
            let a = src + row * twoF, g = a + f, o = dst + row * f
            for j in 0..<f { let v = g[j]; o[j] = a[j] * 0.5 * v * (1 + fastErf(v * 0.70710678118654752)) }
        }
    }
    return out
}

// In-place forms: no new buffer (for large activations a fresh buffer costs page faults).

/// x = op(x) elementwise, spread over cores.
public func mapInPlace<Op: UnaryElementOp>(_ x: inout Tensor, grain: Int = 1 << 12, _ op: Op) {
    x.withUnsafeMutableBufferPointer { buffer in
        guard let p = buffer.baseAddress else { return }
        parallelRanges(buffer.count, grain: grain) { r in for i in r { p[i] = op(p[i]) } }
    }
}

public func geluInPlace(_ x: inout Tensor) { mapInPlace(&x, GeluOp()) }
public func geluTanhInPlace(_ x: inout Tensor) { mapInPlace(&x, GeluTanhOp()) }
public func siluInPlace(_ x: inout Tensor) { mapInPlace(&x, SiluOp()) }
public func quickGeluInPlace(_ x: inout Tensor) { mapInPlace(&x, QuickGeluOp()) }
public func sigmoidInPlace(_ x: inout Tensor) { mapInPlace(&x, SigmoidOp()) }
