// DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models"), as diffusers' DDIMScheduler:
// deterministic for eta = 0, DDPM-like noise for eta = 1.

import Foundation
import Kernels

public struct DDIMSampler: Sampler {
    let config: ResolvedSchedulerConfig
    let alphasCumprod: [Float]
    let integerTimesteps: [Int]
    /// alphabar used after the last step: 1 with set_alpha_to_one, else alphabar_0.
    let finalAlphaCumprod: Float
    public var eta: Float
    public let timesteps: [Float]
    public var startStep = 0
    public var sigmas: [Float] { [] }
    public var initNoiseSigma: Float { 1 }

    init(config: ResolvedSchedulerConfig, steps: Int, eta: Float) throws {
        self.config = config
        self.eta = eta
        let schedule = NoiseSchedule(config)
        alphasCumprod = schedule.alphasCumprod
        finalAlphaCumprod = config.setAlphaToOne ? 1 : schedule.alphasCumprod[0]
        let train = config.numTrainTimesteps
        // DDIMScheduler.set_timesteps: linspace rounds; leading adds steps_offset; trailing subtracts 1.
        let grid = spacedTimesteps(config.timestepSpacing, steps: steps, train: train, offset: config.stepsOffset)
        integerTimesteps = grid.map { Int(numpyRound($0)) }
        if let bad = integerTimesteps.first(where: { $0 < 0 || $0 >= train }) {
            throw SchedulerError.invalidValue(key: "steps_offset", value: "\(config.stepsOffset)",
                                              valid: "a value keeping timestep \(bad) inside 0..<\(train)")
        }
        timesteps = integerTimesteps.map { Float($0) }
    }

    public func scaleModelInput(_ x: Tensor, step: Int) -> Tensor { x }

    public func addNoise(_ original: Tensor, noise: Tensor, step: Int) -> Tensor {
        addNoiseDDPM(original, noise: noise, alphaProd: alphasCumprod[integerTimesteps[min(max(step, 0), integerTimesteps.count - 1)]])
    }

    /// DDIMScheduler.step (DDIM eq. 12):
    /// 1. prev_t = t - T // N (diffusers uses this stride for every spacing)
    /// 2. x0 and eps from the model output; clip or threshold x0
    /// 3. sigma_t = eta sqrt((1 - abar_prev)/(1 - abar_t)) sqrt(1 - abar_t/abar_prev)  (eq. 16)
    /// 4. x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma_t^2) eps + sigma_t z
    public mutating func step(modelOutput: Tensor, step: Int, sample: Tensor, generator: inout TorchGenerator) throws -> Tensor {
        try checkSamplerStep(step, count: timesteps.count)
        try checkSamplerShapes(modelOutput, sample)
        let t = integerTimesteps[step]
        let prevT = t - config.numTrainTimesteps / timesteps.count
        let alphaProd = alphasCumprod[t]
        let alphaProdPrev = prevT >= 0 ? alphasCumprod[prevT] : finalAlphaCumprod
        let betaProd = 1 - alphaProd, betaProdPrev = 1 - alphaProdPrev

        var (x0, epsilon) = predictOriginal(config.predictionType, modelOutput: modelOutput, sample: sample,
                                            alphaProd: alphaProd)
        x0 = clipOrThreshold(x0, config)

        let variance = (betaProdPrev / betaProd) * (1 - alphaProd / alphaProdPrev)
        let stdDev = eta * variance.squareRoot()
        let directionScale = (1 - alphaProdPrev - stdDev * stdDev).squareRoot()
        let sqrtAlphaPrev = alphaProdPrev.squareRoot()
        var previous = samplerZip(x0, epsilon) { x0, e in sqrtAlphaPrev * x0 + directionScale * e }
        if eta > 0 {
            let noise = generator.randn(modelOutput.shape)
            previous = samplerZip(previous, noise) { x, z in x + stdDev * z }
        }
        return previous
    }
}
