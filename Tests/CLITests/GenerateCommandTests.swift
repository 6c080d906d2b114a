// `jpgen generate` end to end, through the real executable: tiny random-weight diffusers pipelines
// (Tools/fixtures/pipelines.py: SD1 and SDXL, CFG with and without a negative prompt, LCM, Euler,
// Euler ancestral, DPM++ 2M (Karras), DDIM, img2img, a PEFT-format and a kohya-format LoRA) rendered
// by diffusers with per-image generators; jpgen with the same settings must give images with a
// PSNR of at least 40 dB against diffusers' PNGs. Then the PNG's parameters chunk, the demo model
// default, --json, and every bad-input case of the command.

import Foundation
import Imaging
import XCTest

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../Fixtures/Pipelines").standardizedFileURL

struct PipelineCase: Decodable {
    let name, model, prompt, sampler: String
    let negative: String?
    let steps, seed, count, batch, width, height: Int
    let cfg: Double
    let strength: Double
    let lora: [[LoRAEntry]]
    let init_image: String?
    let config: String?
    let expected: [String]

    enum LoRAEntry: Decodable {
        case path(String), scale(Double)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .path(s) } else { self = .scale(try c.decode(Double.self)) }
        }
    }

    var loraArguments: [String] {
        lora.flatMap { pair -> [String] in
            guard case .path(let p) = pair[0], case .scale(let s) = pair[1] else { return [] }
            return ["--lora", fixtures.appendingPathComponent(p).path + ":\(s)"]
        }
    }
}

/// 10 log10(255^2 / MSE) over all channels; +inf for identical images.
func psnr(_ a: RGB8Image, _ b: RGB8Image) -> Double {
    precondition(a.width == b.width && a.height == b.height)
    var sum = 0.0
    for i in a.pixels.indices {
        let d = Double(a.pixels[i]) - Double(b.pixels[i])
        sum += d * d
    }
    let mse = sum / Double(a.pixels.count)
    return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
}

final class GenerateCommandTests: XCTestCase {
    var workDir: URL!

    override func setUpWithError() throws {
        workDir = FileManager.default.temporaryDirectory.appendingPathComponent("jpgen-generate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: workDir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: workDir)
    }

    func testImagesEqualDiffusers() throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("cases.json"))
        let cases = try JSONDecoder().decode([PipelineCase].self, from: data)
        XCTAssertGreaterThanOrEqual(cases.count, 12)
        for c in cases {
            let output = workDir.appendingPathComponent(c.name + ".png")
            var args = [c.prompt, "--model", fixtures.appendingPathComponent(c.model).path,
                        "--sampler", c.sampler, "--steps", "\(c.steps)", "--cfg", "\(c.cfg)", "--seed", "\(c.seed)",
                        "--count", "\(c.count)", "--batch", "\(c.batch)", "--width", "\(c.width)", "--height", "\(c.height)",
                        "--output", output.path, "--quiet", "--json"]
            if let negative = c.negative { args += ["--negative", negative] }
            if let config = c.config { args += ["--config", fixtures.appendingPathComponent(config).path] }
            if let initImage = c.init_image {
                args += ["--init-image", fixtures.appendingPathComponent(initImage).path, "--strength", "\(c.strength)"]
            }
            args += c.loraArguments
            let result = try runJPGen(args)
            XCTAssertEqual(result.status, 0, "\(c.name): \(result.stderr)")
            guard result.status == 0 else { continue }
            let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
            let files = report["files"] as! [String]
            XCTAssertEqual(files.count, c.expected.count, c.name)
            XCTAssertEqual(report["seeds"] as? [Int], (0..<c.count).map { c.seed + $0 }, c.name)
            for (file, expected) in zip(files, c.expected) {
                let ours = try readPNG(URL(fileURLWithPath: file))
                let reference = try readPNG(fixtures.appendingPathComponent(expected)).image
                let value = psnr(ours.image, reference)
                XCTAssertGreaterThanOrEqual(value, 40, "\(c.name) \(expected): PSNR \(value) dB")
                // The parameters chunk names the prompt, seed, sampler, steps and model.
                let text = try XCTUnwrap(ours.text("parameters"), c.name)
                XCTAssertTrue(text.hasPrefix(c.prompt), text)
                XCTAssertTrue(text.contains("Steps: \(c.steps)"), text)
                XCTAssertTrue(text.contains("Size: \(c.width)x\(c.height)"), text)
                XCTAssertTrue(text.contains("Model: \(c.model.replacingOccurrences(of: ".safetensors", with: ""))"), text)
                XCTAssertTrue(text.contains("Model hash: "), text)
                if let negative = c.negative { XCTAssertTrue(text.contains("Negative prompt: \(negative)"), text) }
            }
        }
    }

    /// Defaults: no --model is the bundled demo model with its few-step sampler; the PNG records it.
    func testDemoModelDefaultsAndParameters() throws {
        let output = workDir.appendingPathComponent("demo.png")
        let result = try runJPGen(["江ノ島と富士山が見える風景", "--seed", "42", "--output", output.path, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("step 4/4"), result.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(report["sampler"] as? String, "lcm")
        XCTAssertEqual(report["steps"] as? Int, 4)
        XCTAssertEqual(report["model"] as? String, "demo-lcm")
        let seconds = try XCTUnwrap(report["seconds"] as? [String: Double])
        for stage in ["load", "encode", "denoise", "decode", "total"] { XCTAssertNotNil(seconds[stage], stage) }
        let png = try readPNG(output)
        XCTAssertEqual(png.image.width, 64)
        let text = try XCTUnwrap(png.text("parameters"))
        XCTAssertTrue(text.hasPrefix("江ノ島と富士山が見える風景\nSteps: 4, Sampler: LCM, CFG scale: 1, Seed: 42, Size: 64x64, Model hash: "), text)
        XCTAssertTrue(text.contains("Model: demo-lcm"), text)

        // The same seed gives the same image; the next seed another.
        let again = workDir.appendingPathComponent("again.png")
        XCTAssertEqual(try runJPGen(["江ノ島と富士山が見える風景", "--seed", "42", "-o", again.path, "--quiet"]).status, 0)
        XCTAssertEqual(try readPNG(again).image, png.image)
        let other = workDir.appendingPathComponent("other.png")
        XCTAssertEqual(try runJPGen(["江ノ島と富士山が見える風景", "--seed", "43", "-o", other.path, "--quiet"]).status, 0)
        XCTAssertNotEqual(try readPNG(other).image, png.image)
    }

    func testCountNamesFilesBySeed() throws {
        let output = workDir.appendingPathComponent("many.png")
        let result = try runJPGen(["夜の五重塔と月", "--seed", "7", "--count", "3", "--batch", "2", "-o", output.path, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for seed in 7...9 {
            let file = workDir.appendingPathComponent("many-\(seed).png")
            XCTAssertTrue(result.stdout.contains(file.path), result.stdout)
            XCTAssertTrue(try readPNG(file).text("parameters")!.contains("Seed: \(seed)"))
        }
    }

    func testBadInput() throws {
        let out = workDir.appendingPathComponent("x.png").path
        func fails(_ args: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let r = try runJPGen(args)
            XCTAssertNotEqual(r.status, 0, "expected failure for \(args)", file: file, line: line)
            XCTAssertTrue(r.stderr.contains(expected), "stderr for \(args): \(r.stderr)", file: file, line: line)
        }
        try fails(["富士山", "--sampler", "plms", "-o", out], "valid: lcm, tcd, euler, euler_a, dpmpp_2m, dpmpp_2m_karras, ddim")
        try fails(["富士山", "--steps", "0", "-o", out], "--steps must be at least 1")
        try fails(["富士山", "--width", "60", "-o", out], "multiples of 16")
        try fails(["富士山", "--width", "16384", "--height", "16384", "-o", out], "needs about")
        try fails(["富士山", "--model", workDir.path, "-o", out], "model_index.json")
        try fails(["富士山", "--model", "/nonexistent/model", "-o", out], "model not found: /nonexistent/model")
        try fails(["富士山", "-o", "/nonexistent/dir/x.png"], "the folder /nonexistent/dir does not exist")
        try fails(["富士山", "--strength", "0", "-o", out], "--strength must be in (0, 1]")
        try fails(["富士山", "--lora", "/nonexistent.safetensors", "-o", out], "LoRA /nonexistent.safetensors: no such file")
        try fails(["富士山", "--model", fixtures.appendingPathComponent("init.png").path, "-o", out], "must be a .safetensors file")
        let pickle = workDir.appendingPathComponent("model.ckpt")
        try Data("x".utf8).write(to: pickle)
        try fails(["富士山", "--model", pickle.path, "-o", out], "pickle checkpoints are never loaded")
        try fails(["富士山", "--init-image", fixtures.appendingPathComponent("cases.json").path, "-o", out], "init image")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing is written on failure")

        // A model folder missing a part names it.
        let broken = workDir.appendingPathComponent("broken")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("sd1"), to: broken)
        try FileManager.default.removeItem(at: broken.appendingPathComponent("unet"))
        try fails(["富士山", "--model", broken.path, "-o", out], "the unet part is missing")

        // Warnings: guidance on a model distilled without it; a negative prompt without guidance; a long prompt.
        let warned = try runJPGen(["富士山", "--cfg", "3", "--negative", "雨", "--seed", "1", "-o", out, "--quiet"])
        XCTAssertEqual(warned.status, 0, warned.stderr)
        XCTAssertTrue(warned.stderr.contains("distilled to sample without guidance"), warned.stderr)
        let ignored = try runJPGen(["富士山", "--negative", "雨", "--seed", "1", "-o", out, "--quiet"])
        XCTAssertTrue(ignored.stderr.contains("--negative is ignored"), ignored.stderr)
        let long = try runJPGen([String(repeating: "富士山と海、", count: 20), "--seed", "1", "-o", out, "--quiet"])
        XCTAssertEqual(long.status, 0, long.stderr)
        XCTAssertTrue(long.stderr.contains("longer than text_encoder's limit of 32 tokens"), long.stderr)
    }

    /// `jpgen inspect FOLDER`: family, defaults, parts with parameter counts and dtypes.
    func testInspectModelFolder() throws {
        let r = try runJPGen(["inspect", fixtures.appendingPathComponent("sdxl").path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(object["family"] as? String, "sdxl")
        XCTAssertEqual(object["pipeline"] as? String, "StableDiffusionXLPipeline")
        let parts = object["parts"] as! [[String: Any]]
        XCTAssertEqual(Set(parts.map { $0["name"] as! String }),
                       ["scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae"])
        let unet = parts.first { $0["name"] as? String == "unet" }!
        XCTAssertGreaterThan(unet["parameters"] as! Int, 10_000)
        XCTAssertEqual((unet["config"] as! [String: String])["addition_embed_type"], "text_time")
        let text = try runJPGen(["inspect", fixtures.appendingPathComponent("sd1_lcm_distilled").path])
        XCTAssertTrue(text.stdout.contains("defaults: sampler lcm, 4 steps, cfg 8.5"), text.stdout)
        XCTAssertTrue(text.stdout.contains("family: custom (cross-attention 32)"), text.stdout)
    }
}
