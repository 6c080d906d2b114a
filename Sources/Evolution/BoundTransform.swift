// Box bounds as pycma handles them by default (`BoundaryHandler: BoundTransform`): the search runs in an
// unbounded genotype space and each genotype is mapped into the box by a periodic, piecewise
// linear-quadratic transformation (pycma's `BoxConstraintsLinQuadTransformation`, margin width
// `max(1, |bound|) / 20`). It is the identity on [lb + al, ub - au], quadratic on the margins, and
// mirrored beyond them, so every genotype has a feasible phenotype and the optimiser never sees a wall.

import Foundation

public struct BoundTransform: Codable, Equatable {
    public let lower: [Double]
    public let upper: [Double]
    let marginLower: [Double]
    let marginUpper: [Double]

    /// Bounds per coordinate; `-infinity` / `+infinity` for an open side.
    public init(lower: [Double], upper: [Double]) throws {
        guard lower.count == upper.count else {
            throw EvolutionError.invalidBounds("\(lower.count) lower bounds but \(upper.count) upper bounds")
        }
        for i in lower.indices where !(lower[i] < upper[i]) {
            throw EvolutionError.invalidBounds("coordinate \(i): lower bound \(lower[i]) is not below upper bound \(upper[i])")
        }
        self.lower = lower
        self.upper = upper
        func margin(_ bound: Double, _ width: Double) -> Double {
            bound.isFinite ? min(width / 2, max(1, abs(bound)) / 20) : 1
        }
        marginLower = lower.indices.map { margin(lower[$0], upper[$0] - lower[$0]) }
        marginUpper = upper.indices.map { margin(upper[$0], upper[$0] - lower[$0]) }
    }

    /// Maps a genotype into the box.
    public func apply(_ genotype: [Double]) -> [Double] {
        precondition(genotype.count == lower.count, "genotype has \(genotype.count) coordinates, bounds \(lower.count)")
        return genotype.indices.map { transform($0, genotype[$0]) }
    }

    func transform(_ i: Int, _ value: Double) -> Double {
        let lb = lower[i], ub = upper[i], al = marginLower[i], au = marginUpper[i]
        var y = value
        if lb.isFinite && ub.isFinite {
            // 1. Shift by whole periods into [start, start + period).
            let period = 2 * (ub - lb + al + au)
            let start = lb - 2 * al - (ub - lb) / 2
            if y < start || y > ub + 2 * au + (ub - lb) / 2 {
                y -= period * ((y - start) / period).rounded(.down)
            }
        }
        // 2. Mirror the outer margins back into [lb - al, ub + au].
        if ub.isFinite && y > ub + au { y -= 2 * (y - ub - au) }
        if lb.isFinite && y < lb - al { y += 2 * (lb - al - y) }
        // 3. Quadratic on the inner margins.
        if lb.isFinite && y < lb + al { y = lb + (y - (lb - al)) * (y - (lb - al)) / 4 / al }
        if ub.isFinite && y > ub - au { y = ub - (y - (ub + au)) * (y - (ub + au)) / 4 / au }
        return y
    }
}
