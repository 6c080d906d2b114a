// Prompt suites: the YAML files of Examples/prompts/, read through Yams.
//
//   seeds: [1, 2]
//   prompts:
//     - {id: enoshima-fuji, ja: 江ノ島と富士山が見える風景, en: A landscape with Enoshima and Mount Fuji,
//        tags: [landscape], split: search}
//
// A prompt may carry its own `seeds`, overriding the suite's. `split` is `search` (the prompts an
// evolutionary search optimises on) or `held-out` (kept for judging the result); absent means both.

import Foundation
import Yams

public struct PromptSuite: Equatable {
    public enum Split: String, Codable, CaseIterable { case search, heldOut = "held-out" }

    public struct Prompt: Equatable {
        public var id: String
        public var ja: String
        public var en: String?
        public var tags: [String]
        public var seeds: [UInt64]
        public var split: Split?
    }

    public var name: String
    public var prompts: [Prompt]

    /// The prompts of one split (prompts without a split belong to every split).
    public func prompts(in split: Split?) -> [Prompt] {
        guard let split else { return prompts }
        return prompts.filter { $0.split == nil || $0.split == split }
    }

    /// Every (prompt, seed) pair, in suite order.
    public func cases(in split: Split? = nil) -> [(prompt: Prompt, seed: UInt64)] {
        prompts(in: split).flatMap { prompt in prompt.seeds.map { (prompt, $0) } }
    }

    public init(name: String, prompts: [Prompt]) {
        self.name = name
        self.prompts = prompts
    }

    public init(contentsOf url: URL) throws {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw EvaluationError.unreadableFile(path: url.path, reason: error.localizedDescription)
        }
        try self.init(yaml: text, name: url.deletingPathExtension().lastPathComponent, path: url.path)
    }

    public init(yaml text: String, name: String, path: String = "<suite>") throws {
        struct RawPrompt: Decodable {
            var id: String?
            var ja: String?
            var en: String?
            var tags: [String]?
            var seeds: [UInt64]?
            var split: String?
        }
        struct RawSuite: Decodable {
            var name: String?
            var seeds: [UInt64]?
            var prompts: [RawPrompt]?
        }
        let raw: RawSuite
        do {
            raw = try YAMLDecoder().decode(RawSuite.self, from: text)
        } catch {
            throw EvaluationError.invalidSuite(path: path, reason: "not a prompt suite: \(Self.describe(error))")
        }
        guard let rawPrompts = raw.prompts, !rawPrompts.isEmpty else {
            throw EvaluationError.invalidSuite(path: path, reason: "missing or empty 'prompts' list")
        }
        var seen = Set<String>()
        var prompts: [Prompt] = []
        for (index, p) in rawPrompts.enumerated() {
            guard let id = p.id, !id.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw EvaluationError.invalidSuite(path: path, reason: "prompt #\(index + 1) has no 'id'")
            }
            guard seen.insert(id).inserted else {
                throw EvaluationError.invalidSuite(path: path, reason: "duplicate prompt id '\(id)'")
            }
            guard let ja = p.ja else {
                throw EvaluationError.invalidSuite(path: path, reason: "prompt '\(id)' has no 'ja' text")
            }
            guard !ja.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw EvaluationError.invalidSuite(path: path, reason: "prompt '\(id)' has an empty 'ja' text")
            }
            guard let seeds = p.seeds ?? raw.seeds, !seeds.isEmpty else {
                throw EvaluationError.invalidSuite(path: path, reason: "prompt '\(id)' has no seeds (set 'seeds' on the suite or the prompt)")
            }
            var split: Split?
            if let s = p.split {
                guard let value = Split(rawValue: s) else {
                    throw EvaluationError.invalidSuite(path: path, reason: "prompt '\(id)': unknown split '\(s)' (use search or held-out)")
                }
                split = value
            }
            prompts.append(Prompt(id: id, ja: ja, en: p.en, tags: p.tags ?? [], seeds: seeds, split: split))
        }
        self.init(name: raw.name ?? name, prompts: prompts)
    }

    static func describe(_ error: Error) -> String {
        if case DecodingError.typeMismatch(_, let context) = error {
            return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        }
        if case DecodingError.keyNotFound(let key, _) = error { return "missing key '\(key.stringValue)'" }
        return "\(error)"
    }
}
