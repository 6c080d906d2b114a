// evomerge report DB [--out DIR]: the Markdown summary and the HTML page (table, contact sheet, chart)
// of a results store written by `evomerge eval` (or an evolve run's evaluation store).
import ArgumentParser
import Evaluation
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write report.md and report.html (summary table, contact sheet, score chart) for a results store.")

    @Argument(help: "A results store (SQLite) written by `evomerge eval`.")
    var database: String

    @Option(help: "Folder for report.md and report.html (default: beside the store).")
    var out: String?

    @Option(help: "The report's title.")
    var title: String = "JPGen evaluation"

    @Flag(help: "Print the summary as one JSON object instead of a table.")
    var json = false

    func run() throws {
        let url = URL(fileURLWithPath: database)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ValidationError("\(database): no such results store")
        }
        let rows = try ResultsStore(url: url).all()
        guard !rows.isEmpty else { throw ValidationError("\(database): the store holds no results yet") }
        let folder = out.map { URL(fileURLWithPath: $0) } ?? url.deletingLastPathComponent()
        let files = try writeReport(rows: rows, title: title, to: folder)
        let summaries = summarize(rows)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            struct Output: Encodable { let models: [ModelSummary]; let markdown: String; let html: String }
            let data = try encoder.encode(Output(models: summaries, markdown: files.markdown.path, html: files.html.path))
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(formatSummaryTable(summaries))
            print("\nwrote \(files.markdown.path)\nwrote \(files.html.path)")
        }
    }
}
