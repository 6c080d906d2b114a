// `jpgen [generate] PROMPT`: text-to-image (or img2img with --init-image) with a diffusers pipeline
// folder, the bundled demo model by default. Defaults for sampler, steps and guidance come from the
// model's scheduler (a few-step model gets its few-step setting). Each image is a PNG carrying an
// AUTOMATIC1111-style `parameters` text chunk (prompt, negative, steps, sampler, CFG, seed, size,
// model hash and name). Progress on stderr; --json prints one object (files, seeds, seconds per stage).

import ArgumentParser
import Diffusion
import Foundation
import Imaging
import Kernels
import Tokenization

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate images from a prompt (the default command: `jpgen \"江ノ島と富士山が見える風景\"`).")

    @Argument(help: "The prompt (Japanese or any language the model's text encoder reads).")
    var prompt: String

    @Option(help: "A diffusers pipeline folder (model_index.json) or a single-file .safetensors checkpoint (SD1/SD2/SDXL). Default: the bundled demo model (Models/demo-lcm).")
    var model: String?

    @Option(help: "The negative prompt (used with guidance, --cfg > 1).")
    var negative: String?

    @Option(help: "Denoising steps (default: the model's, e.g. 4 for LCM).")
    var steps: Int?

    @Option(help: "Sampler: \(samplerNames.joined(separator: ", ")) (default: the model's scheduler).")
    var sampler: String?

    @Option(help: "Classifier-free guidance scale; 1 or less turns guidance off (default: the model's).")
    var cfg: Float?

    @Option(help: "DDIM eta or TCD gamma.")
    var eta: Float?

    @Option(help: "Seed of the first image; the others take the next seeds (default: random).")
    var seed: UInt64?

    @Option(help: "Image width in pixels (default: the model's).")
    var width: Int?

    @Option(help: "Image height in pixels (default: the model's).")
    var height: Int?

    @Option(help: "How many images, with consecutive seeds.")
    var count = 1

    @Option(help: "Images denoised together per UNet call.")
    var batch = 1

    @Option(name: .shortAndLong,
            help: "Output PNG. With --count > 1, -SEED is added before the extension. Default: jpgen-SEED.png (never overwrites).")
    var output: String?

    @Option(help: "Single-file checkpoints: a diffusers folder whose configs, tokenizers and scheduler to use (default: the family's standard ones and the bundled CLIP tokenizers).")
    var config: String?

    @Option(help: "A replacement VAE folder, e.g. TAESD (AutoencoderTiny) for fast previews.")
    var vae: String?

    @Option(help: "A LoRA to fuse, FILE or FILE:SCALE (repeatable; kohya or diffusers/PEFT names).")
    var lora: [String] = []

    @Option(name: .customLong("init-image"), help: "img2img: a PNG to start from (resized to the output size).")
    var initImage: String?

    @Option(help: "img2img: how much of the init image to repaint, in (0, 1].")
    var strength: Double = 0.6

    @Option(name: .customLong("user-dic"), help: "An extra MeCab user dictionary (.dic) for the tokenizer.")
    var userDic: [String] = []

    @Option(help: "Worker threads (default: all cores; one for tiny models such as the demo's).")
    var threads: Int?

    @Flag(help: "Print one JSON object (files, seeds, seconds per stage) on stdout.")
    var json = false

    @Flag(help: "No progress on stderr.")
    var quiet = false

    func validate() throws {
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        if count < 1 { throw ValidationError("--count must be at least 1") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let sampler, !samplerNames.contains(sampler) {
            throw ValidationError("unknown sampler \"\(sampler)\"; valid: \(samplerNames.joined(separator: ", "))")
        }
        if let width, width <= 0 { throw ValidationError("--width must be positive") }
        if let height, height <= 0 { throw ValidationError("--height must be positive") }
        if !(strength > 0 && strength <= 1) { throw ValidationError("--strength must be in (0, 1] (got \(strength))") }
    }

    func run() throws {
        if let threads { setThreadCount(threads) }
        let started = Date()
        let text = try validatedText(prompt, source: "the prompt")
        let negativeText = try negative.map { try validatedText($0, source: "--negative") }
        let modelPath = try model ?? defaultModelPath()
        let loras = try lora.map { try LoRASpec(parsing: $0) }
        let options = ModelLoadOptions(vae: vae.map { URL(fileURLWithPath: $0) }, loras: loras,
                                       tokenizer: TokenizerLoadOptions(extraUserDictionaries: userDic),
                                       configFolder: config.map { URL(fileURLWithPath: $0) },
                                       bundledTokenizers: bundledPath("Models/tokenizers", marker: "clip/vocab.json"))
        let initPicture = try initImage.map { path -> RGB8Image in
            do { return try readPNG(URL(fileURLWithPath: path)).image } catch {
                throw PipelineError.invalidInitImage(path: path, reason: error.localizedDescription)
            }
        }

        let model = try DiffusionModel.load(modelPath, options: options)
        if threads == nil, let preferred = model.preferredThreadCount { setThreadCount(preferred) }
        let loadSeconds = Date().timeIntervalSince(started)
        let defaults = model.samplingDefaults
        let chosenSampler = sampler ?? defaults.sampler
        let guidance = cfg ?? defaults.guidanceScale
        let size = model.defaultSize
        let w = width ?? initPicture.map { $0.width / model.sizeMultiple * model.sizeMultiple } ?? size
        let h = height ?? initPicture.map { $0.height / model.sizeMultiple * model.sizeMultiple } ?? size
        let firstSeed = seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        if let cfg, cfg > 1, defaults.guidanceScale <= 1 {
            warn("this model is distilled to sample without guidance (its default --cfg is \(formatCFG(defaults.guidanceScale))); "
                 + "--cfg \(formatCFG(cfg)) doubles the UNet work and may overcook the image")
        }
        if guidance <= 1, let negativeText, !negativeText.isEmpty {
            warn("--negative is ignored: guidance is off (--cfg \(formatCFG(guidance)) <= 1)")
        }

        // Fail before computing: every output must be writable.
        let seeds = (0..<count).map { firstSeed &+ UInt64($0) }
        let files = try outputFiles(seeds: seeds)
        for file in files { try checkWritable(file) }

        let request = GenerationRequest(
            prompt: text, negativePrompt: negativeText, sampler: chosenSampler, steps: steps ?? defaults.steps,
            guidanceScale: guidance, eta: eta, seed: firstSeed, count: count, batchSize: batch, width: w, height: h,
            initImage: initPicture, strength: strength)
        let hash = try ModelHash.short(files: model.identityFiles)
        var bar = ProgressLine(enabled: !quiet)
        let result = try model.generate(request, warn: warn) { bar.update($0) }
        bar.finish()

        for (i, image) in result.images.enumerated() {
            var extra: [(key: String, value: String)] = []
            if initPicture != nil { extra.append(("Denoising strength", String(strength))) }
            for spec in loras { extra.append(("Lora", "\(URL(fileURLWithPath: spec.path).lastPathComponent):\(spec.scale)")) }
            if let vae { extra.append(("VAE", URL(fileURLWithPath: vae).lastPathComponent)) }
            extra.append(("Version", "jpgen \(jpgenVersion)"))
            let parameters = GenerationParameters(
                prompt: text, negativePrompt: negativeText ?? "", steps: request.steps,
                sampler: displayName(sampler: chosenSampler), cfgScale: guidance, seed: result.seeds[i],
                width: w, height: h, modelHash: hash, model: model.name, extra: extra)
            try writePNG(image, to: files[i], text: [parameters.pngText])
        }
        let total = Date().timeIntervalSince(started)
        if json {
            let report = GenerateReport(
                files: files.map { $0.path }, seeds: result.seeds, model: model.name, modelHash: hash,
                sampler: chosenSampler, steps: request.steps, cfg: guidance, width: w, height: h,
                seconds: .init(load: loadSeconds, encode: result.times.encode, denoise: result.times.denoise,
                               decode: result.times.decode, total: total))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            for file in files { print(file.path) }
        }
    }

    /// --output as given (one image), with -SEED per image (several), or jpgen-SEED.png not yet taken.
    func outputFiles(seeds: [UInt64]) throws -> [URL] {
        guard let output else {
            return seeds.map { seed in
                var url = URL(fileURLWithPath: "jpgen-\(seed).png")
                var n = 2
                while FileManager.default.fileExists(atPath: url.path) {
                    url = URL(fileURLWithPath: "jpgen-\(seed)-\(n).png")
                    n += 1
                }
                return url
            }
        }
        let url = URL(fileURLWithPath: output)
        if seeds.count == 1 { return [url] }
        let ext = url.pathExtension.isEmpty ? "png" : url.pathExtension
        let stem = url.deletingPathExtension().lastPathComponent
        return seeds.map { url.deletingLastPathComponent().appendingPathComponent("\(stem)-\($0).\(ext)") }
    }
}

/// Creates and removes a file beside `url`, so an unwritable place fails before any work.
func checkWritable(_ url: URL) throws {
    let dir = url.deletingLastPathComponent()
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
        throw PipelineError.unwritableOutput(path: url.path, reason: "the folder \(dir.path) does not exist")
    }
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
        throw PipelineError.unwritableOutput(path: url.path, reason: "it is a folder")
    }
    let probe = dir.appendingPathComponent(".jpgen-write-test-\(getpid())")
    let fd = open(probe.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw PipelineError.unwritableOutput(path: url.path, reason: String(cString: strerror(errno))) }
    close(fd)
    unlink(probe.path)
}

/// The bundled demo model: $JPGEN_MODEL, else Models/demo-lcm of the repository.
func defaultModelPath() throws -> String {
    if let env = ProcessInfo.processInfo.environment["JPGEN_MODEL"], !env.isEmpty { return env }
    if let found = bundledPath("Models/demo-lcm", marker: "model_index.json") { return found.path }
    throw ValidationError("no --model given and the bundled demo model (Models/demo-lcm) was not found; "
                          + "run from the repository or set JPGEN_MODEL")
}

/// A bundled folder (containing `marker`) found from the executable's folder upwards (a build in
/// .build/release/ of this repository) or from the working directory upwards.
func bundledPath(_ relative: String, marker: String) -> URL? {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for start in [executable, URL(fileURLWithPath: FileManager.default.currentDirectoryPath)] {
        var dir = start.standardizedFileURL
        for _ in 0..<8 {
            let candidate = dir.appendingPathComponent(relative)
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent(marker).path) { return candidate }
            dir.deleteLastPathComponent()
        }
    }
    return nil
}

/// The web UI's sampler names, for the PNG text.
func displayName(sampler: String) -> String {
    switch sampler {
    case "lcm": return "LCM"
    case "tcd": return "TCD"
    case "euler": return "Euler"
    case "euler_a": return "Euler a"
    case "dpmpp_2m": return "DPM++ 2M"
    case "dpmpp_2m_karras": return "DPM++ 2M Karras"
    case "ddim": return "DDIM"
    default: return sampler
    }
}

func formatCFG(_ x: Float) -> String { x == x.rounded() ? String(Int(x)) : String(x) }

func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

struct GenerateReport: Encodable {
    struct Seconds: Encodable { let load, encode, denoise, decode, total: Double }
    let files: [String]
    let seeds: [UInt64]
    let model: String
    let modelHash: String
    let sampler: String
    let steps: Int
    let cfg: Float
    let width: Int
    let height: Int
    let seconds: Seconds

    enum CodingKeys: String, CodingKey {
        case files, seeds, model, modelHash = "model_hash", sampler, steps, cfg, width, height, seconds
    }
}

/// "image 1/2  step 3/4  0.52 s/step  ETA 4.2 s" on one stderr line.
struct ProgressLine {
    let enabled: Bool
    var stepSeconds: [Double] = []
    var shown = false

    mutating func update(_ p: StepProgress) {
        guard enabled else { return }
        stepSeconds.append(p.secondsThisStep)
        let mean = stepSeconds.reduce(0, +) / Double(stepSeconds.count)
        let batches = (p.count + p.images.count - 1) / max(p.images.count, 1)
        let batchIndex = p.images.lowerBound / max(p.images.count, 1)
        let remaining = Double((batches - batchIndex - 1) * p.steps + (p.steps - p.step)) * mean
        let images = p.images.count == 1 ? "image \(p.images.lowerBound + 1)/\(p.count)"
            : "images \(p.images.lowerBound + 1)-\(p.images.upperBound)/\(p.count)"
        let line = "\r\(images)  step \(p.step)/\(p.steps)  " + String(format: "%.2f s/step  ETA %.1f s ", mean, remaining)
        FileHandle.standardError.write(Data(line.utf8))
        shown = true
    }

    mutating func finish() {
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
