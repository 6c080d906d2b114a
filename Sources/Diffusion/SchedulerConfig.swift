// SchedulerConfig: a model's `scheduler/scheduler_config.json`, as diffusers' ConfigMixin reads it.
//
// Every field is optional: a saved config names the keys of the class that wrote it, and diffusers'
// `SomeScheduler.from_config(config)` takes the keys the target class knows and that class's own
// defaults for the rest (e.g. `timestep_spacing` defaults to "leading" for DDIM/LCM/TCD but "linspace"
// for the Euler and DPM-Solver schedulers). `resolved(for:)` applies the defaults of one class.

import Foundation

/// Errors of the schedulers: each names the file, key or value at fault and what would be valid.
public enum SchedulerError: LocalizedError, Equatable {
    case missingFile(String)
    case invalidJSON(file: String, detail: String)
    case unknownClassName(file: String, name: String, valid: [String])
    case invalidValue(key: String, value: String, valid: String)
    case unknownSampler(String, valid: [String])
    case invalidSteps(Int, reason: String)
    case stepOutOfRange(step: Int, count: Int)
    case shapeMismatch(expected: [Int], actual: [Int])

    public var errorDescription: String? {
        switch self {
        case .missingFile(let path):
            return "scheduler config not found: \(path)"
        case .invalidJSON(let file, let detail):
            return "\(file): invalid scheduler config: \(detail)"
        case .unknownClassName(let file, let name, let valid):
            return "\(file): unknown _class_name \"\(name)\"; valid: \(valid.joined(separator: ", "))"
        case .invalidValue(let key, let value, let valid):
            return "scheduler config key \(key): unsupported value \(value); valid: \(valid)"
        case .unknownSampler(let name, let valid):
            return "unknown sampler \"\(name)\"; valid: \(valid.joined(separator: ", "))"
        case .invalidSteps(let steps, let reason):
            return "invalid number of steps \(steps): \(reason)"
        case .stepOutOfRange(let step, let count):
            return "step index \(step) is outside the schedule's \(count) steps (0..<\(count))"
        case .shapeMismatch(let expected, let actual):
            return "model output shape \(actual) does not match the sample shape \(expected)"
        }
    }
}

/// The scheduler classes whose configs we read. Ours are the six with a sampler; the others are the
/// diffusers classes a model folder commonly ships (SD1.5: PNDMScheduler), whose config keys are shared.
public let schedulerClassNames = [
    "LCMScheduler", "TCDScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
    "DPMSolverMultistepScheduler", "DDIMScheduler",
    "PNDMScheduler", "DDPMScheduler", "LMSDiscreteScheduler", "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "DPMSolverSinglestepScheduler",
    "DPMSolverSDEScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler",
]

public struct SchedulerConfig: Codable, Equatable {
    public var className: String?
    public var numTrainTimesteps: Int?
    public var betaStart: Double?
    public var betaEnd: Double?
    public var betaSchedule: String?
    public var trainedBetas: [Double]?
    public var predictionType: String?
    public var timestepSpacing: String?
    public var stepsOffset: Int?
    public var rescaleBetasZeroSnr: Bool?
    public var clipSample: Bool?
    public var clipSampleRange: Double?
    public var setAlphaToOne: Bool?
    public var thresholding: Bool?
    public var dynamicThresholdingRatio: Double?
    public var sampleMaxValue: Double?
    // LCM / TCD
    public var originalInferenceSteps: Int?
    public var timestepScaling: Double?
    // Euler / DPM-Solver
    public var useKarrasSigmas: Bool?
    public var useExponentialSigmas: Bool?
    public var useBetaSigmas: Bool?
    public var sigmaMin: Double?
    public var sigmaMax: Double?
    public var interpolationType: String?
    public var timestepType: String?
    public var finalSigmasType: String?
    // DPM-Solver
    public var solverOrder: Int?
    public var algorithmType: String?
    public var solverType: String?
    public var lowerOrderFinal: Bool?
    public var eulerAtFinal: Bool?
    public var useLuLambdas: Bool?
    public var useFlowSigmas: Bool?
    public var lambdaMinClipped: Double?
    public var varianceType: String?

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps"
        case betaStart = "beta_start"
        case betaEnd = "beta_end"
        case betaSchedule = "beta_schedule"
        case trainedBetas = "trained_betas"
        case predictionType = "prediction_type"
        case timestepSpacing = "timestep_spacing"
        case stepsOffset = "steps_offset"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr"
        case clipSample = "clip_sample"
        case clipSampleRange = "clip_sample_range"
        case setAlphaToOne = "set_alpha_to_one"
        case thresholding
        case dynamicThresholdingRatio = "dynamic_thresholding_ratio"
        case sampleMaxValue = "sample_max_value"
        case originalInferenceSteps = "original_inference_steps"
        case timestepScaling = "timestep_scaling"
        case useKarrasSigmas = "use_karras_sigmas"
        case useExponentialSigmas = "use_exponential_sigmas"
        case useBetaSigmas = "use_beta_sigmas"
        case sigmaMin = "sigma_min"
        case sigmaMax = "sigma_max"
        case interpolationType = "interpolation_type"
        case timestepType = "timestep_type"
        case finalSigmasType = "final_sigmas_type"
        case solverOrder = "solver_order"
        case algorithmType = "algorithm_type"
        case solverType = "solver_type"
        case lowerOrderFinal = "lower_order_final"
        case eulerAtFinal = "euler_at_final"
        case useLuLambdas = "use_lu_lambdas"
        case useFlowSigmas = "use_flow_sigmas"
        case lambdaMinClipped = "lambda_min_clipped"
        case varianceType = "variance_type"
    }

    public init() {}

    /// Reads `folder/scheduler_config.json` (`folder` is the model's `scheduler/` folder).
    public static func load(folder: URL) throws -> SchedulerConfig {
        try load(file: folder.appendingPathComponent("scheduler_config.json"))
    }

    public static func load(file: URL) throws -> SchedulerConfig {
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw SchedulerError.missingFile(file.path)
        }
        return try decode(data, file: file.path)
    }

    /// Decodes config JSON; `file` names the source in errors. Python's json writes the bare tokens
    /// Infinity/-Infinity/NaN (e.g. `lambda_min_clipped`), which are read as those values.
    public static func decode(_ data: Data, file: String = "scheduler_config.json") throws -> SchedulerConfig {
        guard var text = String(data: data, encoding: .utf8) else {
            throw SchedulerError.invalidJSON(file: file, detail: "not UTF-8")
        }
        for token in ["-Infinity", "Infinity", "NaN"] {
            text = text.replacingOccurrences(of: ": \(token)", with: ": \"\(token)\"")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let config: SchedulerConfig
        do {
            config = try decoder.decode(SchedulerConfig.self, from: Data(text.utf8))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw SchedulerError.invalidJSON(file: file, detail: "key \(key): \(context.debugDescription)")
        } catch let DecodingError.dataCorrupted(context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw SchedulerError.invalidJSON(file: file, detail: (key.isEmpty ? "" : "key \(key): ") + context.debugDescription)
        } catch {
            throw SchedulerError.invalidJSON(file: file, detail: "\(error)")
        }
        if let name = config.className, !schedulerClassNames.contains(name) {
            throw SchedulerError.unknownClassName(file: file, name: name, valid: schedulerClassNames)
        }
        return config
    }

    /// The sampler name that runs this config's own class, if we have one.
    public var defaultSamplerName: String? {
        switch className {
        case "LCMScheduler": return "lcm"
        case "TCDScheduler": return "tcd"
        case "EulerDiscreteScheduler": return "euler"
        case "EulerAncestralDiscreteScheduler": return "euler_a"
        case "DPMSolverMultistepScheduler": return useKarrasSigmas == true ? "dpmpp_2m_karras" : "dpmpp_2m"
        case "DDIMScheduler": return "ddim"
        default: return nil
        }
    }
}

/// A config with every value present, checked, as one diffusers class reads it.
struct ResolvedSchedulerConfig {
    var numTrainTimesteps: Int
    var betaStart: Double
    var betaEnd: Double
    var betaSchedule: BetaSchedule
    var trainedBetas: [Double]?
    var predictionType: PredictionType
    var timestepSpacing: TimestepSpacing
    var stepsOffset: Int
    var rescaleBetasZeroSnr: Bool
    var clipSample: Bool
    var clipSampleRange: Float
    var setAlphaToOne: Bool
    var thresholding: Bool
    var dynamicThresholdingRatio: Float
    var sampleMaxValue: Float
    var originalInferenceSteps: Int
    var timestepScaling: Float
    var useKarrasSigmas: Bool
    var sigmaMin: Double?
    var sigmaMax: Double?
    var finalSigmasZero: Bool
    var solverOrder: Int
    var secondOrderHeun: Bool
    var lowerOrderFinal: Bool
    var eulerAtFinal: Bool
}

enum BetaSchedule: String, CaseIterable { case linear, scaledLinear = "scaled_linear", squaredcos = "squaredcos_cap_v2" }
enum PredictionType: String, CaseIterable { case epsilon, vPrediction = "v_prediction", sample }
enum TimestepSpacing: String, CaseIterable { case leading, linspace, trailing }

/// The diffusers scheduler classes we sample with; each has its own defaults.
enum SchedulerKind { case lcm, tcd, euler, eulerAncestral, dpmSolver, ddim }

func parseSchedulerEnum<E: RawRepresentable & CaseIterable>(_ type: E.Type, _ value: String?, key: String, default fallback: E) throws -> E
where E.RawValue == String {
    guard let value else { return fallback }
    guard let parsed = E(rawValue: value) else {
        throw SchedulerError.invalidValue(key: key, value: value, valid: E.allCases.map(\.rawValue).joined(separator: ", "))
    }
    return parsed
}

extension SchedulerConfig {
    /// The config as diffusers' `<class>.from_config(config)` sees it: this class's defaults for absent
    /// keys, and an error naming the key for any value we do not implement.
    func resolved(for kind: SchedulerKind) throws -> ResolvedSchedulerConfig {
        let fewStep = kind == .lcm || kind == .tcd
        let sigmaBased = kind == .euler || kind == .eulerAncestral || kind == .dpmSolver
        let train = numTrainTimesteps ?? 1000
        guard train >= 1 else {
            throw SchedulerError.invalidValue(key: "num_train_timesteps", value: "\(train)", valid: "an integer >= 1")
        }
        let offset = stepsOffset ?? 0
        guard offset >= 0 else {
            throw SchedulerError.invalidValue(key: "steps_offset", value: "\(offset)", valid: "an integer >= 0")
        }
        if let betas = trainedBetas, betas.count != train {
            throw SchedulerError.invalidValue(key: "trained_betas", value: "\(betas.count) values",
                                              valid: "num_train_timesteps (\(train)) values")
        }
        let prediction = try parseSchedulerEnum(PredictionType.self, predictionType, key: "prediction_type", default: .epsilon)
        if kind == .eulerAncestral && prediction == .sample {
            // EulerAncestralDiscreteScheduler.step raises NotImplementedError for it.
            throw SchedulerError.invalidValue(key: "prediction_type", value: "sample",
                                              valid: "epsilon, v_prediction (for EulerAncestralDiscreteScheduler)")
        }
        for (key, flag) in [("use_exponential_sigmas", useExponentialSigmas), ("use_beta_sigmas", useBetaSigmas),
                            ("use_lu_lambdas", useLuLambdas), ("use_flow_sigmas", useFlowSigmas)]
        where flag == true && sigmaBased {
            throw SchedulerError.invalidValue(key: key, value: "true", valid: "false (only Karras sigmas are implemented)")
        }
        if sigmaBased, let value = interpolationType, value != "linear" {
            throw SchedulerError.invalidValue(key: "interpolation_type", value: value, valid: "linear")
        }
        if sigmaBased, let value = timestepType, value != "discrete" {
            throw SchedulerError.invalidValue(key: "timestep_type", value: value, valid: "discrete")
        }
        var finalZero = true
        if kind == .euler || kind == .dpmSolver, let value = finalSigmasType {
            guard value == "zero" || value == "sigma_min" else {
                throw SchedulerError.invalidValue(key: "final_sigmas_type", value: value, valid: "zero, sigma_min")
            }
            finalZero = value == "zero"
        }
        var order = 2, heun = false
        if kind == .dpmSolver {
            order = solverOrder ?? 2
            guard order == 1 || order == 2 else {
                throw SchedulerError.invalidValue(key: "solver_order", value: "\(order)", valid: "1, 2")
            }
            // "deis" is mapped to dpmsolver++ by diffusers itself.
            if let value = algorithmType, value != "dpmsolver++", value != "deis" {
                throw SchedulerError.invalidValue(key: "algorithm_type", value: value, valid: "dpmsolver++")
            }
            let solver = solverType ?? "midpoint"
            guard ["midpoint", "heun", "logrho", "bh1", "bh2"].contains(solver) else {
                throw SchedulerError.invalidValue(key: "solver_type", value: solver, valid: "midpoint, heun")
            }
            heun = solver == "heun"
            if let value = varianceType {
                throw SchedulerError.invalidValue(key: "variance_type", value: value, valid: "null")
            }
            if let clip = lambdaMinClipped, clip != -Double.infinity {
                throw SchedulerError.invalidValue(key: "lambda_min_clipped", value: "\(clip)", valid: "-Infinity")
            }
        }
        let ratio = dynamicThresholdingRatio ?? 0.995
        if thresholding == true && !(ratio > 0 && ratio < 1) {
            throw SchedulerError.invalidValue(key: "dynamic_thresholding_ratio", value: "\(ratio)", valid: "a number in (0, 1)")
        }
        let original = originalInferenceSteps ?? 50
        if fewStep && !(original >= 1 && original <= train) {
            throw SchedulerError.invalidValue(key: "original_inference_steps", value: "\(original)",
                                              valid: "1...num_train_timesteps (\(train))")
        }
        return ResolvedSchedulerConfig(
            numTrainTimesteps: train,
            betaStart: betaStart ?? (fewStep ? 0.00085 : 0.0001),
            betaEnd: betaEnd ?? (fewStep ? 0.012 : 0.02),
            betaSchedule: try parseSchedulerEnum(BetaSchedule.self, betaSchedule, key: "beta_schedule",
                                        default: fewStep ? .scaledLinear : .linear),
            trainedBetas: trainedBetas,
            predictionType: prediction,
            timestepSpacing: try parseSchedulerEnum(TimestepSpacing.self, timestepSpacing, key: "timestep_spacing",
                                           default: sigmaBased ? .linspace : .leading),
            stepsOffset: offset,
            rescaleBetasZeroSnr: rescaleBetasZeroSnr ?? false,
            clipSample: clipSample ?? (kind == .ddim),
            clipSampleRange: Float(clipSampleRange ?? 1),
            setAlphaToOne: setAlphaToOne ?? true,
            thresholding: thresholding ?? false,
            dynamicThresholdingRatio: Float(ratio),
            sampleMaxValue: Float(sampleMaxValue ?? 1),
            originalInferenceSteps: original,
            timestepScaling: Float(timestepScaling ?? 10),
            useKarrasSigmas: useKarrasSigmas ?? false,
            sigmaMin: sigmaMin,
            sigmaMax: sigmaMax,
            finalSigmasZero: finalZero,
            solverOrder: order,
            secondOrderHeun: heun,
            lowerOrderFinal: lowerOrderFinal ?? true,
            eulerAtFinal: eulerAtFinal ?? false)
    }
}
