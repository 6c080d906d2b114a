// jpbench pipeline: end-to-end time of a 4-step 512x512 generation with a full-size SD1.5 pipeline
// (random weights; CLIP-L-size text encoder, SD1.5 UNet, SD VAE or TAESD; LCM sampler, no guidance),
// jpgen next to diffusers on the same folders in the same run. Both sides run as child processes
// (jpgen with --json, Tools/bench_pipeline.py) with their peak RSS polled from /proc; the compared time
// is the generation itself (text encoding + denoising + decoding), load time reported beside it.

import ArgumentParser
import Foundation

struct PipelineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "End-to-end generation (SD1.5 size, random weights, full VAE and TAESD) next to diffusers.")

    @Option(help: "Folder for the random-weight pipeline (about 4.5 GB; made once by the Python script).")
    var workdir = "/tmp/jpgen-bench-pipeline"

    @Option(help: "Python with diffusers (e.g. .venv/bin/python): makes the folders and times diffusers.")
    var python: String?

    @Option(help: "Denoising steps.")
    var steps = 4

    @Option(help: "Image side in pixels.")
    var size = 512

    @Option(help: "Threads for both sides (default: all cores).")
    var threads: Int?

    @Option(parsing: .upToNextOption, help: "Decoders to time: kl, taesd.")
    var vae: [String] = ["kl", "taesd"]

    func run() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Tools/bench_pipeline.py").standardizedFileURL.path
        let model = workdir + "/sd15"
        if !FileManager.default.fileExists(atPath: model + "/model_index.json") {
            guard let python else { throw ValidationError("\(model) does not exist: pass --python to make it") }
            let made = try measureChild([python, script, "make", "--workdir", workdir])
            guard made.status == 0 else { throw ValidationError("making the random-weight pipeline failed (\(script))") }
        }
        let jpgen = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("jpgen").path
        guard FileManager.default.isExecutableFile(atPath: jpgen) else {
            throw ValidationError("jpgen not found next to jpbench (\(jpgen)); build it: swift build -c release")
        }
        for decoder in vae {
            guard decoder == "kl" || decoder == "taesd" else { throw ValidationError("--vae takes kl or taesd, not \(decoder)") }
            let output = FileManager.default.temporaryDirectory.appendingPathComponent("jpbench-pipeline-\(getpid()).png").path
            var args = [jpgen, "江ノ島と富士山が見える風景", "--model", model, "--sampler", "lcm", "--steps", "\(steps)",
                        "--cfg", "1", "--width", "\(size)", "--height", "\(size)", "--seed", "1", "--output", output,
                        "--json", "--quiet"]
            if decoder == "taesd" { args += ["--vae", workdir + "/taesd"] }
            if let threads { args += ["--threads", "\(threads)"] }
            let ours = try measureChild(args, captureOutput: true)
            try? FileManager.default.removeItem(atPath: output)
            guard ours.status == 0, let report = try? JSONSerialization.jsonObject(with: Data(ours.stdout.utf8)) as? [String: Any],
                  let seconds = report["seconds"] as? [String: Double] else {
                throw ValidationError("jpgen failed on \(model): \(ours.stdout)")
            }
            let generate = (seconds["encode"] ?? 0) + (seconds["denoise"] ?? 0) + (seconds["decode"] ?? 0)
            var fields: [(String, Any)] = [
                ("bench", "pipeline"), ("vae", decoder), ("steps", steps), ("size", size), ("impl", "jpgen"),
                ("seconds", generate), ("load_seconds", seconds["load"] ?? 0), ("encode_seconds", seconds["encode"] ?? 0),
                ("denoise_seconds", seconds["denoise"] ?? 0), ("decode_seconds", seconds["decode"] ?? 0),
                ("peak_rss_mb", ours.peakMB),
            ]
            if let python {
                var theirArgs = [python, script, "run", "--workdir", workdir, "--steps", "\(steps)", "--size", "\(size)"]
                if decoder == "taesd" { theirArgs.append("--taesd") }
                if let threads { theirArgs += ["--threads", "\(threads)"] }
                let theirs = try measureChild(theirArgs, captureOutput: true)
                if theirs.status == 0, let line = theirs.stdout.split(separator: "\n").last,
                   let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let their = object["seconds"] as? Double {
                    fields += [("diffusers_seconds", their), ("diffusers_load_seconds", object["load_seconds"] ?? 0),
                               ("diffusers_peak_rss_mb", theirs.peakMB), ("ratio", generate / their)]
                } else {
                    fields.append(("diffusers_error", "exit \(theirs.status)"))
                }
            }
            printJSONLine(fields)
        }
    }
}

/// Runs a command, polling its peak resident memory (VmHWM) until it exits; stdout captured on request.
func measureChild(_ argv: [String], captureOutput: Bool = false) throws -> (seconds: Double, peakMB: Double, status: Int32, stdout: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    let pipe = Pipe()
    process.standardOutput = captureOutput ? pipe : FileHandle.nullDevice
    let started = Date()
    try process.run()
    final class Box: @unchecked Sendable { var data = Data() }
    let collected = Box()
    let done = DispatchSemaphore(value: 0)
    if captureOutput {
        // Drain stdout while the child runs, so a full pipe cannot block it.
        DispatchQueue.global().async {
            collected.data = pipe.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
    }
    var peakKB = 0
    while process.isRunning {
        if let kb = peakResidentKilobytes(pid: "\(process.processIdentifier)") {
            peakKB = max(peakKB, kb)
        }
        usleep(50_000)
    }
    process.waitUntilExit()
    if captureOutput { done.wait() }
    return (Date().timeIntervalSince(started), Double(peakKB) / 1024, process.terminationStatus,
            String(decoding: collected.data, as: UTF8.self))
}
