// Per-model summaries of a results store: mean score with its 95% confidence interval, per tag, and
// seconds per image; as a text table for the terminal and as JSON.

import Foundation

public struct ModelSummary: Codable, Equatable {
    public var name: String
    public var hash: String
    public var mean: Double
    public var ci95: Double
    public var n: Int
    public var secondsPerImage: Double
    public var perTag: [String: ScoreSummary]

    enum CodingKeys: String, CodingKey {
        case name, hash, mean, ci95, n
        case secondsPerImage = "seconds_per_image"
        case perTag = "per_tag"
    }
}

/// Summaries per model, in the order the models first appear in `rows`.
public func summarize(_ rows: [ImageResult]) -> [ModelSummary] {
    var order: [String] = []
    var groups: [String: [ImageResult]] = [:]
    for row in rows {
        let key = row.modelHash + "\u{0}" + row.model
        if groups[key] == nil { order.append(key) }
        groups[key, default: []].append(row)
    }
    return order.map { key in
        let group = groups[key]!
        let overall = ScoreSummary(group.map(\.score))
        var byTag: [String: [Double]] = [:]
        for row in group { for tag in row.tagList { byTag[tag, default: []].append(row.score) } }
        return ModelSummary(
            name: group[0].model, hash: group[0].modelHash, mean: overall.mean, ci95: overall.ci95, n: overall.n,
            secondsPerImage: group.map(\.seconds).reduce(0, +) / Double(group.count),
            perTag: byTag.mapValues(ScoreSummary.init))
    }
}

/// A fixed-width table: one line per model, then one line per (model, tag).
public func formatSummaryTable(_ summaries: [ModelSummary]) -> String {
    func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
    let nameWidth = max(5, summaries.map(\.name.count).max() ?? 0) + 2
    var lines = [pad("model", nameWidth) + pad("hash", 14) + pad("n", 7) + pad("mean", 9) + pad("ci95 ±", 9) + "s/image"]
    for s in summaries {
        lines.append(pad(s.name, nameWidth) + pad(String(s.hash.prefix(12)), 14) + pad("\(s.n)", 7)
                     + pad(String(format: "%.4f", s.mean), 9) + pad(String(format: "%.4f", s.ci95), 9)
                     + String(format: "%.3f", s.secondsPerImage))
    }
    let tags = Set(summaries.flatMap(\.perTag.keys)).sorted()
    if !tags.isEmpty {
        lines.append("")
        lines.append(pad("tag", 16) + summaries.map { pad($0.name, max(14, $0.name.count + 2)) }.joined())
        for tag in tags {
            lines.append(pad(tag, 16) + summaries.map { s in
                let cell = s.perTag[tag].map { String(format: "%.3f±%.3f", $0.mean, $0.ci95) } ?? "-"
                return pad(cell, max(14, s.name.count + 2))
            }.joined())
        }
    }
    return lines.joined(separator: "\n")
}
