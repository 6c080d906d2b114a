// TCD: Trajectory Consistency Distillation's strategic stochastic sampling (Zheng et al. 2024, eq. 8
// and Algorithm 4), as diffusers' TCDScheduler. gamma (diffusers' `eta`) sets how far back each step
// jumps (s = floor((1 - gamma) t_prev)) and so how much fresh noise is mixed in; gamma = 0 is
// deterministic.

import Foundation
import Kernels

public struct TCDSampler: Sampler {
    let config: ResolvedSchedulerConfig
    let grid: ConsistencyGrid
    /// gamma in [0, 1] (TCDScheduler.step's `eta`, default 0.3).
    public var gamma: Float
    public let timesteps: [Float]
    public var sigmas: [Float] { [] }
    public var initNoiseSigma: Float { 1 }

    /// img2img starts at step 0 of the strength-shortened grid.
    public var startStep: Int { 0 }

    init(config: ResolvedSchedulerConfig, steps: Int, gamma: Float, strength: Double = 1) throws {
        guard gamma >= 0 && gamma <= 1 else {
            throw SchedulerError.invalidValue(key: "eta (TCD gamma)", value: "\(gamma)", valid: "a number in [0, 1]")
        }
        self.config = config
        self.gamma = gamma
        grid = try ConsistencyGrid(config: config, steps: steps, strength: strength)
        timesteps = grid.timesteps.map { Float($0) }
    }

    public func scaleModelInput(_ x: Tensor, step: Int) -> Tensor { x }

    public func addNoise(_ original: Tensor, noise: Tensor, step: Int) -> Tensor {
        grid.addNoise(original, noise: noise, step: step)
    }

    /// TCDScheduler.step:
    /// 1. t_prev = the next grid timestep (0 after the last), s = floor((1 - gamma) t_prev)
    /// 2. x0, eps from the model output; x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s) eps
    /// 3. gamma > 0 and not the last step: x_prev = sqrt(abar_prev / abar_s) x_s + sqrt(1 - abar_prev / abar_s) z;
    ///    else x_prev = x_s
    public mutating func step(modelOutput: Tensor, step: Int, sample: Tensor, generator: inout TorchGenerator) throws -> Tensor {
        try checkSamplerStep(step, count: timesteps.count)
        try checkSamplerShapes(modelOutput, sample)
        let t = grid.timesteps[step]
        let prevT = step + 1 < grid.timesteps.count ? grid.timesteps[step + 1] : 0
        // torch.floor((1 - eta) * prev_timestep): a float32 product.
        let s = Int((Float(1 - Double(gamma)) * Float(prevT)).rounded(.down))
        let alphaProd = grid.alphasCumprod[t]
        let alphaProdPrev = grid.alphaProd(prevT)
        let alphaProdS = grid.alphasCumprod[s]

        let (x0, epsilon) = predictOriginal(config.predictionType, modelOutput: modelOutput, sample: sample,
                                            alphaProd: alphaProd)
        let sqrtAlphaS = alphaProdS.squareRoot(), sqrtBetaS = (1 - alphaProdS).squareRoot()
        let noised = samplerZip(x0, epsilon) { x0, e in sqrtAlphaS * x0 + sqrtBetaS * e }
        guard gamma > 0 && step != timesteps.count - 1 else { return noised }
        let noise = generator.randn(modelOutput.shape)
        let ratio = alphaProdPrev / alphaProdS
        let a = ratio.squareRoot(), b = (1 - ratio).squareRoot()
        return samplerZip(noised, noise) { x, z in a * x + b * z }
    }
}
