import Foundation
import Kernels
import XCTest

@testable import Diffusion

/// scheduler_config.json reading, diffusers' per-class defaults, and every bad-input error.
final class SchedulerConfigTests: XCTestCase {
    func config(_ json: String) throws -> SchedulerConfig {
        try SchedulerConfig.decode(Data(json.utf8), file: "scheduler_config.json")
    }

    func assertThrows(_ expected: SchedulerError, _ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? SchedulerError, expected, file: file, line: line)
            XCTAssertFalse((error as? LocalizedError)?.errorDescription?.isEmpty ?? true, file: file, line: line)
        }
    }

    func testLoadsADiffusersConfigFolder() throws {
        // As DPMSolverMultistepScheduler.save_pretrained writes it: Python's json emits a bare -Infinity.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = """
        {
          "_class_name": "DPMSolverMultistepScheduler",
          "_diffusers_version": "0.42.1",
          "algorithm_type": "dpmsolver++",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "lambda_min_clipped": -Infinity,
          "num_train_timesteps": 1000,
          "sigma_max": null,
          "solver_order": 2,
          "steps_offset": 1,
          "timestep_spacing": "leading",
          "use_karras_sigmas": true,
          "variance_type": null
        }
        """
        try text.write(to: folder.appendingPathComponent("scheduler_config.json"), atomically: true, encoding: .utf8)
        let loaded = try SchedulerConfig.load(folder: folder)
        XCTAssertEqual(loaded.className, "DPMSolverMultistepScheduler")
        XCTAssertEqual(loaded.lambdaMinClipped, -.infinity)
        XCTAssertEqual(loaded.stepsOffset, 1)
        XCTAssertNil(loaded.sigmaMax)
        XCTAssertEqual(loaded.defaultSamplerName, "dpmpp_2m_karras")
        let sampler = try makeSampler(name: "dpmpp_2m_karras", config: loaded, steps: 4)
        XCTAssertEqual(sampler.timesteps.count, 4)
    }

    func testPerClassDefaults() throws {
        // An empty config: DDIM leading/linear with clipping, Euler linspace, LCM scaled_linear 0.00085..0.012.
        let empty = SchedulerConfig()
        let ddim = try empty.resolved(for: .ddim)
        XCTAssertEqual(ddim.timestepSpacing, .leading)
        XCTAssertTrue(ddim.clipSample)
        XCTAssertEqual(ddim.betaSchedule, .linear)
        let euler = try empty.resolved(for: .euler)
        XCTAssertEqual(euler.timestepSpacing, .linspace)
        XCTAssertFalse(euler.clipSample)
        let lcm = try empty.resolved(for: .lcm)
        XCTAssertEqual(lcm.betaSchedule, .scaledLinear)
        XCTAssertEqual(lcm.betaStart, 0.00085)
        XCTAssertEqual(lcm.originalInferenceSteps, 50)
        // LCM's grid for 4 steps of the default 50 (diffusers: [999, 759, 499, 259]).
        XCTAssertEqual(try makeSampler(name: "lcm", config: empty, steps: 4).timesteps, [999, 759, 499, 259])
        // SDXL-Lightning's trailing grid for 4 steps (diffusers: [999, 749, 499, 249]).
        var lightning = SchedulerConfig()
        lightning.timestepSpacing = "trailing"
        XCTAssertEqual(try makeSampler(name: "euler", config: lightning, steps: 4).timesteps, [999, 749, 499, 249])
    }

    func testUnknownSamplerListsTheValidOnes() {
        assertThrows(.unknownSampler("heun", valid: samplerNames)) {
            try makeSampler(name: "heun", config: SchedulerConfig(), steps: 4)
        }
        XCTAssertTrue(SchedulerError.unknownSampler("heun", valid: samplerNames).errorDescription!.contains("dpmpp_2m_karras"))
    }

    func testStepCounts() {
        for name in samplerNames {
            assertThrows(.invalidSteps(0, reason: "at least 1 step is needed")) {
                try makeSampler(name: name, config: SchedulerConfig(), steps: 0)
            }
            assertThrows(.invalidSteps(1001, reason: "more than num_train_timesteps (1000)")) {
                try makeSampler(name: name, config: SchedulerConfig(), steps: 1001)
            }
        }
        // LCM/TCD cannot take more steps than the distilled schedule has.
        assertThrows(.invalidSteps(51, reason: "more than original_inference_steps (50) of the distilled schedule")) {
            try makeSampler(name: "lcm", config: SchedulerConfig(), steps: 51)
        }
        assertThrows(.invalidSteps(60, reason: "more than original_inference_steps (50) of the distilled schedule")) {
            try makeSampler(name: "tcd", config: SchedulerConfig(), steps: 60)
        }
    }

    func testUnknownConfigValues() throws {
        assertThrows(.invalidValue(key: "beta_schedule", value: "quadratic", valid: "linear, scaled_linear, squaredcos_cap_v2")) {
            try makeSampler(name: "euler", config: config(#"{"beta_schedule": "quadratic"}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "prediction_type", value: "flow", valid: "epsilon, v_prediction, sample")) {
            try makeSampler(name: "ddim", config: config(#"{"prediction_type": "flow"}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "timestep_spacing", value: "middle", valid: "leading, linspace, trailing")) {
            try makeSampler(name: "lcm", config: config(#"{"timestep_spacing": "middle"}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "prediction_type", value: "sample",
                                   valid: "epsilon, v_prediction (for EulerAncestralDiscreteScheduler)")) {
            try makeSampler(name: "euler_a", config: config(#"{"prediction_type": "sample"}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "algorithm_type", value: "sde-dpmsolver++", valid: "dpmsolver++")) {
            try makeSampler(name: "dpmpp_2m", config: config(#"{"algorithm_type": "sde-dpmsolver++"}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "use_exponential_sigmas", value: "true", valid: "false (only Karras sigmas are implemented)")) {
            try makeSampler(name: "euler", config: config(#"{"use_exponential_sigmas": true}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "solver_order", value: "3", valid: "1, 2")) {
            try makeSampler(name: "dpmpp_2m", config: config(#"{"solver_order": 3}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "final_sigmas_type", value: "one", valid: "zero, sigma_min")) {
            try makeSampler(name: "euler", config: config(#"{"final_sigmas_type": "one"}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "trained_betas", value: "2 values", valid: "num_train_timesteps (1000) values")) {
            try makeSampler(name: "ddim", config: config(#"{"trained_betas": [0.1, 0.2]}"#), steps: 4)
        }
        assertThrows(.invalidValue(key: "num_train_timesteps", value: "0", valid: "an integer >= 1")) {
            try SchedulerConfig.decode(Data(#"{"num_train_timesteps": 0}"#.utf8)).resolved(for: .ddim)
        }
        assertThrows(.invalidValue(key: "eta (TCD gamma)", value: "1.5", valid: "a number in [0, 1]")) {
            try makeSampler(name: "tcd", config: SchedulerConfig(), steps: 4, eta: 1.5)
        }
    }

    func testImg2ImgStrength() throws {
        XCTAssertEqual(try makeSampler(name: "euler", config: SchedulerConfig(), steps: 10, strength: 0.6).startStep, 4)
        XCTAssertEqual(try makeSampler(name: "ddim", config: SchedulerConfig(), steps: 10).startStep, 0)
        // LCM keeps floor(50 * 0.5) = 25 distilled timesteps (k - 1 ... 25k - 1, k = 20) and starts at 0.
        let lcm = try makeSampler(name: "lcm", config: SchedulerConfig(), steps: 2, strength: 0.5)
        XCTAssertEqual(lcm.startStep, 0)
        XCTAssertEqual(lcm.timesteps, [499, 259])
        assertThrows(.invalidValue(key: "strength", value: "0.0", valid: "a number in (0, 1]")) {
            try makeSampler(name: "euler", config: SchedulerConfig(), steps: 4, strength: 0)
        }
        assertThrows(.invalidValue(key: "strength", value: "0.1", valid: "at least 1 of the 4 steps left (strength >= 0.25)")) {
            try makeSampler(name: "dpmpp_2m", config: SchedulerConfig(), steps: 4, strength: 0.1)
        }
        assertThrows(.invalidValue(key: "strength", value: "0.05",
                                   valid: "at least 4 of the 50 distilled timesteps kept (strength >= 0.08)")) {
            try makeSampler(name: "lcm", config: SchedulerConfig(), steps: 4, strength: 0.05)
        }
    }

    func testBadFiles() throws {
        assertThrows(.unknownClassName(file: "scheduler_config.json", name: "MyScheduler", valid: schedulerClassNames)) {
            try config(#"{"_class_name": "MyScheduler"}"#)
        }
        XCTAssertThrowsError(try config(#"{"num_train_timesteps": "many"}"#)) { error in
            guard case .invalidJSON(let file, let detail)? = error as? SchedulerError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "scheduler_config.json")
            XCTAssertTrue(detail.contains("num_train_timesteps"), detail)
        }
        XCTAssertThrowsError(try config("{ not json")) { error in
            guard case .invalidJSON? = error as? SchedulerError else { return XCTFail("\(error)") }
        }
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-scheduler-\(UUID().uuidString)")
        assertThrows(.missingFile(missing.appendingPathComponent("scheduler_config.json").path)) {
            try SchedulerConfig.load(folder: missing)
        }
    }

    func testBadStepCalls() throws {
        var sampler = try makeSampler(name: "euler", config: SchedulerConfig(), steps: 2)
        var generator = TorchGenerator(seed: 0)
        let x = Tensor(shape: [1, 4, 2, 2], repeating: 0.5)
        assertThrows(.stepOutOfRange(step: 2, count: 2)) {
            try sampler.step(modelOutput: x, step: 2, sample: x, generator: &generator)
        }
        assertThrows(.shapeMismatch(expected: [1, 4, 2, 2], actual: [1, 4, 2, 3])) {
            try sampler.step(modelOutput: Tensor(shape: [1, 4, 2, 3]), step: 0, sample: x, generator: &generator)
        }
    }
}
