// LCM: multistep latent consistency sampling (Luo et al. 2023, "Latent Consistency Models", Algorithm 3),
// as diffusers' LCMScheduler. Each step maps x_t to the consistency function's estimate of x0, then
// re-noises it to the next timestep with fresh noise (none after the last step).

import Foundation
import Kernels

/// The LCM timestep grid: the `original_inference_steps` timesteps the model was distilled on
/// (k - 1, 2k - 1, ..., T - 1 with k = T // original steps), newest first, and `steps` of them picked at
/// floor(linspace(0, count, steps, endpoint: false)). Shared by LCM and TCD. img2img (strength < 1) keeps
/// the first floor(original steps * strength) distilled timesteps, as their set_timesteps(strength:) does.
func consistencyTimesteps(train: Int, originalSteps: Int, steps: Int, strength: Double) throws -> [Int] {
    guard steps <= originalSteps else {
        throw SchedulerError.invalidSteps(steps, reason: "more than original_inference_steps (\(originalSteps)) of the distilled schedule")
    }
    let k = train / originalSteps
    let kept = Int(Double(originalSteps) * strength)
    guard kept >= steps else {
        throw SchedulerError.invalidValue(key: "strength", value: "\(strength)",
                                          valid: "at least \(steps) of the \(originalSteps) distilled timesteps kept (strength >= \(Double(steps) / Double(originalSteps)))")
    }
    let origin = (1...kept).map { $0 * k - 1 }.reversed().map { $0 }
    return numpyLinspace(0, Double(origin.count), steps, endpoint: false).map { origin[Int($0.rounded(.down))] }
}

/// The noise schedule and timestep grid that LCM and TCD share: alphabar per training timestep, the
/// alphabar past the end (1 with set_alpha_to_one, else alphabar_0), and the grid's integer timesteps.
struct ConsistencyGrid {
    let alphasCumprod: [Float]
    let finalAlphaCumprod: Float
    let timesteps: [Int]

    init(config: ResolvedSchedulerConfig, steps: Int, strength: Double) throws {
        let schedule = NoiseSchedule(config)
        alphasCumprod = schedule.alphasCumprod
        finalAlphaCumprod = config.setAlphaToOne ? 1 : schedule.alphasCumprod[0]
        timesteps = try consistencyTimesteps(train: config.numTrainTimesteps, originalSteps: config.originalInferenceSteps,
                                             steps: steps, strength: strength)
    }

    /// alphabar of timestep t (the final alphabar for t < 0).
    func alphaProd(_ t: Int) -> Float { t >= 0 ? alphasCumprod[t] : finalAlphaCumprod }

    /// sqrt(abar) x + sqrt(1 - abar) noise at grid step `step` (clamped to the grid).
    func addNoise(_ original: Tensor, noise: Tensor, step: Int) -> Tensor {
        addNoiseDDPM(original, noise: noise, alphaProd: alphasCumprod[timesteps[min(max(step, 0), timesteps.count - 1)]])
    }
}

public struct LCMSampler: Sampler {
    let config: ResolvedSchedulerConfig
    let grid: ConsistencyGrid
    public let timesteps: [Float]
    public var sigmas: [Float] { [] }
    public var initNoiseSigma: Float { 1 }

    /// img2img starts at step 0 of the strength-shortened grid.
    public var startStep: Int { 0 }

    init(config: ResolvedSchedulerConfig, steps: Int, strength: Double = 1) throws {
        self.config = config
        grid = try ConsistencyGrid(config: config, steps: steps, strength: strength)
        timesteps = grid.timesteps.map { Float($0) }
    }

    public func scaleModelInput(_ x: Tensor, step: Int) -> Tensor { x }

    public func addNoise(_ original: Tensor, noise: Tensor, step: Int) -> Tensor {
        grid.addNoise(original, noise: noise, step: step)
    }

    /// Boundary-condition scalings (LCM paper eq. 9, from Consistency Models, Song et al. 2023, App. C):
    /// c_skip = sigma_data^2 / ((s t)^2 + sigma_data^2), c_out = s t / sqrt((s t)^2 + sigma_data^2),
    /// sigma_data = 0.5, s = timestep_scaling.
    func boundaryScalings(_ t: Int) -> (skip: Float, out: Float) {
        let scaled = Float(t) * config.timestepScaling
        let sigmaData2: Float = 0.25
        let denominator = scaled * scaled + sigmaData2
        return (sigmaData2 / denominator, scaled / denominator.squareRoot())
    }

    /// LCMScheduler.step:
    /// 1. prev_t = the next timestep of the grid (the same one at the last step)
    /// 2. x0 from the model output (clip or threshold when configured)
    /// 3. denoised = c_out x0 + c_skip x_t
    /// 4. x_prev = sqrt(abar_prev) denoised + sqrt(1 - abar_prev) z, or denoised after the last step
    public mutating func step(modelOutput: Tensor, step: Int, sample: Tensor, generator: inout TorchGenerator) throws -> Tensor {
        try checkSamplerStep(step, count: timesteps.count)
        try checkSamplerShapes(modelOutput, sample)
        let t = grid.timesteps[step]
        let prevT = step + 1 < grid.timesteps.count ? grid.timesteps[step + 1] : t
        let alphaProd = grid.alphasCumprod[t]
        let alphaProdPrev = grid.alphaProd(prevT)
        let (cSkip, cOut) = boundaryScalings(t)

        var (x0, _) = predictOriginal(config.predictionType, modelOutput: modelOutput, sample: sample,
                                      alphaProd: alphaProd)
        x0 = clipOrThreshold(x0, config)
        let denoised = samplerZip(x0, sample) { x0, x in cOut * x0 + cSkip * x }
        guard step != timesteps.count - 1 else { return denoised }
        let noise = generator.randn(modelOutput.shape)
        let a = alphaProdPrev.squareRoot(), b = (1 - alphaProdPrev).squareRoot()
        return samplerZip(denoised, noise) { d, z in a * d + b * z }
    }
}
