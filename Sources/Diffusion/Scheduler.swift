// Scheduler: the Sampler protocol (the iterator the caller drives, one per diffusers scheduler class), makeSampler, and shared step maths.
//
//   var x = generator.randn(shape) * sampler.initNoiseSigma        // x: [B, C, H, W]
//   for i in sampler.timesteps.indices {
//       let eps = unet(sampler.scaleModelInput(x, step: i), sampler.timesteps[i])
//       x = try sampler.step(modelOutput: eps, step: i, sample: x, generator: &generator)
//   }
//
// Noise is drawn from the generator exactly when and in the shape diffusers' `randn_tensor` draws it,
// so a seed gives diffusers' image. Element-wise arithmetic is float32 in diffusers' operation order.

import Foundation
import Kernels

public protocol Sampler {
    /// The model's timestep at each step (integers for the DDPM-style schedulers; fractional for Euler with Karras sigmas).
    var timesteps: [Float] { get }
    /// Sigmas of the sigma-parameterised schedulers (one more than timesteps, the last the final sigma); empty otherwise.
    var sigmas: [Float] { get }
    /// The scale of the initial noise: x_T = randn * initNoiseSigma.
    var initNoiseSigma: Float { get }
    /// The UNet input at a step (Euler: x / sqrt(sigma^2 + 1); identity elsewhere).
    func scaleModelInput(_ x: Tensor, step: Int) -> Tensor
    /// One denoising step from the model output at `step`; returns the sample for the next step
    /// (after the last step, the final denoised sample).
    mutating func step(modelOutput: Tensor, step: Int, sample: Tensor, generator: inout TorchGenerator) throws -> Tensor
    /// The clean sample noised to the level of `step` (diffusers' add_noise at timesteps[step]).
    func addNoise(_ original: Tensor, noise: Tensor, step: Int) -> Tensor
    /// The first step to run: 0 for text-to-image; for img2img (makeSampler's `strength` < 1) the step whose
    /// noise level addNoise gives the init image (LCM/TCD instead shorten their grid and start at 0).
    var startStep: Int { get }
}

/// The first step an img2img run takes (diffusers' img2img get_timesteps):
/// N - min(floor(N * strength), N); strength 1 starts from pure noise at step 0.
public func img2imgStartStep(steps: Int, strength: Double) -> Int {
    steps - min(Int(Double(steps) * strength), steps)
}

/// x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (Ho et al. 2020, eq. 4), float32 as diffusers' add_noise.
func addNoiseDDPM(_ original: Tensor, noise: Tensor, alphaProd: Float) -> Tensor {
    let a = alphaProd.squareRoot(), b = (1 - alphaProd).squareRoot()
    return samplerZip(original, noise) { x, z in a * x + b * z }
}

/// The names `makeSampler` accepts.
public let samplerNames = ["lcm", "tcd", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim"]

/// The sampler `name` for a model's scheduler config, as diffusers' `<Class>.from_config(config)` then
/// `set_timesteps(steps)`. `eta` is DDIM's eta (default 0) or TCD's gamma (default 0.3); others ignore it.
/// `strength` < 1 is img2img: run from `startStep`, on `addNoise(image latents, noise, step: startStep)`.
public func makeSampler(name: String, config: SchedulerConfig, steps: Int, eta: Float? = nil,
                        strength: Double = 1) throws -> any Sampler {
    guard samplerNames.contains(name) else { throw SchedulerError.unknownSampler(name, valid: samplerNames) }
    guard steps >= 1 else { throw SchedulerError.invalidSteps(steps, reason: "at least 1 step is needed") }
    let train = config.numTrainTimesteps ?? 1000
    guard steps <= train else {
        throw SchedulerError.invalidSteps(steps, reason: "more than num_train_timesteps (\(train))")
    }
    guard strength > 0 && strength <= 1 else {
        throw SchedulerError.invalidValue(key: "strength", value: "\(strength)", valid: "a number in (0, 1]")
    }
    if name == "lcm" {
        return try LCMSampler(config: config.resolved(for: .lcm), steps: steps, strength: strength)
    }
    if name == "tcd" {
        return try TCDSampler(config: config.resolved(for: .tcd), steps: steps, gamma: eta ?? 0.3, strength: strength)
    }
    let start = img2imgStartStep(steps: steps, strength: strength)
    guard start < steps else {
        throw SchedulerError.invalidValue(key: "strength", value: "\(strength)",
                                          valid: "at least 1 of the \(steps) steps left (strength >= \(1 / Double(steps)))")
    }
    switch name {
    case "euler":
        var sampler = try EulerSampler(config: config.resolved(for: .euler), steps: steps)
        sampler.startStep = start
        return sampler
    case "euler_a":
        var sampler = try EulerAncestralSampler(config: config.resolved(for: .eulerAncestral), steps: steps)
        sampler.startStep = start
        return sampler
    case "dpmpp_2m", "dpmpp_2m_karras":
        var resolved = try config.resolved(for: .dpmSolver)
        resolved.useKarrasSigmas = name == "dpmpp_2m_karras"
        var sampler = try DPMSolverMultistepSampler(config: resolved, steps: steps)
        sampler.startStep = start
        return sampler
    default:
        var sampler = try DDIMSampler(config: config.resolved(for: .ddim), steps: steps, eta: eta ?? 0)
        sampler.startStep = start
        return sampler
    }
}

// MARK: shared pieces

func checkSamplerStep(_ step: Int, count: Int) throws {
    guard step >= 0 && step < count else { throw SchedulerError.stepOutOfRange(step: step, count: count) }
}

func checkSamplerShapes(_ modelOutput: Tensor, _ sample: Tensor) throws {
    guard modelOutput.shape == sample.shape else {
        throw SchedulerError.shapeMismatch(expected: sample.shape, actual: modelOutput.shape)
    }
}

/// out[i] = body(a[i], b[i]) for two tensors of one shape.
func samplerZip(_ a: Tensor, _ b: Tensor, _ body: (Float, Float) -> Float) -> Tensor {
    Tensor(shape: a.shape) { out in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for i in 0..<out.count { out[i] = body(pa[i], pb[i]) }
            }
        }
    }
}

/// out[i] = body(a[i], b[i], c[i]) for three tensors of one shape.
func samplerZip(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ body: (Float, Float, Float) -> Float) -> Tensor {
    Tensor(shape: a.shape) { out in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeBufferPointer { pc in
                    for i in 0..<out.count { out[i] = body(pa[i], pb[i], pc[i]) }
                }
            }
        }
    }
}

func samplerMap(_ a: Tensor, _ body: (Float) -> Float) -> Tensor {
    Tensor(shape: a.shape) { out in
        a.withUnsafeBufferPointer { pa in
            for i in 0..<out.count { out[i] = body(pa[i]) }
        }
    }
}

/// x0 and epsilon from the model output of a DDPM-parameterised model at alphabar_t
/// (DDIM paper, Song et al. 2021, eq. 12; v-prediction: Salimans & Ho 2022, sec. 4).
/// alphaProd: alphabar_t (float32), so sqrt(alphabar) and sqrt(1 - alphabar) round as torch's do.
func predictOriginal(_ prediction: PredictionType, modelOutput: Tensor, sample: Tensor, alphaProd: Float)
    -> (x0: Tensor, epsilon: Tensor)
{
    let sqrtAlpha = alphaProd.squareRoot(), sqrtBeta = (1 - alphaProd).squareRoot()
    switch prediction {
    case .epsilon:
        // x0 = (x_t - sqrt(1 - alphabar) eps) / sqrt(alphabar)
        return (samplerZip(sample, modelOutput) { x, e in (x - sqrtBeta * e) / sqrtAlpha }, modelOutput)
    case .sample:
        // eps = (x_t - sqrt(alphabar) x0) / sqrt(1 - alphabar)
        return (modelOutput, samplerZip(sample, modelOutput) { x, x0 in (x - sqrtAlpha * x0) / sqrtBeta })
    case .vPrediction:
        // x0 = sqrt(alphabar) x_t - sqrt(1 - alphabar) v;  eps = sqrt(alphabar) v + sqrt(1 - alphabar) x_t
        return (samplerZip(sample, modelOutput) { x, v in sqrtAlpha * x - sqrtBeta * v },
                samplerZip(sample, modelOutput) { x, v in sqrtAlpha * v + sqrtBeta * x })
    }
}

/// Dynamic thresholding (Saharia et al. 2022, "Imagen", sec. 2.3), as diffusers' _threshold_sample:
/// per batch item, s = quantile(|x0|, ratio) clamped to [1, maxValue]; x0 = clamp(x0, -s, s) / s.
/// x0: [B, ...]
func thresholdSample(_ x0: Tensor, ratio: Float, maxValue: Float) -> Tensor {
    let batch = x0.shape.first ?? 1
    let row = x0.count / max(batch, 1)
    var values = x0.scalars
    for b in 0..<batch {
        let slice = values[(b * row)..<((b + 1) * row)]
        let sorted = slice.map { abs($0) }.sorted()
        // torch.quantile, linear: rank = q (n - 1) in float32, then torch.lerp of the two neighbours.
        let rank = ratio * Float(row - 1)
        let below = Int(rank), above = min(below + 1, row - 1)
        let weight = rank - Float(below)
        let lo = sorted[below], hi = sorted[above]
        let quantile = weight < 0.5 ? lo + weight * (hi - lo) : hi - (hi - lo) * (1 - weight)
        let s = min(max(quantile, 1), maxValue)
        for i in (b * row)..<((b + 1) * row) { values[i] = min(max(values[i], -s), s) / s }
    }
    return Tensor(shape: x0.shape, data: values)
}

/// The optional x0 post-processing of DDIM and LCM: thresholding, else clipping to +-range.
func clipOrThreshold(_ x0: Tensor, _ config: ResolvedSchedulerConfig) -> Tensor {
    if config.thresholding {
        return thresholdSample(x0, ratio: config.dynamicThresholdingRatio, maxValue: config.sampleMaxValue)
    }
    if config.clipSample {
        let r = config.clipSampleRange
        return samplerMap(x0) { min(max($0, -r), r) }
    }
    return x0
}
