// NoiseSchedule: the training noise schedule (betas, alphas_cumprod) and the timestep/sigma helpers the
// diffusers schedulers share, computed in the same float32/float64 steps as diffusers (with torch and
// numpy) so that timesteps come out equal and sigmas equal to float32 rounding.

import Foundation

struct NoiseSchedule {
    /// alphas_cumprod[t] = prod_{s <= t} (1 - beta_s), float32 as torch stores it (Ho et al. 2020, eq. 4).
    var alphasCumprod: [Float]

    /// diffusers' scheduler __init__: betas from `beta_schedule` (or trained_betas), optionally
    /// rescaled to zero terminal SNR, then `torch.cumprod(1 - betas)`.
    init(_ config: ResolvedSchedulerConfig) {
        let count = config.numTrainTimesteps
        var betas: [Float]
        if let trained = config.trainedBetas {
            betas = trained.map { Float($0) }
        } else {
            switch config.betaSchedule {
            case .linear:
                betas = torchLinspace(Float(config.betaStart), Float(config.betaEnd), count)
            case .scaledLinear:
                betas = torchLinspace(Float(config.betaStart.squareRoot()), Float(config.betaEnd.squareRoot()), count)
                    .map { $0 * $0 }
            case .squaredcos:
                betas = cosineBetas(count)
            }
        }
        if config.rescaleBetasZeroSnr { betas = rescaleZeroTerminalSNR(betas) }
        alphasCumprod = cumulativeProduct(betas.map { 1 - $0 })
    }

    /// sigma_t = sqrt((1 - alphabar_t) / alphabar_t) for every training step, float32 (Karras et al. 2022, Table 1, VP).
    var trainSigmas: [Float] {
        alphasCumprod.map { ((1 - $0) / $0).squareRoot() }
    }
}

/// `torch.linspace(start, end, n, dtype=float32)`: float32 step, the first half counted up from `start`
/// and the second half down from `end`, each value one fused multiply-add (as the CPU kernel compiles).
func torchLinspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
    guard n > 1 else { return n == 1 ? [start] : [] }
    let step = (end - start) / Float(n - 1)
    let halfway = n / 2
    return (0..<n).map { i in
        i < halfway ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(n - 1 - i))
    }
}

/// `torch.cumprod` of float32 values: accumulated in double, each prefix rounded to float32.
func cumulativeProduct(_ values: [Float]) -> [Float] {
    var product = 1.0
    return values.map { value in
        product *= Double(value)
        return Float(product)
    }
}

/// diffusers' betas_for_alpha_bar (cosine): alphabar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2,
/// beta_i = min(1 - alphabar((i+1)/T) / alphabar(i/T), 0.999) (Nichol & Dhariwal 2021, eq. 17).
func cosineBetas(_ count: Int) -> [Float] {
    func alphaBar(_ t: Double) -> Double {
        let c = Foundation.cos((t + 0.008) / 1.008 * Double.pi / 2)
        return c * c
    }
    return (0..<count).map { i in
        let t1 = Double(i) / Double(count), t2 = Double(i + 1) / Double(count)
        return Float(min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
    }
}

/// diffusers' rescale_zero_terminal_snr (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample
/// Steps Are Flawed", Algorithm 1), in float32 as torch computes it.
func rescaleZeroTerminalSNR(_ betas: [Float]) -> [Float] {
    let alphasCumprod = cumulativeProduct(betas.map { 1 - $0 })
    var sqrtBar = alphasCumprod.map { $0.squareRoot() }
    let first = sqrtBar[0], last = sqrtBar[sqrtBar.count - 1]
    let scale = first / (first - last)
    for i in sqrtBar.indices { sqrtBar[i] = (sqrtBar[i] - last) * scale }
    let bar = sqrtBar.map { $0 * $0 }
    var alphas = [bar[0]]
    for i in 1..<bar.count { alphas.append(bar[i] / bar[i - 1]) }
    return alphas.map { 1 - $0 }
}

// MARK: numpy's arithmetic, for the timestep grids

/// `np.linspace(start, stop, num, endpoint:)` in float64: i * step + start, the endpoint set exactly.
func numpyLinspace(_ start: Double, _ stop: Double, _ num: Int, endpoint: Bool = true) -> [Double] {
    guard num > 0 else { return [] }
    let div = endpoint ? num - 1 : num
    if div == 0 { return [start] }
    let step = (stop - start) / Double(div)
    var values = (0..<num).map { Double($0) * step + start }
    if endpoint && num > 1 { values[num - 1] = stop }
    return values
}

/// `np.arange(start, stop, step)` in float64: length ceil((stop - start) / step); numpy fills
/// start + i * delta with delta = (start + step) - start.
func numpyArange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
    let length = max(0, Int(((stop - start) / step).rounded(.up)))
    guard length > 1 else { return length == 1 ? [start] : [] }
    let delta = (start + step) - start
    return (0..<length).map { start + Double($0) * delta }
}

/// `np.round` (half to even).
func numpyRound(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }

/// `np.interp(x, arange(len(fp)), fp)` for x in [0, len - 1].
func numpyInterp(_ x: Double, _ fp: [Float]) -> Double {
    if x <= 0 { return Double(fp[0]) }
    let last = fp.count - 1
    if x >= Double(last) { return Double(fp[last]) }
    let j = Int(x.rounded(.down))
    if x == Double(j) { return Double(fp[j]) }
    let slope = (Double(fp[j + 1]) - Double(fp[j])) / 1.0
    return slope * (x - Double(j)) + Double(fp[j])
}

/// The inference timesteps of `timestep_spacing` (diffusers' set_timesteps; "Common Diffusion Noise
/// Schedules and Sample Steps Are Flawed", Table 2), as float64 values before each scheduler's cast.
///   linspace: round-free np.linspace(0, T - 1, N) reversed (callers round where diffusers does)
///   leading:  (arange(N) * (T // N)) reversed, + steps_offset
///   trailing: round(arange(T, 0, -T / N)) - 1
func spacedTimesteps(_ spacing: TimestepSpacing, steps: Int, train: Int, offset: Int) -> [Double] {
    switch spacing {
    case .linspace:
        return numpyLinspace(0, Double(train - 1), steps).reversed()
    case .leading:
        let ratio = train / steps
        return (0..<steps).reversed().map { Double($0 * ratio + offset) }
    case .trailing:
        let ratio = Double(train) / Double(steps)
        return numpyArange(Double(train), 0, -ratio).map { numpyRound($0) - 1 }
    }
}

/// Karras et al. 2022, eq. 5 (rho = 7): sigma_i = (max^(1/rho) + i/(N-1) (min^(1/rho) - max^(1/rho)))^rho.
func karrasSigmas(min sigmaMin: Double, max sigmaMax: Double, steps: Int) -> [Double] {
    let rho = 7.0
    let minInv = Foundation.pow(sigmaMin, 1 / rho), maxInv = Foundation.pow(sigmaMax, 1 / rho)
    return numpyLinspace(0, 1, steps).map { Foundation.pow(maxInv + $0 * (minInv - maxInv), rho) }
}

/// diffusers' _sigma_to_t: the fractional training timestep whose log-sigma matches, by linear
/// interpolation between the two neighbouring training steps. logSigmas: float32 log of the train sigmas.
func sigmaToTimestep(_ sigma: Double, logSigmas: [Float]) -> Double {
    let logSigma = Foundation.log(max(sigma, 1e-10))
    var lowIndex = 0
    for (i, value) in logSigmas.enumerated() where logSigma - Double(value) >= 0 { lowIndex = i }
    lowIndex = min(lowIndex, logSigmas.count - 2)
    let low = Double(logSigmas[lowIndex]), high = Double(logSigmas[lowIndex + 1])
    let w = min(max((low - logSigma) / (low - high), 0), 1)
    return (1 - w) * Double(lowIndex) + w * Double(lowIndex + 1)
}

/// float32 natural log of the train sigmas (np.log on a float32 array).
func trainLogSigmas(_ sigmas: [Float]) -> [Float] { sigmas.map { Foundation.log($0) } }
