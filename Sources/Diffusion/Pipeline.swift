// Text-to-image (and img2img) generation, as diffusers' StableDiffusion(XL)Pipeline and
// StableDiffusion(XL)Img2ImgPipeline `__call__`, with a list of per-image generators:
//
//   1. prompts -> conditioning (PromptConditioning.swift); the negative one only with guidance.
//   2. per image i, generator i = torch.Generator().manual_seed(seed + i):
//        text-to-image: x_T = randn([1, C, h, w]) * init_noise_sigma
//        img2img:       z0 = vae.encode(image).latent_dist.sample(generator) * scaling_factor,
//                       x = add_noise(z0, randn(z0.shape), timesteps[start])
//   3. each step: eps = unet(scale_model_input(x), t, cond) over the batch (unconditional rows first);
//        classifier-free guidance (Ho & Salimans 2022): eps = eps_u + g (eps_c - eps_u), when g > 1;
//        x = sampler_i.step(eps_i, x_i, generator_i) per image.
//   4. image = vae.decode(x / scaling_factor); pixels = round(clamp(image / 2 + 0.5, 0, 1) * 255).
//
// The same seeds, sampler, steps and guidance give diffusers' image.

import Foundation
import Imaging
import Kernels
import Networks

public struct GenerationRequest {
    public var prompt: String
    /// nil: no negative prompt (the unconditional half encodes "", or zeros for SDXL-style models).
    public var negativePrompt: String?
    public var sampler: String
    public var steps: Int
    public var guidanceScale: Float
    /// DDIM's eta or TCD's gamma (nil: the sampler's default).
    public var eta: Float?
    public var seed: UInt64
    /// Images to make, with seeds seed, seed + 1, ...
    public var count: Int
    /// Images denoised together in one UNet batch.
    public var batchSize: Int
    public var width: Int
    public var height: Int
    /// img2img: the starting image (resized to width x height) and how much of it to repaint.
    public var initImage: RGB8Image?
    public var strength: Double

    public init(prompt: String, negativePrompt: String? = nil, sampler: String, steps: Int, guidanceScale: Float,
                eta: Float? = nil, seed: UInt64, count: Int = 1, batchSize: Int = 1, width: Int, height: Int,
                initImage: RGB8Image? = nil, strength: Double = 1) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.sampler = sampler
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.eta = eta
        self.seed = seed
        self.count = count
        self.batchSize = batchSize
        self.width = width
        self.height = height
        self.initImage = initImage
        self.strength = strength
    }
}

/// Where a run is, for a progress display.
public struct StepProgress {
    /// The images of the batch being denoised (0-based, of the request's count).
    public var images: Range<Int>
    public var count: Int
    /// 1-based step within the batch, of `steps`.
    public var step: Int
    public var steps: Int
    public var secondsThisStep: Double
}

public struct StageTimes: Codable, Equatable {
    public var encode: Double = 0
    public var denoise: Double = 0
    public var decode: Double = 0
}

public struct GenerationResult {
    public var images: [RGB8Image]
    public var seeds: [UInt64]
    public var times: StageTimes
}

/// The sampler, steps and guidance a model's scheduler suggests: its distilled few-step setting for
/// LCM/TCD/Lightning/Turbo-style schedulers, a 25-step one otherwise.
public struct SamplingDefaults: Equatable {
    public var sampler: String
    public var steps: Int
    public var guidanceScale: Float
}

extension DiffusionModel {
    public var samplingDefaults: SamplingDefaults {
        // LCM-distilled UNets (LatentConsistencyModelPipeline's defaults: 4 steps, guidance 8.5 as an embedding).
        if takesGuidanceEmbedding { return SamplingDefaults(sampler: "lcm", steps: 4, guidanceScale: 8.5) }
        let spacing = scheduler.timestepSpacing
        switch scheduler.className ?? "" {
        case "LCMScheduler": return SamplingDefaults(sampler: "lcm", steps: 4, guidanceScale: 1)
        case "TCDScheduler": return SamplingDefaults(sampler: "tcd", steps: 4, guidanceScale: 1)
        case "EulerDiscreteScheduler" where spacing == "trailing":
            return SamplingDefaults(sampler: "euler", steps: 4, guidanceScale: 1)          // SDXL-Lightning
        case "EulerAncestralDiscreteScheduler" where spacing == "trailing":
            return SamplingDefaults(sampler: "euler_a", steps: 1, guidanceScale: 0)        // SDXL-Turbo
        case "EulerDiscreteScheduler": return SamplingDefaults(sampler: "euler", steps: 25, guidanceScale: 7.5)
        case "EulerAncestralDiscreteScheduler": return SamplingDefaults(sampler: "euler_a", steps: 25, guidanceScale: 7.5)
        case "DPMSolverMultistepScheduler":
            return SamplingDefaults(sampler: scheduler.useKarrasSigmas == true ? "dpmpp_2m_karras" : "dpmpp_2m",
                                    steps: 25, guidanceScale: 7.5)
        case "DDIMScheduler": return SamplingDefaults(sampler: "ddim", steps: 25, guidanceScale: 7.5)
        default: return SamplingDefaults(sampler: "euler", steps: 25, guidanceScale: 7.5)   // PNDM, LMS, DDPM, ...
        }
    }

    /// Threads worth using when the user did not say: one for tiny models such as the demo world's
    /// (each operation is smaller than the cost of waking worker threads, and busy OpenBLAS threads
    /// spin on a loaded machine), nil (all cores) otherwise.
    public var preferredThreadCount: Int? {
        (unet.config.blockOutChannels.max() ?? 0) <= 128 ? 1 : nil
    }

    /// Image sides must be multiples of this: the VAE factor times the UNet's downsampling.
    public var sizeMultiple: Int { vaeScaleFactor * (1 << (unet.config.blockOutChannels.count - 1)) }

    /// Checks a size before anything is computed.
    public func validateSize(width: Int, height: Int, batch: Int, guidance: Bool) throws {
        let m = sizeMultiple
        guard width > 0, height > 0 else { throw PipelineError.invalidSize(width: width, height: height, reason: "sides must be positive") }
        guard width % m == 0, height % m == 0 else {
            throw PipelineError.invalidSize(width: width, height: height, reason: "sides must be multiples of \(m) for this model")
        }
        guard width <= pngMaxDimension, height <= pngMaxDimension else {
            throw PipelineError.invalidSize(width: width, height: height, reason: "sides must be at most \(pngMaxDimension)")
        }
        let needed = estimatedBytes(width: width, height: height, batch: batch, guidance: guidance)
        let available = availableMemoryBytes()
        if needed > available {
            throw PipelineError.tooLargeForMemory(width: width, height: height, neededMB: needed >> 20, availableMB: available >> 20)
        }
    }

    /// A rough peak of the activations (the weights are already loaded): the UNet's widest level
    /// keeps about 24 maps of its width at latent size (skip connections, norms, attention in
    /// chunks), the VAE decoder about 8 full-size maps of its last width.
    public func estimatedBytes(width: Int, height: Int, batch: Int, guidance: Bool) -> Int {
        let latent = (width / vaeScaleFactor) * (height / vaeScaleFactor)
        let rows = batch * (guidance ? 2 : 1)
        let unetBytes = rows * latent * unet.config.blockOutChannels[0] * 4 * 24
        let vaeBytes = width * height * decoder.outputWidth * 4 * 8
        return max(unetBytes, vaeBytes)
    }

    // MARK: Generation

    public func generate(_ request: GenerationRequest, warn: (String) -> Void = { _ in },
                         progress: ((StepProgress) -> Void)? = nil) throws -> GenerationResult {
        guard request.count >= 1 else { throw PipelineError.invalidOption(name: "--count", value: "\(request.count)", reason: "at least 1") }
        guard request.batchSize >= 1 else {
            throw PipelineError.invalidOption(name: "--batch", value: "\(request.batchSize)", reason: "at least 1")
        }
        guard request.guidanceScale.isFinite, request.guidanceScale >= 0 else {
            throw PipelineError.invalidOption(name: "--cfg", value: "\(request.guidanceScale)", reason: "a number >= 0")
        }
        // LCM-distilled UNets take the guidance as an embedding, never by classifier-free guidance.
        let guided = request.guidanceScale > 1 && !takesGuidanceEmbedding
        let batch = min(request.batchSize, request.count)
        try validateSize(width: request.width, height: request.height, batch: batch, guidance: guided)
        let img2img = request.initImage != nil
        // Fail on a bad sampler, steps or strength before any work.
        let template = try makeSampler(name: request.sampler, config: scheduler, steps: request.steps, eta: request.eta,
                                       strength: img2img ? request.strength : 1)

        var times = StageTimes()
        var clock = Date()
        func lap() -> Double { let now = Date(); defer { clock = now }; return now.timeIntervalSince(clock) }

        let cond = try encodePrompt(request.prompt, warn: warn)
        let uncond = guided
            ? try encodePrompt(request.negativePrompt ?? "", absent: (request.negativePrompt ?? "").isEmpty, warn: warn)
            : nil
        let initPixels = try request.initImage.map { try initImageTensor($0, width: request.width, height: request.height) }
        times.encode = lap()

        var images: [RGB8Image] = []
        var seeds: [UInt64] = []
        var first = 0
        while first < request.count {
            let rows = min(batch, request.count - first)
            var generators = (0..<rows).map { TorchGenerator(seed: request.seed &+ UInt64(first + $0)) }
            var samplers = Array(repeating: template, count: rows)
            // x_i: [1, C, h, w]
            var latents: [Tensor] = []
            for i in 0..<rows {
                if let initPixels {
                    let z0 = try decoder.encode(initPixels, generator: &generators[i])
                    let noise = generators[i].randn(z0.shape)
                    latents.append(template.addNoise(z0, noise: noise, step: template.startStep))
                } else {
                    let shape = [1, decoder.latentChannels, request.height / vaeScaleFactor, request.width / vaeScaleFactor]
                    latents.append(generators[i].randn(shape) * template.initNoiseSigma)
                }
            }
            var context = cond.repeated(rows)
            if let uncond { context = Conditioning.stacked(uncond.repeated(rows), context) }
            let timeIds = context.pooled == nil ? nil
                : self.timeIds(width: request.width, height: request.height, rows: context.states.shape[0])
            let guidanceCond = unet.config.timeCondProjDim.map {
                guidanceScaleEmbedding(request.guidanceScale - 1, dim: $0, rows: rows)
            }
            let total = template.timesteps.count - template.startStep
            for step in template.startStep..<template.timesteps.count {
                let stepStart = Date()
                // x: [rows, C, h, w]
                let x = concat(latents, axis: 0)
                let input = template.scaleModelInput(x, step: step)
                let unetInput = guided ? concat([input, input], axis: 0) : input
                var eps = try unet(sample: unetInput, timestep: template.timesteps[step], encoderHiddenStates: context.states,
                                   addTextEmbeds: context.pooled, addTimeIds: timeIds, timestepCond: guidanceCond)
                if guided {
                    // eps = eps_u + g (eps_c - eps_u)
                    let halves = chunk(eps, parts: 2, axis: 0)
                    eps = halves[0] + (halves[1] - halves[0]) * request.guidanceScale
                }
                let perImage = rows == 1 ? [eps] : chunk(eps, parts: rows, axis: 0)
                for i in 0..<rows {
                    latents[i] = try samplers[i].step(modelOutput: perImage[i], step: step, sample: latents[i],
                                                      generator: &generators[i])
                }
                progress?(StepProgress(images: first..<(first + rows), count: request.count,
                                       step: step - template.startStep + 1, steps: total,
                                       secondsThisStep: Date().timeIntervalSince(stepStart)))
            }
            times.denoise += lap()
            for i in 0..<rows {
                // image: [1, 3, H, W] in [-1, 1] -> pixels
                let decoded = try decoder.decode(latents[i])
                images.append(try RGB8Image(tensor: decoded * 0.5 + 0.5))
                seeds.append(request.seed &+ UInt64(first + i))
            }
            times.decode += lap()
            first += rows
        }
        return GenerationResult(images: images, seeds: seeds, times: times)
    }

    /// img2img input: resized to the target size (Lanczos, as diffusers' VaeImageProcessor) -> [1, 3, H, W] in [-1, 1].
    func initImageTensor(_ image: RGB8Image, width: Int, height: Int) throws -> Tensor {
        let sized = image.width == width && image.height == height ? image
            : try image.resized(width: width, height: height, filter: .lanczos)
        return sized.tensor.reshaped([1, 3, height, width]) * 2 - 1
    }
}

/// The guidance-scale embedding of LCM-distilled UNets, as diffusers' `get_guidance_scale_embedding`
/// (float32): w' = 1000 w; f_i = exp(-i ln(10000) / (half - 1)); [sin(w' f), cos(w' f)] -> [rows, dim].
func guidanceScaleEmbedding(_ w: Float, dim: Int, rows: Int) -> Tensor {
    let half = dim / 2
    let step = Float(log(10000.0)) / Float(half - 1)
    let scaled = w * 1000
    var one = [Float](repeating: 0, count: dim)
    for i in 0..<half {
        let x = scaled * Foundation.exp(Float(i) * -step)
        one[i] = Foundation.sin(x)
        one[half + i] = Foundation.cos(x)
    }
    return Tensor(shape: [rows, dim], data: Array([[Float]](repeating: one, count: rows).joined()))
}

/// Physical memory the system says is available (MemAvailable), or 8 GiB when it cannot tell.
func availableMemoryBytes() -> Int {
    if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            if kb > 0 { return kb * 1024 }
        }
    }
    return 8 << 30
}
