// The AUTOMATIC1111 `parameters` text, compared with strings written the way the web UI's
// create_infotext writes them.

import XCTest
@testable import Imaging

final class GenerationParametersTests: XCTestCase {
    func testInfotextFormat() {
        let p = GenerationParameters(prompt: "江ノ島と富士山が見える風景", negativePrompt: "ぼやけた", steps: 4, sampler: "LCM",
                                     cfgScale: 1, seed: 1, width: 64, height: 64, modelHash: "0123abcd", model: "jpgen-demo")
        XCTAssertEqual(p.infotext, """
            江ノ島と富士山が見える風景
            Negative prompt: ぼやけた
            Steps: 4, Sampler: LCM, CFG scale: 1, Seed: 1, Size: 64x64, Model hash: 0123abcd, Model: jpgen-demo
            """)
        XCTAssertEqual(p.pngText.key, "parameters")
    }

    func testOptionalPartsAndQuoting() {
        let p = GenerationParameters(prompt: "a", steps: 2, sampler: "Euler a", cfgScale: 7.5, seed: 42, width: 512, height: 768,
                                     extra: [("Lora", "x, y: \"z\""), ("Version", "jpgen 0.1")])
        XCTAssertEqual(p.infotext, "a\nSteps: 2, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x768, "
                       + "Lora: \"x, y: \\\"z\\\"\", Version: jpgen 0.1")
        XCTAssertEqual(quoteInfotextValue("plain \"q\""), "plain \"q\"")
        XCTAssertEqual(quoteInfotextValue("a\nb\tc"), "\"a\\nb\\tc\"")
    }
}
