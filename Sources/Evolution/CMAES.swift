// CMA-ES: the (mu/mu_w, lambda) covariance matrix adaptation evolution strategy with cumulative step-size
// adaptation, rank-one and rank-mu covariance updates and active (negative) recombination weights, with
// the default parameters of Hansen, "The CMA Evolution Strategy: A Tutorial" (arXiv:1604.00772, 2016),
// Table 1 and Fig. 6 — the algorithm pycma runs by default. Minimises.
//
// The caller drives it: `ask()` returns the generation's genotypes, the caller evaluates
// `phenotype(x)` for each (the bounds transform; identity without bounds) and passes the fitness values
// to `tell`. The whole state, random generator included, is Codable: a state saved after `tell` and
// loaded again continues exactly as if never interrupted.

import COpenBLAS
import Foundation

public struct CMAESOptions: Codable, Equatable {
    /// Offspring per generation (lambda); default 4 + floor(3 ln n).
    public var populationSize: Int?
    public var seed: UInt64
    /// Box bounds per coordinate (handled by `BoundTransform`), or nil for an unbounded search.
    public var lowerBounds: [Double]?
    public var upperBounds: [Double]?

    public init(populationSize: Int? = nil, seed: UInt64 = 1, lowerBounds: [Double]? = nil, upperBounds: [Double]? = nil) {
        self.populationSize = populationSize
        self.seed = seed
        self.lowerBounds = lowerBounds
        self.upperBounds = upperBounds
    }
}

public struct CMAES: Codable, Equatable {
    public let dimension: Int
    public let lambda: Int
    public let mu: Int
    public private(set) var mean: [Double]
    public private(set) var sigma: Double
    public private(set) var generation = 0
    public private(set) var evaluations = 0
    public private(set) var bestGenotype: [Double]?
    public private(set) var bestFitness: Double?
    public let bounds: BoundTransform?

    // Strategy parameters (tutorial, Table 1).
    let weights: [Double]   // lambda weights: positive for the mu best, negative (active) for the rest
    let muEff: Double
    let cc: Double, cs: Double, c1: Double, cmu: Double, damps: Double, chiN: Double

    // Dynamic state: evolution paths, covariance C = B diag(D^2) B^T, random generator.
    var pc: [Double], ps: [Double]
    var covariance: [Double]      // n x n, row-major, symmetric
    var basis: [Double]           // B: n x n, row-major, columns are eigenvectors
    var scales: [Double]          // D: square roots of the eigenvalues
    var lastEigenUpdate = 0
    var rng: SeededNormalGenerator
    var pending: [[Double]]?      // the genotypes handed out by ask(), awaiting tell()

    /// Why the search should stop, if it should (the caller decides whether to restart).
    public enum StopReason: String, Codable { case conditionNumber, stepSizeTooSmall }
    public private(set) var stopReason: StopReason?

    public init(mean x0: [Double], sigma sigma0: Double, options: CMAESOptions = CMAESOptions()) throws {
        let n = x0.count
        guard n >= 1 else { throw EvolutionError.invalidParameter("the search needs at least one coordinate") }
        guard sigma0 > 0, sigma0.isFinite else { throw EvolutionError.invalidParameter("sigma0 must be positive, got \(sigma0)") }
        dimension = n
        lambda = options.populationSize ?? 4 + Int(3 * Foundation.log(Double(n)))
        guard lambda >= 2 else { throw EvolutionError.invalidParameter("population size must be at least 2, got \(lambda)") }
        mu = lambda / 2
        if options.lowerBounds != nil || options.upperBounds != nil {
            let lower = options.lowerBounds ?? Array(repeating: -.infinity, count: n)
            let upper = options.upperBounds ?? Array(repeating: .infinity, count: n)
            guard lower.count == n, upper.count == n else {
                throw EvolutionError.invalidBounds("bounds have \(lower.count)/\(upper.count) entries for \(n) coordinates")
            }
            bounds = try BoundTransform(lower: lower, upper: upper)
        } else {
            bounds = nil
        }
        mean = x0
        sigma = sigma0
        rng = SeededNormalGenerator(seed: options.seed)

        // Weights: w'_i = ln((lambda + 1) / 2) - ln i.
        let lambda = self.lambda, mu = self.mu
        let raw = (1...lambda).map { Foundation.log(Double(lambda + 1) / 2) - Foundation.log(Double($0)) }
        let positive = raw.prefix(mu), negative = raw.suffix(lambda - mu)
        let sumPos = positive.reduce(0, +), sumNeg = negative.reduce(0, +)
        let muEff = sumPos * sumPos / positive.map { $0 * $0 }.reduce(0, +)
        let muEffNeg = negative.isEmpty ? 0 : sumNeg * sumNeg / negative.map { $0 * $0 }.reduce(0, +)
        let nd = Double(n)
        let alphaCov = 2.0
        let c1 = alphaCov / ((nd + 1.3) * (nd + 1.3) + muEff)
        let cmu = min(1 - c1, alphaCov * (muEff - 2 + 1 / muEff) / ((nd + 2) * (nd + 2) + alphaCov * muEff / 2))
        let alphaMuNeg = 1 + c1 / cmu
        let alphaMuEffNeg = 1 + 2 * muEffNeg / (muEff + 2)
        let alphaPosDefNeg = (1 - c1 - cmu) / (nd * cmu)
        let negScale = min(alphaMuNeg, alphaMuEffNeg, alphaPosDefNeg)
        weights = raw.map { $0 >= 0 ? $0 / sumPos : negScale * $0 / abs(sumNeg) }
        self.muEff = muEff
        self.c1 = c1
        self.cmu = cmu
        cs = (muEff + 2) / (nd + muEff + 5)
        damps = 1 + 2 * max(0, ((muEff - 1) / (nd + 1)).squareRoot() - 1) + cs
        cc = (4 + muEff / nd) / (nd + 4 + 2 * muEff / nd)
        chiN = nd.squareRoot() * (1 - 1 / (4 * nd) + 1 / (21 * nd * nd))

        pc = Array(repeating: 0, count: n)
        ps = Array(repeating: 0, count: n)
        covariance = Array(repeating: 0, count: n * n)
        basis = Array(repeating: 0, count: n * n)
        for i in 0..<n {
            covariance[i * n + i] = 1
            basis[i * n + i] = 1
        }
        scales = Array(repeating: 1, count: n)
    }

    /// The point at which a genotype is evaluated: inside the bounds when there are bounds.
    public func phenotype(_ genotype: [Double]) -> [Double] {
        bounds?.apply(genotype) ?? genotype
    }

    /// The genotypes of the next generation: x_k = m + sigma * B * D * z_k, z_k ~ N(0, I).
    /// Asking again before `tell` returns the same genotypes.
    public mutating func ask() -> [[Double]] {
        if let pending { return pending }
        let n = dimension
        var population: [[Double]] = []
        population.reserveCapacity(lambda)
        for _ in 0..<lambda {
            let z = (0..<n).map { _ in rng.nextNormal() }
            var x = mean
            for i in 0..<n {
                var y = 0.0
                for j in 0..<n { y += basis[i * n + j] * scales[j] * z[j] }
                x[i] += sigma * y
            }
            population.append(x)
        }
        pending = population
        return population
    }

    /// Updates the distribution from the fitness (lower is better) of the genotypes `ask()` returned.
    public mutating func tell(fitness: [Double]) throws {
        guard let population = pending else { throw EvolutionError.tellWithoutAsk }
        guard fitness.count == population.count else {
            throw EvolutionError.invalidParameter("tell got \(fitness.count) fitness values for \(population.count) candidates")
        }
        if let bad = fitness.firstIndex(where: { $0.isNaN }) {
            throw EvolutionError.invalidParameter("fitness of candidate \(bad) is NaN")
        }
        let n = dimension
        let order = fitness.indices.sorted { fitness[$0] < fitness[$1] }
        evaluations += lambda
        generation += 1
        if fitness[order[0]] < bestFitness ?? .infinity {
            bestFitness = fitness[order[0]]
            bestGenotype = population[order[0]]
        }
        // y_k = (x_k - m) / sigma, sorted by fitness.
        let ys = order.map { k in (0..<n).map { (population[k][$0] - mean[$0]) / sigma } }

        // 1. Mean: m += sigma * sum_{i<=mu} w_i y_i  (c_m = 1).
        var yw = Array(repeating: 0.0, count: n)
        for i in 0..<mu { for j in 0..<n { yw[j] += weights[i] * ys[i][j] } }
        for j in 0..<n { mean[j] += sigma * yw[j] }

        // 2. Step-size path: p_s = (1 - c_s) p_s + sqrt(c_s (2 - c_s) mu_eff) C^(-1/2) y_w.
        let invSqrtYw = inverseSqrtTimes(yw)
        let psFactor = (cs * (2 - cs) * muEff).squareRoot()
        for j in 0..<n { ps[j] = (1 - cs) * ps[j] + psFactor * invSqrtYw[j] }
        let psNorm = norm(ps)
        let hsig = psNorm / (1 - Foundation.pow(1 - cs, 2 * Double(generation))).squareRoot() / chiN
            < 1.4 + 2 / Double(n + 1)

        // 3. Covariance path: p_c = (1 - c_c) p_c + h_s sqrt(c_c (2 - c_c) mu_eff) y_w.
        let pcFactor = hsig ? (cc * (2 - cc) * muEff).squareRoot() : 0
        for j in 0..<n { pc[j] = (1 - cc) * pc[j] + pcFactor * yw[j] }

        // 4. Covariance: C = (1 + c1 delta(h_s) - c1 - c_mu sum w) C + c1 p_c p_c^T + c_mu sum w°_i y_i y_i^T,
        //    with w°_i = w_i * n / |C^(-1/2) y_i|^2 for the negative weights (tutorial eq. 46-47).
        let deltaH = hsig ? 0 : cc * (2 - cc)
        let decay = 1 + c1 * deltaH - c1 - cmu * weights.reduce(0, +)
        var adjusted = weights
        for i in mu..<lambda {
            let len2 = norm(inverseSqrtTimes(ys[i])).squared
            adjusted[i] = weights[i] * Double(n) / max(len2, 1e-300)
        }
        for r in 0..<n {
            for c in r..<n {
                var value = decay * covariance[r * n + c] + c1 * pc[r] * pc[c]
                for i in 0..<lambda { value += cmu * adjusted[i] * ys[i][r] * ys[i][c] }
                covariance[r * n + c] = value
                covariance[c * n + r] = value
            }
        }

        // 5. Step size: sigma *= exp((c_s / d_s) (|p_s| / E|N(0, I)| - 1)), the exponent capped at 1 so
        //    that one generation cannot blow the step size up.
        sigma *= Foundation.exp(min(1, (cs / damps) * (psNorm / chiN - 1)))
        pending = nil
        if sigma * (scales.max() ?? 1) < 1e-12 * max(1, mean.map(abs).max() ?? 1) { stopReason = .stepSizeTooSmall }

        // 6. Eigendecomposition, lazily: every 1 / ((c1 + c_mu) n 10) generations (tutorial, B.2).
        if Double(generation - lastEigenUpdate) * Double(lambda) > Double(lambda) / ((c1 + cmu) * Double(n) * 10) {
            try updateEigensystem()
        }
    }

    /// C^(-1/2) v = B D^-1 B^T v.
    func inverseSqrtTimes(_ v: [Double]) -> [Double] {
        let n = dimension
        var projected = Array(repeating: 0.0, count: n)
        for j in 0..<n {
            var s = 0.0
            for i in 0..<n { s += basis[i * n + j] * v[i] }
            projected[j] = s / scales[j]
        }
        var out = Array(repeating: 0.0, count: n)
        for i in 0..<n {
            var s = 0.0
            for j in 0..<n { s += basis[i * n + j] * projected[j] }
            out[i] = s
        }
        return out
    }

    mutating func updateEigensystem() throws {
        let n = dimension
        lastEigenUpdate = generation
        var a = covariance
        var w = Array(repeating: 0.0, count: n)
        // LAPACK's dsyev: eigenvalues ascending in w, eigenvectors in the columns of a (row-major here).
        let info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")),
                                 Int32(n), &a, Int32(n), &w)
        guard info == 0 else { throw EvolutionError.eigendecompositionFailed(Int(info)) }
        // A covariance matrix whose condition number passes 1e14 (pycma's `tolconditioncov`) has
        // degenerated numerically: keep the last good eigensystem and report the stop.
        guard let smallest = w.min(), let largest = w.max(), smallest > 0, largest.isFinite,
              largest / smallest <= 1e14 else {
            stopReason = .conditionNumber
            return
        }
        basis = a
        scales = w.map { $0.squareRoot() }
    }

    /// The largest ratio of the axis lengths of the distribution (sqrt of C's condition number).
    public var axisRatio: Double { (scales.max() ?? 1) / (scales.min() ?? 1) }
}

extension Double {
    var squared: Double { self * self }
}

func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
