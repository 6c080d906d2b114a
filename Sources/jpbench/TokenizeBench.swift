// `jpbench tokenize`: strings per second of a model's tokenizer (by default the demo's MeCab + WordPiece
// BertJapaneseTokenizer) on generated Japanese prompts, next to transformers' tokenizer on the same strings
// measured in the same run by Tools/bench_tokenize.py (a child process), with the ratio and a check that
// both produced the same ids for every string.

import ArgumentParser
import Dispatch
import Foundation
import Tokenization

struct TokenizeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Strings per second of a tokenizer (MeCab + WordPiece by default) next to transformers' in the same run.")

    @Option(help: "A tokenizer folder (or a model folder with tokenizer/). Default: Models/demo-lcm, else the WordPiece test fixture.")
    var model: String?

    @Option(help: "Number of generated prompts.")
    var strings: Int = 5000

    @Option(name: .shortAndLong, help: "Timed passes over all strings (after one warm-up pass); the best is reported.")
    var repetitions: Int = 3

    @Option(name: .shortAndLong, help: "Also time this many threads encoding in parallel (1: single-threaded only).")
    var threads: Int = 1

    @Option(help: "Python with transformers and fugashi, to run Tools/bench_tokenize.py (default: .venv/bin/python when present; 'none' skips it).")
    var python: String?

    @Option(help: "The Python side's script.")
    var script: String = "Tools/bench_tokenize.py"

    func validate() throws {
        guard strings >= 1 else { throw ValidationError("--strings must be at least 1, got \(strings)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1, got \(repetitions)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func run() throws {
        let folder = model ?? (FileManager.default.fileExists(atPath: "Models/demo-lcm/tokenizer") ? "Models/demo-lcm"
            : "Tests/Fixtures/Tokenization/bert-japanese-wordpiece")
        let texts = Self.prompts(count: strings)
        let started = DispatchTime.now().uptimeNanoseconds
        let tokenizer = try loadTokenizer(folder: URL(fileURLWithPath: folder))
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9

        var ours: [[Int]] = []
        var failure: Error?
        let time = TextEncoderBench.bestAndMedian(repetitions) {
            do { ours = try texts.map { try tokenizer.encode($0).ids } } catch { failure = error }
        }
        if let failure { throw failure }
        let rate = Double(texts.count) / time.best
        printJSONLine([("bench", "tokenize"), ("impl", "jpgen"), ("class", "\(type(of: tokenizer))"), ("model", folder),
                       ("strings", texts.count), ("threads", 1), ("load_seconds", loadSeconds), ("seconds", time.best),
                       ("median_seconds", time.median), ("strings_per_second", rate)])
        if threads > 1 {
            let parallel = TextEncoderBench.bestAndMedian(repetitions) {
                let chunk = (texts.count + threads - 1) / threads
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    for i in (t * chunk)..<min((t + 1) * chunk, texts.count) { _ = try? tokenizer.encode(texts[i]) }
                }
            }
            printJSONLine([("bench", "tokenize"), ("impl", "jpgen"), ("strings", texts.count), ("threads", threads),
                           ("seconds", parallel.best), ("strings_per_second", Double(texts.count) / parallel.best)])
        }

        let python = self.python ?? (FileManager.default.isExecutableFile(atPath: ".venv/bin/python") ? ".venv/bin/python" : "none")
        guard python != "none" else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jpbench-tokenize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("strings.txt"), idsURL = dir.appendingPathComponent("ids.json")
        try Data((texts.joined(separator: "\n") + "\n").utf8).write(to: input)
        let output = try Self.runChild([python, script, "--model", folder, "--strings", input.path,
                                        "--repetitions", String(repetitions), "--ids-out", idsURL.path])
        guard let line = output.split(separator: "\n").last,
              let theirs = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let theirSeconds = (theirs["seconds"] as? NSNumber)?.doubleValue else {
            throw ValidationError("\(script) printed no result line: \(output)")
        }
        let theirIds = try JSONSerialization.jsonObject(with: Data(contentsOf: idsURL)) as? [[Int]] ?? []
        let differing = zip(ours, theirIds).filter { $0 != $1 }.count + abs(ours.count - theirIds.count)
        printJSONLine([("bench", "tokenize"), ("impl", "transformers"), ("class", theirs["class"] as? String ?? "?"),
                       ("strings", texts.count), ("threads", 1), ("seconds", theirSeconds),
                       ("strings_per_second", Double(texts.count) / theirSeconds)])
        printJSONLine([("bench", "tokenize-ratio"), ("strings", texts.count), ("speedup_jpgen_over_transformers", theirSeconds / time.best),
                       ("strings_with_different_ids", differing)])
    }

    /// Runs a child process and returns its standard output (standard error passes through).
    static func runChild(_ argv: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ValidationError("\(argv.joined(separator: " ")) exited with status \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Deterministic image prompts in the demo world's style (subject, particle, subject, scene, style, and
    /// sometimes a time of day, English words, digits or full-width text), from a SplitMix64 stream.
    static func prompts(count: Int) -> [String] {
        let places = ["富士山", "江ノ島", "江の島", "鎌倉", "京都", "奈良", "東京タワー", "五重塔", "鳥居", "海", "砂浜", "湖", "森", "山", "川", "港"]
        let things = ["月", "太陽", "星", "雲", "桜", "松", "雪", "船", "猫", "犬", "鳥", "花", "夕焼け", "朝日", "虹", "灯台"]
        let scenes = ["が見える風景", "のある景色", "を描いた絵", "の写真", "と青い空", "が輝く夜", "に囲まれた", "を背景に"]
        let styles = ["写真風", "浮世絵風", "水彩画風", "油絵", "水墨画", "アニメ調", "ドット絵", "鉛筆画"]
        let times = ["朝", "昼", "夕方", "夜", "夕暮れ", "日没", "深夜", "夜明け"]
        let extras = ["4K", "high quality", "ＦＵＪＩ", "35mm", "ｶﾒﾗ", "beautiful scenery", "2024年"]
        var state: UInt64 = 20_261_125
        func next(_ n: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(n))
        }
        return (0..<count).map { _ in
            var s = ""
            if next(3) == 0 { s += times[next(times.count)] + "の" }
            s += places[next(places.count)] + ["と", "の", "に", "、"][next(4)] + things[next(things.count)] + scenes[next(scenes.count)]
            if next(2) == 0 { s += "、" + styles[next(styles.count)] }
            if next(4) == 0 { s += "、" + extras[next(extras.count)] }
            return s
        }
    }
}
