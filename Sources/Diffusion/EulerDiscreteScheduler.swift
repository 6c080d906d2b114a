// Euler: the first-order ODE sampler of Karras et al. 2022 (Algorithm 2 without churn), as diffusers'
// EulerDiscreteScheduler. With `timestep_spacing: trailing` it is the SDXL-Lightning sampler.

import Foundation
import Kernels

/// The sigma grid of diffusers' Euler schedulers: sigmas at the spaced timesteps (np.interp over the
/// train sigmas), or Karras sigmas between that grid's ends with their fractional timesteps; a final
/// sigma (0, or sigma_min for final_sigmas_type "sigma_min") appended.
func eulerSchedule(_ config: ResolvedSchedulerConfig, schedule: NoiseSchedule, steps: Int, karras: Bool)
    -> (timesteps: [Float], sigmas: [Float])
{
    let train = config.numTrainTimesteps
    // Timesteps are float32 in the Euler schedulers (np.float32 linspace; leading/trailing cast to float32).
    var timesteps: [Float]
    switch config.timestepSpacing {
    case .linspace:
        timesteps = spacedTimesteps(.linspace, steps: steps, train: train, offset: 0).map { Float($0) }
    case .leading, .trailing:
        timesteps = spacedTimesteps(config.timestepSpacing, steps: steps, train: train, offset: config.stepsOffset)
            .map { Float($0) }
    }
    let trainSigmas = schedule.trainSigmas
    var sigmas = timesteps.map { numpyInterp(Double($0), trainSigmas) }
    if karras {
        let sigmaMin = config.sigmaMin ?? sigmas[sigmas.count - 1]
        let sigmaMax = config.sigmaMax ?? sigmas[0]
        sigmas = karrasSigmas(min: sigmaMin, max: sigmaMax, steps: steps)
        let logs = trainLogSigmas(trainSigmas)
        timesteps = sigmas.map { Float(sigmaToTimestep($0, logSigmas: logs)) }
    }
    let last: Float = config.finalSigmasZero ? 0 : trainSigmas[0]
    return (timesteps, sigmas.map { Float($0) } + [last])
}

/// sigmas.max() or, for leading spacing, sqrt(max^2 + 1) in float32 (diffusers' init_noise_sigma).
func eulerInitNoiseSigma(_ sigmas: [Float], spacing: TimestepSpacing) -> Float {
    let maximum = sigmas.max() ?? 1
    return spacing == .leading ? (maximum * maximum + 1).squareRoot() : maximum
}

/// With rescale_betas_zero_snr the Euler schedulers replace the terminal alphabar 0 by 2^-24 so sigma stays finite.
func eulerNoiseSchedule(_ config: ResolvedSchedulerConfig) -> NoiseSchedule {
    var schedule = NoiseSchedule(config)
    if config.rescaleBetasZeroSnr { schedule.alphasCumprod[schedule.alphasCumprod.count - 1] = 0x1p-24 }
    return schedule
}

public struct EulerSampler: SigmaSampler {
    let config: ResolvedSchedulerConfig
    public let timesteps: [Float]
    public var startStep = 0
    public let sigmas: [Float]
    public let initNoiseSigma: Float

    init(config: ResolvedSchedulerConfig, steps: Int) throws {
        self.config = config
        let schedule = eulerNoiseSchedule(config)
        (timesteps, sigmas) = eulerSchedule(config, schedule: schedule, steps: steps, karras: config.useKarrasSigmas)
        initNoiseSigma = eulerInitNoiseSigma(sigmas, spacing: config.timestepSpacing)
    }

    /// EulerDiscreteScheduler.step (s_churn = 0, so sigma_hat = sigma and no noise is drawn):
    /// 1. x0 = x - sigma eps (epsilon) | model output (sample) | -sigma/sqrt(sigma^2+1) v + x/(sigma^2+1) (v)
    /// 2. d = (x - x0) / sigma  (Karras et al. 2022, eq. 3's ODE derivative)
    /// 3. x_next = x + d (sigma_next - sigma)
    public mutating func step(modelOutput: Tensor, step: Int, sample: Tensor, generator: inout TorchGenerator) throws -> Tensor {
        try checkSamplerStep(step, count: timesteps.count)
        try checkSamplerShapes(modelOutput, sample)
        let sigma = sigmas[step]
        let x0 = sigmaPredictOriginal(config.predictionType, modelOutput: modelOutput, sample: sample, sigma: sigma)
        let dt = sigmas[step + 1] - sigma
        return samplerZip(sample, x0) { x, x0 in x + ((x - x0) / sigma) * dt }
    }
}

/// A sampler in the sigma (variance-exploding) parameterisation, x = x0 + sigma eps: the Euler
/// schedulers. Model input and noising follow from `sigmas`.
public protocol SigmaSampler: Sampler {
    var sigmas: [Float] { get }
}

extension SigmaSampler {
    /// x / sqrt(sigma^2 + 1): the UNet sees unit-variance input (Karras et al. 2022, Table 1, c_in).
    public func scaleModelInput(_ x: Tensor, step: Int) -> Tensor {
        let sigma = sigmas[min(max(step, 0), sigmas.count - 1)]
        let scale = (sigma * sigma + 1).squareRoot()
        return samplerMap(x) { $0 / scale }
    }

    /// x + noise * sigma (EulerDiscreteScheduler.add_noise at the begin index).
    public func addNoise(_ original: Tensor, noise: Tensor, step: Int) -> Tensor {
        let sigma = sigmas[min(max(step, 0), sigmas.count - 1)]
        return samplerZip(original, noise) { x, z in x + z * sigma }
    }
}

/// x0 from the model output in the sigma (variance-exploding) parameterisation of the Euler schedulers.
func sigmaPredictOriginal(_ prediction: PredictionType, modelOutput: Tensor, sample: Tensor, sigma: Float) -> Tensor {
    switch prediction {
    case .epsilon:
        return samplerZip(sample, modelOutput) { x, e in x - sigma * e }
    case .sample:
        return modelOutput
    case .vPrediction:
        let c1 = -sigma / (sigma * sigma + 1).squareRoot(), c2 = sigma * sigma + 1
        return samplerZip(sample, modelOutput) { x, v in v * c1 + x / c2 }
    }
}
