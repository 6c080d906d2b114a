// Euler ancestral: each Euler step goes down to sigma_down and adds fresh noise of size sigma_up
// (k-diffusion's sample_euler_ancestral; Karras et al. 2022, sec. 4 on stochastic sampling), as
// diffusers' EulerAncestralDiscreteScheduler. With trailing spacing and 1-4 steps it is SDXL-Turbo's sampler.

import Foundation
import Kernels

public struct EulerAncestralSampler: SigmaSampler {
    let config: ResolvedSchedulerConfig
    public let timesteps: [Float]
    public var startStep = 0
    public let sigmas: [Float]
    public let initNoiseSigma: Float

    init(config: ResolvedSchedulerConfig, steps: Int) throws {
        self.config = config
        var plain = config
        plain.finalSigmasZero = true  // EulerAncestralDiscreteScheduler always ends at sigma 0
        let schedule = eulerNoiseSchedule(config)
        (timesteps, sigmas) = eulerSchedule(plain, schedule: schedule, steps: steps, karras: false)
        initNoiseSigma = eulerInitNoiseSigma(sigmas, spacing: config.timestepSpacing)
    }

    /// EulerAncestralDiscreteScheduler.step:
    /// 1. x0 from the model output (epsilon or v)
    /// 2. sigma_up = sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2), sigma_down = sqrt(sigma_next^2 - sigma_up^2)
    /// 3. x = x + (x - x0)/sigma (sigma_down - sigma)
    /// 4. x = x + z sigma_up, z drawn at every step (the last one too, where sigma_up = 0)
    public mutating func step(modelOutput: Tensor, step: Int, sample: Tensor, generator: inout TorchGenerator) throws -> Tensor {
        try checkSamplerStep(step, count: timesteps.count)
        try checkSamplerShapes(modelOutput, sample)
        let sigma = sigmas[step], sigmaNext = sigmas[step + 1]
        let x0 = sigmaPredictOriginal(config.predictionType, modelOutput: modelOutput, sample: sample, sigma: sigma)
        let sigmaUp = ((sigmaNext * sigmaNext) * (sigma * sigma - sigmaNext * sigmaNext) / (sigma * sigma)).squareRoot()
        let sigmaDown = (sigmaNext * sigmaNext - sigmaUp * sigmaUp).squareRoot()
        let dt = sigmaDown - sigma
        let moved = samplerZip(sample, x0) { x, x0 in x + ((x - x0) / sigma) * dt }
        let noise = generator.randn(modelOutput.shape)
        return samplerZip(moved, noise) { x, z in x + z * sigmaUp }
    }
}
