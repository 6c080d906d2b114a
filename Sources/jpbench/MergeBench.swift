// jpbench merge: the streaming merge on full-size UNet shapes (SDXL: 2.6B parameters, about 5 GB per
// checkpoint in f16) with linear (2 inputs) and TIES (3 inputs): seconds, input GB/s and the merge
// process's peak resident memory, next to a plain PyTorch script (Tools/bench_merge.py: load the state
// dicts, merge, save) run on the same files in the same process tree.

import ArgumentParser
import Foundation
import SafeTensors

struct MergeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "Streaming merge of random full-size checkpoints vs a PyTorch script.")

    @Option(help: "Tensor shapes: sdxl (2.6B parameters) or sd1 (860M).")
    var size: String = "sdxl"

    @Option(help: "The shapes file (written by Tools/fixtures; names and shapes of real UNets).")
    var shapes: String = "Tools/bench/unet_shapes.json"

    @Option(help: "Folder for the random checkpoints and the outputs (needs about 8x one checkpoint of disk).")
    var dir: String = "/tmp/jpbench-merge"

    @Option(help: "Python with torch and safetensors, to time Tools/bench_merge.py on the same files.")
    var python: String?

    @Option(help: "Use only the first N tensors (a quick run).")
    var limit: Int?

    @Flag(help: "Keep the files afterwards.")
    var keep = false

    @Option(help: "Only these methods (comma-separated: linear, ties).")
    var methods: String = "linear,ties"

    func run() throws {
        let all = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: shapes))) as? [String: [[Any]]]
        guard let list = all?[size] else { throw ValidationError("\(shapes) has no '\(size)' shapes") }
        var entries: [(name: String, dtype: SafeTensorsDType, shape: [Int])] = list.map { ($0[0] as! String, .F16, $0[1] as! [Int]) }
        if let limit { entries = Array(entries.prefix(limit)) }
        let parameters = entries.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let folder = URL(fileURLWithPath: dir)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { if !keep { try? FileManager.default.removeItem(at: folder) } }

        let started = Date()
        for (i, name) in ["base", "a", "b"].enumerated() {
            try writeRandomCheckpoint(folder.appendingPathComponent("\(name).safetensors"), entries: entries, seed: UInt64(i + 1))
        }
        let bytes = Double(parameters * 2)
        emit(["bench": "merge-setup", "parameters": parameters, "checkpoint_gb": bytes / 1e9, "seconds": Date().timeIntervalSince(started)])

        let evomerge = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("evomerge").path
        let cases: [(method: String, inputs: Int, recipe: String)] = [
            ("linear", 2, "inputs: {a: a.safetensors, b: b.safetensors}\nmethod: linear\nparameters: {weight: {a: 0.5, b: 0.5}}\ndtype: fp16\noutput: out-linear.safetensors\n"),
            ("ties", 3, "inputs: {base: base.safetensors, a: a.safetensors, b: b.safetensors}\nmethod: ties\nbase: base\nparameters: {weight: {a: 0.6, b: 0.4}, density: 0.5}\ndtype: fp16\noutput: out-ties.safetensors\n"),
        ]
        for c in cases where methods.split(separator: ",").contains(Substring(c.method)) {
            let recipe = folder.appendingPathComponent("\(c.method).yaml")
            try Data(c.recipe.utf8).write(to: recipe)
            let ours = try measure([evomerge, "merge", recipe.path, "--quiet"])
            let inputGB = bytes * Double(c.inputs) / 1e9
            emit(["bench": "merge", "impl": "jpgen", "method": c.method, "inputs": c.inputs, "parameters": parameters,
                  "seconds": ours.seconds, "input_gb_per_s": inputGB / ours.seconds, "peak_rss_mb": ours.peakMB, "status": Int(ours.status)])
            try? FileManager.default.removeItem(at: folder.appendingPathComponent("out-\(c.method).safetensors"))
            if let python {
                let script = URL(fileURLWithPath: "Tools/bench_merge.py").path
                let theirs = try measure([python, script, "--dir", folder.path, "--method", c.method])
                emit(["bench": "merge", "impl": "pytorch", "method": c.method, "inputs": c.inputs, "parameters": parameters,
                      "seconds": theirs.seconds, "input_gb_per_s": inputGB / theirs.seconds, "peak_rss_mb": theirs.peakMB,
                      "status": Int(theirs.status)])
                emit(["bench": "merge-ratio", "method": c.method, "time_ratio_jpgen_over_pytorch": ours.seconds / theirs.seconds,
                      "rss_ratio_jpgen_over_pytorch": ours.peakMB / max(theirs.peakMB, 1)])
                try? FileManager.default.removeItem(at: folder.appendingPathComponent("torch-\(c.method).safetensors"))
            }
        }
    }

    func writeRandomCheckpoint(_ url: URL, entries: [(name: String, dtype: SafeTensorsDType, shape: [Int])], seed: UInt64) throws {
        let writer = try SafeTensorsWriter(url: url, entries: entries, metadata: [:])
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        var buffer = [Float]()
        for entry in entries {
            let count = entry.shape.reduce(1, *)
            buffer.removeAll(keepingCapacity: true)
            buffer.reserveCapacity(count)
            for _ in 0..<count {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                buffer.append((Float(state >> 40) / Float(1 << 24) - 0.5) * 0.1)
            }
            try buffer.withUnsafeBufferPointer { try writer.write(entry.name, float32: $0) }
        }
        try writer.finish()
    }

    /// Runs a command, polling its peak resident memory (VmHWM) until it exits.
    func measure(_ argv: [String]) throws -> (seconds: Double, peakMB: Double, status: Int32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.standardOutput = FileHandle.nullDevice
        let started = Date()
        try process.run()
        var peakKB = 0
        while process.isRunning {
            if let kb = peakResidentKilobytes(pid: "\(process.processIdentifier)") {
                peakKB = max(peakKB, kb)
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        return (Date().timeIntervalSince(started), Double(peakKB) / 1024, process.terminationStatus)
    }

    func emit(_ object: [String: Any]) {
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
