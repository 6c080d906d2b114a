// Shape and layout operations: concat, split, chunk, permute, nearest 2x upsample, padding,
// embedding lookup. All copy into new contiguous tensors; negative axes count from the end.

import CKernels

/// Concatenates tensors along `axis`; all other dimensions must match.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concat of no tensors")
    let first = tensors[0]
    let ax = normalizedAxis(axis, rank: first.rank)
    for t in tensors {
        precondition(t.rank == first.rank
                     && zip(t.shape, first.shape).enumerated().allSatisfy { $0.offset == ax || $0.element.0 == $0.element.1 },
                     "concat along \(axis): shapes \(tensors.map(\.shape)) differ off the axis")
    }
    var outShape = first.shape
    outShape[ax] = tensors.reduce(0) { $0 + $1.shape[ax] }
    let outer = first.shape[..<ax].reduce(1, *)
    let inner = first.shape[(ax + 1)...].reduce(1, *)
    let out = Tensor(uninitializedShape: outShape)
    let dst = out.fresh
    let rowOut = outShape[ax] * inner
    var offset = 0
    for t in tensors {
        let len = t.shape[ax] * inner, src = t.base
        parallelRanges(outer, grain: max(1, (1 << 15) / max(len, 1))) { r in
            for o in r { (dst + o * rowOut + offset).update(from: src + o * len, count: len) }
        }
        offset += len
    }
    return out
}

/// Splits `x` along `axis` into pieces of the given sizes (which must sum to the axis length).
public func split(_ x: Tensor, axis: Int, sizes: [Int]) -> [Tensor] {
    let ax = normalizedAxis(axis, rank: x.rank)
    precondition(sizes.reduce(0, +) == x.shape[ax] && sizes.allSatisfy { $0 >= 0 },
                 "split sizes \(sizes) do not sum to \(x.shape[ax]) (axis \(axis) of \(x.shape))")
    let outer = x.shape[..<ax].reduce(1, *)
    let inner = x.shape[(ax + 1)...].reduce(1, *)
    let rowIn = x.shape[ax] * inner
    let src = x.base
    var offset = 0
    var result: [Tensor] = []
    for size in sizes {
        var shape = x.shape
        shape[ax] = size
        let piece = Tensor(uninitializedShape: shape)
        let dst = piece.fresh, len = size * inner, start = offset
        parallelRanges(outer, grain: max(1, (1 << 15) / max(len, 1))) { r in
            for o in r { (dst + o * len).update(from: src + o * rowIn + start, count: len) }
        }
        result.append(piece)
        offset += len
    }
    return result
}

/// The elements at positions `range` along `axis` (torch.narrow / x[..., a:b, ...]), copied.
public func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
    let ax = normalizedAxis(axis, rank: x.rank)
    precondition(range.lowerBound >= 0 && range.upperBound <= x.shape[ax],
                 "slice \(range) outside 0..<\(x.shape[ax]) (axis \(axis) of \(x.shape))")
    return split(x, axis: ax, sizes: [range.lowerBound, range.count, x.shape[ax] - range.upperBound])[1]
}

/// Splits `x` into `parts` equal pieces along `axis` (torch.chunk with an exact division).
public func chunk(_ x: Tensor, parts: Int, axis: Int) -> [Tensor] {
    let ax = normalizedAxis(axis, rank: x.rank)
    precondition(parts > 0 && x.shape[ax] % parts == 0, "chunk: axis length \(x.shape[ax]) not divisible by \(parts)")
    return split(x, axis: ax, sizes: [Int](repeating: x.shape[ax] / parts, count: parts))
}

/// Reorders dimensions: out.shape[i] = x.shape[dims[i]] (torch.permute).
public func permute(_ x: Tensor, _ dims: [Int]) -> Tensor {
    let rank = x.rank
    let perm = dims.map { normalizedAxis($0, rank: rank) }
    precondition(perm.count == rank && Set(perm).count == rank, "permute \(dims) is not a permutation of rank \(rank)")
    if perm == Array(0..<rank) { return x }
    if useAVX512GEMM && rank >= 2 && perm == Array(0..<(rank - 2)) + [rank - 1, rank - 2] {
        return transposeLastTwo(x)
    }
    var inStrides = [Int](repeating: 1, count: rank)
    for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * x.shape[i + 1] }
    let outShape = perm.map { x.shape[$0] }
    let strides = perm.map { inStrides[$0] }
    let out = Tensor(uninitializedShape: outShape)
    if out.count == 0 { return out }
    let inner = outShape[rank - 1], innerStride = strides[rank - 1]
    let outerDims = Array(outShape.dropLast()), outerStrides = Array(strides.dropLast())
    let rows = out.count / inner
    let src = x.base, dst = out.fresh
    parallelRanges(rows, grain: max(1, (1 << 14) / inner)) { range in
        var index = [Int](repeating: 0, count: outerDims.count)
        var rem = range.lowerBound, off = 0
        for d in stride(from: outerDims.count - 1, through: 0, by: -1) {
            index[d] = rem % outerDims[d]; rem /= outerDims[d]; off += index[d] * outerStrides[d]
        }
        for row in range {
            let o = dst + row * inner, s = src + off
            if innerStride == 1 {
                o.update(from: s, count: inner)
            } else {
                for j in 0..<inner { o[j] = s[j * innerStride] }
            }
            var d = outerDims.count - 1
            while d >= 0 {
                index[d] += 1; off += outerStrides[d]
                if index[d] < outerDims[d] { break }
                off -= index[d] * outerStrides[d]; index[d] = 0
                d -= 1
            }
        }
    }
    return out
}

/// [..., R, C] -> [..., C, R] (the last two dimensions swapped), plus `addend` [..., C, R] when given:
/// a transformer's tokens [B, HW, C] back to [B, C, HW] with the residual added in the same pass. With
/// AVX-512, 16 x 16 blocks go through registers (the strided copy of `permute` was 0.4% of an SDXL
/// UNet step, its addition pass another 0.15%).
public func transposeLastTwo(_ x: Tensor, adding addend: Tensor? = nil) -> Tensor {
    let rank = x.rank
    precondition(rank >= 2, "transposeLastTwo needs at least two dimensions, got \(x.shape)")
    let r = x.shape[rank - 2], c = x.shape[rank - 1]
    let outShape = Array(x.shape.dropLast(2)) + [c, r]
    if let addend {
        precondition(addend.shape == outShape, "transposeLastTwo: addend \(addend.shape) for the result \(outShape)")
    }
    guard useAVX512GEMM else {
        var dims = Array(0..<rank)
        dims.swapAt(rank - 2, rank - 1)
        var out = permute(x, dims)
        if let addend { addInPlace(&out, addend) }
        return out
    }
    let out = Tensor(uninitializedShape: outShape)
    if out.count == 0 { return out }
    let matrices = out.count / (r * c), blocks = (r + 15) / 16
    let src = x.base, dst = out.fresh, add = addend?.base
    // Jobs: 16 rows of one matrix each (16 columns of its result).
    parallelRanges(matrices * blocks, grain: max(1, (1 << 14) / (16 * c))) { range in
        for job in range {
            let mat = job / blocks, i0 = job % blocks * 16, offset = mat * r * c
            jpgen_transpose_add_avx512(src + offset + i0 * c, c, min(16, r - i0), c, add.map { $0 + offset + i0 }, r,
                                       dst + offset + i0, r)
        }
    }
    return out
}

/// Swaps two dimensions (torch.transpose).
public func transpose(_ x: Tensor, _ a: Int, _ b: Int) -> Tensor {
    var dims = Array(0..<x.rank)
    dims.swapAt(normalizedAxis(a, rank: x.rank), normalizedAxis(b, rank: x.rank))
    return permute(x, dims)
}

/// Nearest-neighbour 2x upsampling (torch.nn.functional.interpolate, scale_factor=2, "nearest").
/// x: [N, C, H, W] -> [N, C, 2H, 2W].
public func upsampleNearest2x(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "upsampleNearest2x needs [N, C, H, W], got \(x.shape)")
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let out = Tensor(uninitializedShape: [x.shape[0], x.shape[1], 2 * h, 2 * w])
    let src = x.base, dst = out.fresh
    parallelFor(planes) { p in
        let s = src + p * h * w, o = dst + p * 4 * h * w
        for y in 0..<h {
            let row = o + 2 * y * 2 * w, srow = s + y * w
            for xx in 0..<w { let v = srow[xx]; row[2 * xx] = v; row[2 * xx + 1] = v }
            (row + 2 * w).update(from: row, count: 2 * w)
        }
    }
    return out
}

/// Constant padding of the last two dimensions. x: [N, C, H, W] -> [N, C, H+top+bottom, W+left+right].
public func pad2d(_ x: Tensor, top: Int, bottom: Int, left: Int, right: Int, value: Float = 0) -> Tensor {
    precondition(x.rank == 4, "pad2d needs [N, C, H, W], got \(x.shape)")
    precondition(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "pad2d: negative padding")
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let ho = h + top + bottom, wo = w + left + right
    let out = Tensor(uninitializedShape: [x.shape[0], x.shape[1], ho, wo])
    let src = x.base, dst = out.fresh
    parallelFor(planes) { p in
        let s = src + p * h * w, o = dst + p * ho * wo
        o.update(repeating: value, count: top * wo)
        for y in 0..<h {
            let row = o + (top + y) * wo
            row.update(repeating: value, count: left)
            (row + left).update(from: s + y * w, count: w)
            (row + left + w).update(repeating: value, count: right)
        }
        (o + (top + h) * wo).update(repeating: value, count: bottom * wo)
    }
    return out
}

/// Throws `KernelsError.invalidArgument` naming the first id outside 0..<vocabularySize, or rows of
/// different lengths (check ids from files or user input before `embedding`).
public func validateTokenIDs(_ ids: [[Int]], vocabularySize: Int) throws {
    let t = ids.first?.count ?? 0
    for (row, line) in ids.enumerated() {
        guard line.count == t else {
            throw KernelsError.invalidArgument("token id row \(row) has \(line.count) ids, row 0 has \(t)")
        }
        if let bad = line.firstIndex(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw KernelsError.invalidArgument(
                "token id \(line[bad]) at row \(row), position \(bad) is outside the vocabulary of \(vocabularySize)")
        }
    }
}

/// Embedding lookup (torch.nn.Embedding). table: [V, D], ids: B rows of T ids -> [B, T, D].
public func embedding(_ table: Tensor, ids: [[Int]]) -> Tensor {
    precondition(table.rank == 2, "embedding table must be [V, D], got \(table.shape)")
    let v = table.shape[0], d = table.shape[1]
    let t = ids.first?.count ?? 0
    precondition(ids.allSatisfy { $0.count == t }, "embedding: id rows have different lengths")
    let out = Tensor(uninitializedShape: [ids.count, t, d])
    let src = table.base, dst = out.fresh
    for (bi, row) in ids.enumerated() {
        for (ti, id) in row.enumerated() {
            precondition(id >= 0 && id < v, "embedding: id \(id) outside the table of \(v) rows")
            (dst + (bi * t + ti) * d).update(from: src + id * d, count: d)
        }
    }
    return out
}
