// GenerationParameters: the AUTOMATIC1111-style `parameters` PNG text, so other tools (the web
// UI's "PNG Info", ComfyUI, image browsers) show the prompt, seed and settings of an image.
//
// Format (modules/processing.py `create_infotext` in stable-diffusion-webui):
//   PROMPT
//   Negative prompt: NEGATIVE            (line omitted when empty)
//   Steps: 4, Sampler: LCM, CFG scale: 1, Seed: 1, Size: 64x64, Model hash: abc, Model: name, ...
// Values containing ',', ':' or a newline are quoted as JSON strings, as the web UI's `quote` does.

public struct GenerationParameters: Equatable, Sendable {
    public var prompt: String
    public var negativePrompt: String
    public var steps: Int
    public var sampler: String
    public var cfgScale: Float
    public var seed: UInt64
    public var width: Int
    public var height: Int
    public var modelHash: String?
    public var model: String?
    /// Further "Key: value" pairs appended in order (e.g. ("Version", "jpgen 0.1")).
    public var extra: [(key: String, value: String)]

    public init(prompt: String, negativePrompt: String = "", steps: Int, sampler: String, cfgScale: Float,
                seed: UInt64, width: Int, height: Int, modelHash: String? = nil, model: String? = nil,
                extra: [(key: String, value: String)] = []) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.steps = steps
        self.sampler = sampler
        self.cfgScale = cfgScale
        self.seed = seed
        self.width = width
        self.height = height
        self.modelHash = modelHash
        self.model = model
        self.extra = extra
    }

    public static func == (a: GenerationParameters, b: GenerationParameters) -> Bool {
        a.infotext == b.infotext
    }

    /// The `parameters` text.
    public var infotext: String {
        var pairs: [(String, String)] = [
            ("Steps", String(steps)), ("Sampler", sampler), ("CFG scale", formatNumber(cfgScale)),
            ("Seed", String(seed)), ("Size", "\(width)x\(height)"),
        ]
        if let modelHash, !modelHash.isEmpty { pairs.append(("Model hash", modelHash)) }
        if let model, !model.isEmpty { pairs.append(("Model", model)) }
        pairs += extra.map { ($0.key, $0.value) }
        var text = prompt
        if !negativePrompt.isEmpty { text += "\nNegative prompt: " + negativePrompt }
        text += "\n" + pairs.map { "\($0.0): \(quoteInfotextValue($0.1))" }.joined(separator: ", ")
        return text
    }

    /// The PNG text chunk holding `infotext` under the key `parameters`.
    public var pngText: PNGText { PNGText(key: "parameters", text: infotext) }
}

/// 1 -> "1", 7.5 -> "7.5" (the web UI prints Python floats; whole numbers without ".0" for CFG).
func formatNumber(_ x: Float) -> String {
    if x == x.rounded(), abs(x) < 1e9 { return String(Int(x)) }
    return String(x)
}

/// The web UI's `quote`: values with ',', ':' or a newline become `json.dumps(value, ensure_ascii=False)`.
func quoteInfotextValue(_ s: String) -> String {
    guard s.contains(",") || s.contains(":") || s.contains("\n") else { return s }
    var out = "\""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        case _ where ch.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(ch.value, radix: 16).count) + String(ch.value, radix: 16)
        default: out.unicodeScalars.append(ch)
        }
    }
    return out + "\""
}
