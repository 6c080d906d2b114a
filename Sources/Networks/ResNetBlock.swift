// Convolution-network pieces of the diffusers UNet and VAE: Conv2d and GroupNorm weights,
// ResnetBlock2D (diffusers/models/resnet.py), Downsample2D and Upsample2D.

import Foundation
import Kernels

/// A `torch.nn.Conv2d`: weight [O, C, k, k], optional bias [O].
public struct Conv2dWeights {
    public var weight: Tensor { didSet { winograd = WinogradFilterCache() } }
    public var bias: Tensor?
    public var stride: Int
    public var padding: Int
    /// The weight's Winograd filters once used, when Kernels' `winogradKeepsFilters` is on
    /// (3x3 convolutions; shared by copies, emptied when `weight` is set).
    public private(set) var winograd = WinogradFilterCache()

    public init(_ store: WeightStore, _ prefix: String, in c: Int, out o: Int, kernel k: Int,
                stride: Int = 1, padding: Int? = nil, bias: Bool = true) throws {
        weight = try store.take(prefix + ".weight", shape: [o, c, k, k])
        self.bias = bias ? try store.take(prefix + ".bias", shape: [o]) : nil
        self.stride = stride
        self.padding = padding ?? k / 2
    }

    // x: [N, C, H, W] -> [N, O, H', W']
    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, winograd: winograd)
    }
}

/// A `torch.nn.GroupNorm` with affine weights.
public struct GroupNormWeights {
    public var weight: Tensor
    public var bias: Tensor
    public var groups: Int
    public var eps: Float

    public init(_ store: WeightStore, _ prefix: String, channels: Int, groups: Int, eps: Float) throws {
        weight = try store.take(prefix + ".weight", shape: [channels])
        bias = try store.take(prefix + ".bias", shape: [channels])
        self.groups = groups
        self.eps = eps
    }

    // x: [N, C, ...] -> same shape
    public func callAsFunction(_ x: Tensor) -> Tensor { groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps) }
    /// silu(groupNorm(x)), fused.
    public func silu(_ x: Tensor) -> Tensor { groupNormSiLU(x, groups: groups, weight: weight, bias: bias, eps: eps) }
}

/// diffusers ResnetBlock2D (time_embedding_norm "default", silu, no up/down inside):
/// h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb)); h = conv2(silu(norm2(h)));
/// out = (shortcut(x) + h) / output_scale_factor.
public struct ResnetBlock2D {
    public var norm1: GroupNormWeights
    public var conv1: Conv2dWeights
    public var timeEmbProj: LinearWeights?
    public var norm2: GroupNormWeights
    public var conv2: Conv2dWeights
    public var shortcut: Conv2dWeights?
    public var outputScaleFactor: Float

    /// `tembChannels` nil for the VAE's blocks (no time embedding).
    public init(_ store: WeightStore, _ prefix: String, in c: Int, out o: Int, tembChannels: Int?,
                groups: Int, eps: Float, outputScaleFactor: Float = 1) throws {
        norm1 = try GroupNormWeights(store, prefix + ".norm1", channels: c, groups: groups, eps: eps)
        conv1 = try Conv2dWeights(store, prefix + ".conv1", in: c, out: o, kernel: 3)
        timeEmbProj = try tembChannels.map { try LinearWeights(store, prefix + ".time_emb_proj", out: o, in: $0) }
        norm2 = try GroupNormWeights(store, prefix + ".norm2", channels: o, groups: groups, eps: eps)
        conv2 = try Conv2dWeights(store, prefix + ".conv2", in: o, out: o, kernel: 3)
        shortcut = c == o ? nil : try Conv2dWeights(store, prefix + ".conv_shortcut", in: c, out: o, kernel: 1)
        self.outputScaleFactor = outputScaleFactor
    }

    // x: [N, C, H, W], tembActivated: silu(temb) [N, T] or nil -> [N, O, H, W]
    public func callAsFunction(_ x: Tensor, tembActivated: Tensor?) -> Tensor {
        var h = conv1(norm1.silu(x))
        if let proj = timeEmbProj, let t = tembActivated {
            let e = proj(t)                                          // [N, O]
            h += e.reshaped([e.shape[0], e.shape[1], 1, 1])
        }
        // conv2's output is this block's own, so the shortcut is added into it (x itself is the
        // caller's and would be copied first).
        var out = conv2(norm2.silu(h))
        out += shortcut.map { $0(x) } ?? x
        if outputScaleFactor != 1 { scaleInPlace(&out, 1 / outputScaleFactor) }
        return out
    }
}

/// diffusers Downsample2D with a conv: stride 2, padding `padding`; padding 0 pads (0, 1, 0, 1)
/// first, as the VAE encoder does.
public struct Downsample2D {
    public var conv: Conv2dWeights
    public var asymmetricPad: Bool

    public init(_ store: WeightStore, _ prefix: String, channels: Int, padding: Int) throws {
        conv = try Conv2dWeights(store, prefix + ".conv", in: channels, out: channels, kernel: 3, stride: 2, padding: padding)
        asymmetricPad = padding == 0
    }

    // x: [N, C, H, W] -> [N, C, H/2, W/2]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        asymmetricPad ? conv(pad2d(x, top: 0, bottom: 1, left: 0, right: 1)) : conv(x)
    }
}

/// diffusers Upsample2D: nearest 2x then a 3x3 conv.
public struct Upsample2D {
    public var conv: Conv2dWeights

    public init(_ store: WeightStore, _ prefix: String, channels: Int) throws {
        conv = try Conv2dWeights(store, prefix + ".conv", in: channels, out: channels, kernel: 3)
    }

    // x: [N, C, H, W] -> [N, C, 2H, 2W]
    public func callAsFunction(_ x: Tensor) -> Tensor { conv(upsampleNearest2x(x)) }
}
