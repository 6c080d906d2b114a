// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2, data prediction, multistep), as
// diffusers' DPMSolverMultistepScheduler with algorithm_type "dpmsolver++", solver_order 1 or 2,
// optional Karras sigmas, and lower_order_final / a first-order final step as diffusers decides it.

import Foundation
import Kernels

public struct DPMSolverMultistepSampler: Sampler {
    let config: ResolvedSchedulerConfig
    public let timesteps: [Float]
    public var startStep = 0
    public let sigmas: [Float]
    public var initNoiseSigma: Float { 1 }
    /// x0 predictions of the previous and the current step (diffusers' model_outputs).
    var previousX0: Tensor?
    var lowerOrderCount = 0

    init(config: ResolvedSchedulerConfig, steps: Int) throws {
        self.config = config
        var schedule = NoiseSchedule(config)
        if config.rescaleBetasZeroSnr { schedule.alphasCumprod[schedule.alphasCumprod.count - 1] = 0x1p-24 }
        let train = config.numTrainTimesteps
        let trainSigmas = schedule.trainSigmas
        // set_timesteps with lambda_min_clipped = -inf: last_timestep = T. Spacing over N + 1 points, the last dropped.
        var grid: [Double]
        switch config.timestepSpacing {
        case .linspace:
            grid = Array(numpyLinspace(0, Double(train - 1), steps + 1).map(numpyRound).reversed().dropLast())
        case .leading:
            let ratio = train / (steps + 1)
            grid = (1...steps).reversed().map { Double($0 * ratio + config.stepsOffset) }
        case .trailing:
            let ratio = Double(train) / Double(steps)
            grid = numpyArange(Double(train), 0, -ratio).map { numpyRound($0) - 1 }
        }
        var sigmaGrid: [Double]
        if config.useKarrasSigmas {
            // Karras sigmas between the train sigmas' ends (not the spaced grid's), timesteps rounded
            // except for the cosine schedule (then truncated by the int64 cast).
            let sigmaMin = config.sigmaMin ?? Double(trainSigmas[0])
            let sigmaMax = config.sigmaMax ?? Double(trainSigmas[train - 1])
            sigmaGrid = karrasSigmas(min: sigmaMin, max: sigmaMax, steps: steps)
            let logs = trainLogSigmas(trainSigmas)
            grid = sigmaGrid.map { sigmaToTimestep($0, logSigmas: logs) }
            grid = grid.map { config.betaSchedule == .squaredcos ? $0.rounded(.towardZero) : numpyRound($0) }
        } else {
            sigmaGrid = grid.map { numpyInterp($0, trainSigmas) }
        }
        if let bad = grid.first(where: { $0 < 0 || $0 >= Double(train) }) {
            throw SchedulerError.invalidValue(key: "steps_offset", value: "\(config.stepsOffset)",
                                              valid: "a value keeping timestep \(Int(bad)) inside 0..<\(train)")
        }
        timesteps = grid.map { Float(Int($0)) }
        let last: Float = config.finalSigmasZero ? 0 : trainSigmas[0]
        sigmas = sigmaGrid.map { Float($0) } + [last]
    }

    public func scaleModelInput(_ x: Tensor, step: Int) -> Tensor { x }

    /// alpha_t x + sigma_t noise at the step's sigma (DPMSolverMultistepScheduler.add_noise).
    public func addNoise(_ original: Tensor, noise: Tensor, step: Int) -> Tensor {
        let s = Self.alphaSigmaLambda(sigmas[min(max(step, 0), sigmas.count - 1)])
        return samplerZip(original, noise) { x, z in s.alpha * x + s.sigma * z }
    }

    /// alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t, lambda = log alpha_t - log sigma_t (float32).
    static func alphaSigmaLambda(_ sigma: Float) -> (alpha: Float, sigma: Float, lambda: Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        let s = sigma * alpha
        return (alpha, s, Foundation.log(alpha) - Foundation.log(s))
    }

    /// DPMSolverMultistepScheduler.step:
    /// 1. x0 = (x - sigma_t eps) / alpha_t (convert_model_output; thresholded if configured)
    /// 2. first order (DPM-Solver++ eq. 5, = DDIM) on the first step, and on the last step when
    ///    lower_order_final with < 15 steps, euler_at_final, or a final sigma of 0:
    ///      x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) x0,  h = lambda_t - lambda_s
    /// 3. otherwise second order (Algorithm 2, midpoint; heun as in diffusers), r0 = h_0 / h:
    ///      D0 = x0_s0, D1 = (x0_s0 - x0_s1) / r0
    ///      x_t = (sigma_t / sigma_s0) x - alpha_t (e^-h - 1) D0 - 0.5 alpha_t (e^-h - 1) D1
    public mutating func step(modelOutput: Tensor, step: Int, sample: Tensor, generator: inout TorchGenerator) throws -> Tensor {
        try checkSamplerStep(step, count: timesteps.count)
        try checkSamplerShapes(modelOutput, sample)
        let count = timesteps.count
        let lowerOrderFinal = step == count - 1
            && (config.eulerAtFinal || (config.lowerOrderFinal && count < 15) || config.finalSigmasZero)
        let s0 = Self.alphaSigmaLambda(sigmas[step])
        var x0: Tensor
        switch config.predictionType {
        case .epsilon:
            x0 = samplerZip(sample, modelOutput) { x, e in (x - s0.sigma * e) / s0.alpha }
        case .sample:
            x0 = modelOutput
        case .vPrediction:
            x0 = samplerZip(sample, modelOutput) { x, v in s0.alpha * x - s0.sigma * v }
        }
        if config.thresholding {
            x0 = thresholdSample(x0, ratio: config.dynamicThresholdingRatio, maxValue: config.sampleMaxValue)
        }
        defer {
            previousX0 = x0
            lowerOrderCount = min(lowerOrderCount + 1, config.solverOrder)
        }
        let next = sigmas[step + 1]
        let t: (alpha: Float, sigma: Float, lambda: Float)
        if next == 0 {
            t = (1, 0, .infinity)  // log(1) - log(0)
        } else {
            t = Self.alphaSigmaLambda(next)
        }
        let h = t.lambda - s0.lambda
        let expm = Foundation.exp(-h) - 1  // e^-h - 1
        let sampleScale = t.sigma / s0.sigma
        let d0Scale = t.alpha * expm
        if config.solverOrder == 1 || lowerOrderCount < 1 || lowerOrderFinal {
            return samplerZip(sample, x0) { x, d0 in sampleScale * x - d0Scale * d0 }
        }
        guard let m1 = previousX0 else { throw SchedulerError.stepOutOfRange(step: step, count: count) }
        let s1 = Self.alphaSigmaLambda(sigmas[step - 1])
        let r0 = (s0.lambda - s1.lambda) / h
        let inverseR0 = 1 / r0
        let d1 = samplerZip(x0, m1) { m0, m1 in inverseR0 * (m0 - m1) }
        if config.secondOrderHeun {
            let d1Scale = t.alpha * (expm / h + 1)
            return samplerZip(sample, x0, d1) { x, d0, d1 in sampleScale * x - d0Scale * d0 + d1Scale * d1 }
        }
        let half: Float = 0.5
        return samplerZip(sample, x0, d1) { x, d0, d1 in sampleScale * x - d0Scale * d0 - half * d0Scale * d1 }
    }
}
