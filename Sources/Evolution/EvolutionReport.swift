// evolution.md and evolution.svg in the run folder: the fitness per generation (best, mean, best so
// far, every trial as a dot), the best candidate's parameters, and links to the best recipe and the
// comparison report. Drawn from the trial store alone, so it can be redrawn at any time.

import Foundation

public enum EvolutionReport {
    /// Writes evolution.md and evolution.svg into `folder`; returns the Markdown file.
    @discardableResult
    public static func write(store: TrialStore, space: SearchSpace, title: String, to folder: URL,
                             sections: String = "", links: [(String, String)] = []) throws -> URL {
        let generations = try store.generations()
        let trials = try store.allTrials()
        let markdownURL = folder.appendingPathComponent("evolution.md")
        let svgURL = folder.appendingPathComponent("evolution.svg")
        try EvolveOutputs.write(chart(generations: generations, trials: trials), to: svgURL)

        var md = "# \(title)\n\n"
        md += "\(trials.count) candidates evaluated over \(generations.count) generations. "
        md += "Fitness: mean CLIPScore over the search prompts and seeds, less penalties (higher is better).\n\n"
        md += "![fitness per generation](evolution.svg)\n\n"
        md += "| generation | best | mean | best so far | seconds |\n| --- | --- | --- | --- | --- |\n"
        for g in generations {
            md += "| \(g.generation) | \(f4(g.bestFitness)) | \(f4(g.meanFitness)) | \(f4(g.bestSoFar)) | \(String(format: "%.1f", g.seconds)) |\n"
        }
        if let best = try store.bestTrial() {
            let values = (try? JSONDecoder().decode([String: Double].self, from: Data(best.parameters.utf8))) ?? [:]
            md += "\n## Best candidate\n\nGeneration \(best.generation), candidate \(best.candidate), fitness \(f4(best.fitness)).\n\n"
            md += "| parameter | value | range | initial |\n| --- | --- | --- | --- |\n"
            for p in space.parameters {
                md += "| \(p.name) | \(values[p.name].map(f4) ?? "-") | [\(p.lower), \(p.upper)] | \(p.initial) |\n"
            }
        }
        md += sections.isEmpty ? "" : "\n" + sections
        if !links.isEmpty {
            md += "\n## Files\n\n" + links.map { "- [\($0.0)](\($0.1))" }.joined(separator: "\n") + "\n"
        }
        try EvolveOutputs.write(md, to: markdownURL)
        return markdownURL
    }

    /// A line chart of best and mean fitness per generation over the dots of every trial, as SVG.
    static func chart(generations: [GenerationRecord], trials: [TrialRecord]) -> String {
        let width = 640.0, height = 320.0, left = 60.0, right = 20.0, top = 20.0, bottom = 40.0
        let values = trials.map(\.fitness) + generations.flatMap { [$0.bestFitness, $0.meanFitness] }
        var low = values.min() ?? 0, high = values.max() ?? 1
        if high - low < 1e-9 { low -= 0.5; high += 0.5 }
        let count = max(generations.count, trials.map(\.generation).max() ?? 1, 1)
        func x(_ g: Int) -> Double { left + (width - left - right) * (count == 1 ? 0.5 : Double(g - 1) / Double(count - 1)) }
        func y(_ v: Double) -> Double { top + (height - top - bottom) * (1 - (v - low) / (high - low)) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for k in 0...4 {
            let v = low + (high - low) * Double(k) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(y(v))\" y2=\"\(y(v))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"4\" y=\"\(y(v) + 4)\">\(f4(v))</text>\n"
        }
        for g in 1...count { svg += "<text x=\"\(x(g) - 4)\" y=\"\(height - bottom + 16)\">\(g)</text>" }
        svg += "\n<text x=\"\(width / 2 - 30)\" y=\"\(height - 6)\">generation</text>\n"
        for t in trials {
            svg += "<circle cx=\"\(x(t.generation))\" cy=\"\(y(t.fitness))\" r=\"2.5\" fill=\"#9bb7d9\"/>"
        }
        func polyline(_ points: [(Int, Double)], color: String, name: String) -> String {
            guard !points.isEmpty else { return "" }
            let coords = points.map { "\(x($0.0)),\(y($0.1))" }.joined(separator: " ")
            return "\n<polyline points=\"\(coords)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"><title>\(name)</title></polyline>"
        }
        svg += polyline(generations.map { ($0.generation, $0.meanFitness) }, color: "#4a7ab7", name: "mean")
        svg += polyline(generations.map { ($0.generation, $0.bestFitness) }, color: "#d9534f", name: "best")
        svg += polyline(generations.map { ($0.generation, $0.bestSoFar) }, color: "#333", name: "best so far")
        svg += "\n<text x=\"\(left + 8)\" y=\"\(top + 12)\" fill=\"#d9534f\">best</text>"
        svg += "<text x=\"\(left + 48)\" y=\"\(top + 12)\" fill=\"#4a7ab7\">mean</text>"
        svg += "<text x=\"\(left + 92)\" y=\"\(top + 12)\" fill=\"#333\">best so far</text>\n</svg>\n"
        return svg
    }

    static func f4(_ v: Double) -> String { String(format: "%.4f", v) }
}
