// jpbench demo: the default jpgen run (the bundled demo model, the default prompt) from process start
// to PNG written, as a user sees it: wall seconds of the whole child process, best and median of N.

import ArgumentParser
import Foundation

struct DemoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Time a default `jpgen \"江ノ島と富士山が見える風景\"` run, process start to PNG written.")

    @Option(name: .shortAndLong, help: "Runs (the best and the median are reported).")
    var repetitions = 5

    func run() throws {
        let jpgen = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("jpgen").path
        guard FileManager.default.isExecutableFile(atPath: jpgen) else {
            throw ValidationError("jpgen not found next to jpbench (\(jpgen)); build it: swift build -c release")
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("jpbench-demo-\(getpid()).png").path
        var times: [Double] = []
        for i in 0..<max(repetitions, 1) {
            let run = try measureChild([jpgen, "江ノ島と富士山が見える風景", "--seed", "\(i + 1)", "--output", output, "--quiet"])
            guard run.status == 0, FileManager.default.fileExists(atPath: output) else {
                throw ValidationError("jpgen exited with \(run.status)")
            }
            try? FileManager.default.removeItem(atPath: output)
            times.append(run.seconds)
        }
        let sorted = times.sorted()
        printJSONLine([("bench", "demo"), ("runs", times.count), ("best_seconds", sorted[0]),
                       ("median_seconds", sorted[sorted.count / 2])])
    }
}
