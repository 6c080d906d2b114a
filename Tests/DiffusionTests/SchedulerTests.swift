import Foundation
import Kernels
import SafeTensors
import XCTest

@testable import Diffusion

/// Samplers against diffusers' schedulers (Tools/fixtures/schedulers.py): each driven by the dummy model
/// of diffusers' scheduler tests from `dummy_sample_deter * init_noise_sigma`, stochastic steps drawing
/// from TorchGenerator with the fixture's seed. Timesteps must be equal; sigmas, init_noise_sigma and the
/// sample after every step within 1e-5 * max(1, |expected|).
final class SchedulerTests: XCTestCase {
    struct Case: Decodable {
        let sampler: String
        let steps: Int
        let eta: Float?
        let seed: UInt64
        let timesteps: [Float]
        let sigmas: [Float]
        let init_noise_sigma: Float
    }
    struct Fixture: Decodable { let diffusers: String; let cases: [Case] }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Diffusion")
    static let tolerance: Float = 1e-5

    /// diffusers' dummy_sample_deter: element [b, c, h, w] = index of (c, h, w, b) in a [3, 8, 8, 4] arange, / 768.
    static func dummySample() -> Tensor {
        Tensor(shape: [4, 3, 8, 8]) { out in
            var i = 0
            for b in 0..<4 { for c in 0..<3 { for h in 0..<8 { for w in 0..<8 {
                out[i] = Float(((c * 8 + h) * 8 + w) * 4 + b) / 768
                i += 1
            } } } }
        }
    }

    /// diffusers' dummy_model: sample * t / (t + 1), t as float32.
    static func dummyModel(_ x: Tensor, _ t: Float) -> Tensor {
        samplerMap(x) { $0 * t / (t + 1) }
    }

    func check(_ sampler: String) throws {
        let jsonURL = Self.fixtures.appendingPathComponent("schedulers.json")
        let data = try Data(contentsOf: jsonURL)
        let fixture = try JSONDecoder().decode(Fixture.self, from: data)
        let raw = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let rawCases = raw["cases"] as! [[String: Any]]
        let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("schedulers.safetensors"))
        var checked = 0, worst: Float = 0
        for (i, c) in fixture.cases.enumerated() where c.sampler == sampler {
            let configData = try JSONSerialization.data(withJSONObject: rawCases[i]["config"]!)
            let config = try SchedulerConfig.decode(configData, file: "case \(i)")
            let label = "case \(i): \(c.sampler) \(c.steps) steps \(String(data: configData, encoding: .utf8)!)"
            var s = try makeSampler(name: c.sampler, config: config, steps: c.steps, eta: c.eta)
            let rawConfig = rawCases[i]["config"] as! [String: Any]
            let karras = rawConfig["use_karras_sigmas"] as? Bool ?? false
            let zeroSNR = rawConfig["rescale_betas_zero_snr"] as? Bool ?? false
            if karras && c.sampler == "euler" {
                // Euler + Karras: fractional timesteps through numpy's float32 log, which is not correctly
                // rounded (197 of SDXL's 1000 log-sigmas are an ulp off the exact value): within 1e-6 relative.
                XCTAssertEqual(s.timesteps.count, c.timesteps.count, label)
                for (a, b) in zip(s.timesteps, c.timesteps) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b)), label) }
            } else {
                // Timesteps: equal.
                XCTAssertEqual(s.timesteps, c.timesteps, label)
            }
            // Sigmas and init_noise_sigma: within 1e-5 relative (float32 rounding of the same formulas).
            XCTAssertEqual(s.sigmas.count, c.sigmas.count, label)
            for (a, b) in zip(s.sigmas, c.sigmas) {
                XCTAssertEqual(a, b, accuracy: Self.tolerance * max(1, abs(b)), "\(label): sigmas \(s.sigmas) vs \(c.sigmas)")
            }
            XCTAssertEqual(s.initNoiseSigma, c.init_noise_sigma, accuracy: Self.tolerance * max(1, c.init_noise_sigma), label)
            guard s.timesteps.count == c.timesteps.count else { continue }
            // Samples: 1e-5 * max(1, |expected|). Zero terminal SNR with sigmas (Euler): the first step starts at
            // sigma = 4096, which multiplies float32 rounding (torch's sqrt is not correctly rounded on AVX-512:
            // ~20% of values an ulp off) by ~4096; there the bound is 1e-7 * 4096 = 4.1e-4 * max(1, |expected|).
            let tolerance = zeroSNR && !c.sigmas.isEmpty ? 1e-7 * 4096 : Self.tolerance
            var generator = TorchGenerator(seed: c.seed)
            var x = samplerMap(Self.dummySample()) { $0 * s.initNoiseSigma }
            for k in s.timesteps.indices {
                let eps = Self.dummyModel(s.scaleModelInput(x, step: k), s.timesteps[k])
                x = try s.step(modelOutput: eps, step: k, sample: x, generator: &generator)
                let want = try expected.tensor("case\(i).step\(k)").scalars
                var caseWorst: Float = 0, bad = 0
                for (a, b) in zip(x.scalars, want) {
                    let d = abs(a - b)
                    caseWorst = max(caseWorst, d / max(1, abs(b)))
                    if !(d <= tolerance * max(1, abs(b))) { bad += 1 }
                }
                worst = max(worst, caseWorst)
                // Every element within the case's tolerance.
                XCTAssertEqual(bad, 0, "\(label): step \(k): \(bad) values off, largest scaled difference \(caseWorst)")
                if bad > 0 { break }
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 2, "fixture cases for \(sampler)")
        print("\(sampler): \(checked) cases, largest difference \(worst) (x max(1, |expected|))")
    }

    /// img2img: start step from the strength, add_noise at that step, then the remaining steps, against diffusers'
    /// img2img order (set_begin_index). Same tolerance: 1e-5 * max(1, |expected|).
    func testImg2ImgMatchesDiffusers() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("schedulers.json"))
        let raw = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let runs = raw["img2img"] as! [[String: Any]]
        let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("schedulers.safetensors"))
        XCTAssertGreaterThanOrEqual(runs.count, 7)
        for (i, run) in runs.enumerated() {
            let name = run["sampler"] as! String, steps = run["steps"] as! Int
            let config = try SchedulerConfig.decode(JSONSerialization.data(withJSONObject: run["config"]!))
            var s = try makeSampler(name: name, config: config, steps: steps, eta: (run["eta"] as? Double).map { Float($0) },
                                    strength: run["strength"] as! Double)
            let start = s.startStep
            XCTAssertEqual(start, run["start"] as? Int, "img2img \(i) \(name)")
            XCTAssertEqual(s.timesteps, (run["timesteps"] as! [Double]).map { Float($0) }, "img2img \(i) \(name)")
            var generator = TorchGenerator(seed: (run["seed"] as! NSNumber).uint64Value)
            let noise = generator.randn([4, 3, 8, 8])
            var x = s.addNoise(Self.dummySample(), noise: noise, step: start)
            var compared = [("noised", x, "img2img\(i).noised")]
            for k in start..<steps {
                let eps = Self.dummyModel(s.scaleModelInput(x, step: k), s.timesteps[k])
                x = try s.step(modelOutput: eps, step: k, sample: x, generator: &generator)
                compared.append(("step \(k)", x, "img2img\(i).step\(k - start)"))
            }
            for (what, ours, key) in compared {
                let want = try expected.tensor(key).scalars
                let bad = zip(ours.scalars, want).filter { !(abs($0 - $1) <= Self.tolerance * max(1, abs($1))) }.count
                XCTAssertEqual(bad, 0, "img2img \(i) \(name) \(what)")
            }
        }
    }

    /// Timestep grids for 1-20, 25, 30, 40, 50, 64 and 100 steps, every spacing: timesteps equal
    /// (Euler + Karras: 1e-6 relative, see above), sigmas within 1e-5 * max(1, |expected|).
    func testTimestepGridsMatchDiffusers() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("schedulers.json"))
        let raw = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let grids = raw["grids"] as! [[String: Any]]
        var compared = 0
        for grid in grids {
            let name = grid["sampler"] as! String
            let rawConfig = grid["config"] as! [String: Any]
            let config = try SchedulerConfig.decode(JSONSerialization.data(withJSONObject: rawConfig))
            let fractional = name == "euler" && (rawConfig["use_karras_sigmas"] as? Bool ?? false)
            for run in grid["runs"] as! [[String: Any]] {
                let steps = run["steps"] as! Int
                let label = "\(name) \(rawConfig) \(steps) steps"
                let s = try makeSampler(name: name, config: config, steps: steps)
                let timesteps = (run["timesteps"] as! [Double]).map { Float($0) }
                let sigmas = (run["sigmas"] as! [Double]).map { Float($0) }
                if fractional {
                    XCTAssertEqual(s.timesteps.count, timesteps.count, label)
                    for (a, b) in zip(s.timesteps, timesteps) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b)), label) }
                } else {
                    XCTAssertEqual(s.timesteps, timesteps, label)
                }
                XCTAssertEqual(s.sigmas.count, sigmas.count, label)
                for (a, b) in zip(s.sigmas, sigmas) { XCTAssertEqual(a, b, accuracy: Self.tolerance * max(1, abs(b)), label) }
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 300)
    }

    func testLCMMatchesDiffusers() throws { try check("lcm") }
    func testTCDMatchesDiffusers() throws { try check("tcd") }
    func testEulerMatchesDiffusers() throws { try check("euler") }
    func testEulerAncestralMatchesDiffusers() throws { try check("euler_a") }
    func testDPMSolver2MMatchesDiffusers() throws { try check("dpmpp_2m") }
    func testDPMSolver2MKarrasMatchesDiffusers() throws { try check("dpmpp_2m_karras") }
    func testDDIMMatchesDiffusers() throws { try check("ddim") }
}
