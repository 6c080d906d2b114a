// Reports of a results store: `report.md` (the summary table) and `report.html` (the table, a contact
// sheet with prompts as rows and models as columns, and a score chart as inline SVG). Both open from disk
// with no server; images are linked by paths relative to the report's folder. Written to temporary files
// and renamed.

import Foundation

public struct ReportFiles {
    public var markdown: URL
    public var html: URL
}

public func writeReport(rows: [ImageResult], title: String, to directory: URL) throws -> ReportFiles {
    do {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
        throw EvaluationError.unreadableFile(path: directory.path, reason: "cannot create the report folder: \(error.localizedDescription)")
    }
    let summaries = summarize(rows)
    let markdown = directory.appendingPathComponent("report.md")
    let html = directory.appendingPathComponent("report.html")
    try atomicWrite(markdownReport(rows: rows, summaries: summaries, title: title), to: markdown)
    try atomicWrite(htmlReport(rows: rows, summaries: summaries, title: title, directory: directory), to: html)
    return ReportFiles(markdown: markdown, html: html)
}

func markdownReport(rows: [ImageResult], summaries: [ModelSummary], title: String) -> String {
    var out = "# \(title)\n\n\(rows.count) images, \(summaries.count) models, "
    out += "\(Set(rows.map(\.promptId)).count) prompts. Scores are CLIPScore (2.5 x max(cos, 0)); "
    out += "± is the half-width of the 95% confidence interval of the mean.\n\n"
    out += "| model | hash | n | mean | ± 95% | s/image |\n| --- | --- | --- | --- | --- | --- |\n"
    for s in summaries {
        out += "| \(s.name) | \(s.hash.prefix(12)) | \(s.n) | \(String(format: "%.4f", s.mean)) | "
        out += "\(String(format: "%.4f", s.ci95)) | \(String(format: "%.3f", s.secondsPerImage)) |\n"
    }
    let tags = Set(summaries.flatMap(\.perTag.keys)).sorted()
    if !tags.isEmpty {
        out += "\n| tag | " + summaries.map(\.name).joined(separator: " | ") + " |\n"
        out += "| --- |" + String(repeating: " --- |", count: summaries.count) + "\n"
        for tag in tags {
            out += "| \(tag) | " + summaries.map { s in
                s.perTag[tag].map { String(format: "%.3f ± %.3f", $0.mean, $0.ci95) } ?? "-"
            }.joined(separator: " | ") + " |\n"
        }
    }
    return out
}

func htmlReport(rows: [ImageResult], summaries: [ModelSummary], title: String, directory: URL) -> String {
    var out = """
    <!DOCTYPE html>
    <html lang="ja"><head><meta charset="utf-8"><title>\(escape(title))</title>
    <style>
    body { font-family: sans-serif; margin: 2em; }
    table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
    td.img img { width: 128px; image-rendering: pixelated; display: block; }
    td.img span { font-size: 11px; color: #555; }
    </style></head><body>
    <h1>\(escape(title))</h1>
    <h2>Summary</h2>
    <table id="summary"><tr><th>model</th><th>hash</th><th>n</th><th>mean</th><th>± 95%</th><th>s/image</th></tr>

    """
    for s in summaries {
        out += "<tr class=\"model\"><td>\(escape(s.name))</td><td>\(escape(String(s.hash.prefix(12))))</td><td>\(s.n)</td>"
        out += "<td>\(String(format: "%.4f", s.mean))</td><td>\(String(format: "%.4f", s.ci95))</td>"
        out += "<td>\(String(format: "%.3f", s.secondsPerImage))</td></tr>\n"
    }
    out += "</table>\n<h2>Scores</h2>\n" + scoreChart(summaries) + "\n<h2>Contact sheet</h2>\n"
    out += "<table id=\"contact-sheet\"><tr><th>prompt</th><th>seed</th>"
    let models = summaries.map { ($0.hash, $0.name) }
    for (_, name) in models { out += "<th>\(escape(name))</th>" }
    out += "</tr>\n"
    var lookup: [String: ImageResult] = [:]
    var cases: [(String, Int64, String)] = []
    for row in rows {
        let caseKey = "\(row.promptId)\u{0}\(row.seed)"
        if !cases.contains(where: { $0.0 == row.promptId && $0.1 == row.seed }) { cases.append((row.promptId, row.seed, row.prompt)) }
        lookup[caseKey + "\u{0}" + row.modelHash + "\u{0}" + row.model] = row
    }
    for (promptId, seed, prompt) in cases {
        out += "<tr class=\"case\"><td><b>\(escape(promptId))</b><br>\(escape(prompt))</td><td>\(seed)</td>"
        for (hash, name) in models {
            if let row = lookup["\(promptId)\u{0}\(seed)\u{0}\(hash)\u{0}\(name)"] {
                out += "<td class=\"img\"><img src=\"\(escape(relativePath(row.imagePath, from: directory)))\" alt=\"\(escape(promptId))\">"
                out += "<span>\(String(format: "%.4f", row.score))</span></td>"
            } else {
                out += "<td>-</td>"
            }
        }
        out += "</tr>\n"
    }
    out += "</table>\n</body></html>\n"
    return out
}

/// A horizontal bar chart of mean scores with 95% confidence whiskers, as inline SVG.
func scoreChart(_ summaries: [ModelSummary]) -> String {
    let rowHeight = 28.0, labelWidth = 180.0, plotWidth = 420.0
    let top = summaries.map { $0.mean + ($0.ci95.isFinite ? $0.ci95 : 0) }.max() ?? 1
    let scale = plotWidth / max(top, 1e-9)
    var svg = "<svg id=\"score-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(labelWidth + plotWidth + 80))\" height=\"\(Int(rowHeight * Double(summaries.count) + 10))\">\n"
    for (i, s) in summaries.enumerated() {
        let y = Double(i) * rowHeight + 5
        let width = max(0, s.mean) * scale
        let ci = s.ci95.isFinite ? s.ci95 : 0
        svg += "<text x=\"0\" y=\"\(y + 17)\" font-size=\"13\">\(escape(s.name))</text>"
        svg += "<rect x=\"\(labelWidth)\" y=\"\(y + 4)\" width=\"\(width)\" height=\"18\" fill=\"#4a7ab7\"/>"
        svg += "<line x1=\"\(labelWidth + max(0, s.mean - ci) * scale)\" x2=\"\(labelWidth + (s.mean + ci) * scale)\" y1=\"\(y + 13)\" y2=\"\(y + 13)\" stroke=\"black\"/>"
        svg += "<text x=\"\(labelWidth + width + 6 + ci * scale)\" y=\"\(y + 17)\" font-size=\"12\">\(String(format: "%.3f", s.mean))</text>\n"
    }
    return svg + "</svg>"
}

func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

/// `path` relative to `directory` when both are absolute, else `path` unchanged.
func relativePath(_ path: String, from directory: URL) -> String {
    guard path.hasPrefix("/") else { return path }
    let target = URL(fileURLWithPath: path).standardizedFileURL.pathComponents
    let base = directory.standardizedFileURL.pathComponents
    var common = 0
    while common < min(target.count, base.count), target[common] == base[common] { common += 1 }
    let ups = Array(repeating: "..", count: base.count - common)
    return (ups + target[common...]).joined(separator: "/")
}

/// Writes `text` to a temporary file beside `url`, then renames it onto `url`.
public func atomicWrite(_ text: String, to url: URL) throws {
    let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
    do {
        try Data(text.utf8).write(to: temporary)
        // rename(2) replaces an existing file atomically (Foundation's replaceItemAt fails on Linux then).
        guard rename(temporary.path, url.path) == 0 else {
            throw EvaluationError.unreadableFile(path: url.path, reason: "cannot write: \(String(cString: strerror(errno)))")
        }
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw EvaluationError.unreadableFile(path: url.path, reason: "cannot write: \(error.localizedDescription)")
    }
}
