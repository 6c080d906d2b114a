// The verdict of a comparison store: each model's mean score with its 95% confidence interval, and the
// evolved merge's paired difference to it (the same prompt and seed scored for both, so the prompts'
// own spread cancels out), with the 95% interval of the mean difference (Student's t). "Beats" means
// the whole interval lies above zero.

import Evaluation
import Foundation

public struct PairedComparison: Codable, Equatable {
    public var model: String
    public var n: Int
    public var mean: Double
    public var ci95: Double
    /// Mean of (evolved - model) over the cases both have; nil for the evolved model itself.
    public var difference: Double?
    public var differenceCI95: Double?
    public var evolvedBeats: Bool?

    enum CodingKeys: String, CodingKey {
        case model, n, mean, ci95, difference
        case differenceCI95 = "difference_ci95", evolvedBeats = "evolved_beats"
    }

    /// One entry per model in the store (`reference` first), compared with `reference`.
    public static func compare(_ rows: [ImageResult], reference: String = "evolved") -> [PairedComparison] {
        var byModel: [String: [String: Double]] = [:]
        var order: [String] = []
        for row in rows {
            if byModel[row.model] == nil { order.append(row.model) }
            byModel[row.model, default: [:]]["\(row.promptId)\u{0}\(row.seed)"] = row.score
        }
        order = order.filter { $0 == reference } + order.filter { $0 != reference }
        let base = byModel[reference] ?? [:]
        return order.map { name in
            let scores = byModel[name]!
            let own = ScoreSummary(Array(scores.values))
            var entry = PairedComparison(model: name, n: own.n, mean: own.mean, ci95: own.ci95)
            if name != reference, !base.isEmpty {
                let differences = scores.keys.sorted().compactMap { key in base[key].map { $0 - scores[key]! } }
                if !differences.isEmpty {
                    let d = ScoreSummary(differences)
                    entry.difference = d.mean
                    entry.differenceCI95 = d.ci95
                    entry.evolvedBeats = d.mean - d.ci95 > 0
                }
            }
            return entry
        }
    }

    /// A Markdown table of the comparison.
    public static func markdown(_ entries: [PairedComparison], reference: String = "evolved") -> String {
        var out = "| model | n | mean CLIPScore | ± 95% | \(reference) - model (paired) | ± 95% | \(reference) better |\n"
        out += "| --- | --- | --- | --- | --- | --- | --- |\n"
        for e in entries {
            out += "| \(e.model) | \(e.n) | \(String(format: "%.4f", e.mean)) | \(String(format: "%.4f", e.ci95)) | "
            out += (e.difference.map { String(format: "%+.4f", $0) } ?? "-") + " | "
            out += (e.differenceCI95.map { String(format: "%.4f", $0) } ?? "-") + " | "
            out += (e.evolvedBeats.map { $0 ? "yes" : "no" } ?? "-") + " |\n"
        }
        return out
    }
}
