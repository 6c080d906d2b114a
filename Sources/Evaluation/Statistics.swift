// Summary statistics for scores: mean and a 95% confidence interval of the mean from Student's t
// distribution (two-sided, n - 1 degrees of freedom), and CLIPScore (Hessel et al. 2021).

import Foundation

public struct ScoreSummary: Codable, Equatable {
    public var n: Int
    public var mean: Double
    /// Half-width of the 95% confidence interval of the mean (0 when n < 2).
    public var ci95: Double
    public var standardDeviation: Double

    public init(_ values: [Double]) {
        n = values.count
        guard n > 0 else {
            mean = .nan; ci95 = .nan; standardDeviation = .nan
            return
        }
        mean = values.reduce(0, +) / Double(n)
        guard n > 1 else {
            ci95 = 0; standardDeviation = 0
            return
        }
        let m = mean
        let variance = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(n - 1)
        standardDeviation = variance.squareRoot()
        ci95 = studentT975(degreesOfFreedom: n - 1) * standardDeviation / Double(n).squareRoot()
    }
}

/// CLIPScore = 2.5 * max(cos(image, text), 0)  (Hessel et al. 2021, eq. 1 with w = 2.5).
public func clipScore(cosine: Double) -> Double { 2.5 * max(cosine, 0) }

/// The 97.5% quantile of Student's t distribution with `df` degrees of freedom.
/// Exact table values up to 30 degrees of freedom; beyond, the Cornish-Fisher expansion around the
/// normal quantile (Abramowitz and Stegun 26.7.5), accurate to better than 1e-4 there.
public func studentT975(degreesOfFreedom df: Int) -> Double {
    precondition(df >= 1, "degrees of freedom must be positive")
    let table: [Double] = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
        2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
        2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
    ]
    if df <= table.count { return table[df - 1] }
    let z = 1.959963984540054, n = Double(df)
    let z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z, z9 = z7 * z * z
    return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n)
        + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * n * n * n)
        + (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / (92160 * n * n * n * n)
}
