// PNG tests: files written by PIL in every colour type read to the RGB8 pixels PIL's
// convert("RGB") gives (exact, tolerance 0; 16-bit against round(v * 255 / 65535)), text chunks
// (tEXt, zTXt, iTXt) read back, our files round-trip with Japanese text, and bad files throw.

import Foundation
import Kernels
import XCTest
@testable import Imaging

let imagingFixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/Imaging")

func imagingScratch(_ name: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("jpgen-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

func imagingCaseName(_ error: Error) -> String {
    Mirror(reflecting: error).children.first?.label ?? String(describing: error)
}

final class PNGTests: XCTestCase {
    func testReadsEveryColourTypeLikePIL() throws {
        let expected = try JSONSerialization.jsonObject(
            with: Data(contentsOf: imagingFixtures.appendingPathComponent("expected.json"))) as! [String: [String: Any]]
        XCTAssertEqual(expected.count, 9)
        for (name, spec) in expected.sorted(by: { $0.key < $1.key }) {
            let png = try readPNG(imagingFixtures.appendingPathComponent(name))
            XCTAssertEqual(png.image.width, spec["width"] as! Int, name)
            XCTAssertEqual(png.image.height, spec["height"] as! Int, name)
            let want = (spec["rgb"] as! [Int]).map(UInt8.init)
            XCTAssertEqual(png.image.pixels, want, name)
            let text = spec["text"] as! [String: String]
            XCTAssertEqual(Dictionary(png.text.map { ($0.key, $0.text) }, uniquingKeysWith: { a, _ in a }), text, name)
        }
    }

    func testTextChunkKinds() throws {
        let png = try readPNG(imagingFixtures.appendingPathComponent("rgb.png"))
        XCTAssertEqual(png.text("Software"), "PIL café")  // tEXt, Latin-1
        XCTAssertEqual(png.text("Title"), "富士山")  // iTXt
        XCTAssertTrue(png.text("Comment")?.hasPrefix("compressed compressed") ?? false)  // zTXt
        XCTAssertTrue(png.text("parameters")?.hasPrefix("江ノ島と富士山が見える風景\nNegative prompt: ぼやけた") ?? false)
        XCTAssertNil(png.text("absent"))
        XCTAssertEqual(png.storedColorType, 2)
        XCTAssertEqual(png.storedBitDepth, 8)
    }

    func testRoundTripWithJapaneseAndLatin1Text() throws {
        let dir = try imagingScratch("png")
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = 7, h = 3
        let pixels = (0..<(w * h * 3)).map { UInt8(($0 * 53 + 11) % 256) }
        let image = try RGB8Image(width: w, height: h, pixels: pixels)
        let params = GenerationParameters(prompt: "江ノ島と富士山が見える風景", negativePrompt: "ぼやけた, 低品質", steps: 4,
                                          sampler: "LCM", cfgScale: 1, seed: 1, width: w, height: h,
                                          modelHash: "abc123", model: "jpgen-demo")
        let text = [params.pngText, PNGText(key: "Software", text: "JPGen café"), PNGText(key: "Empty", text: "")]
        let url = dir.appendingPathComponent("out.png")
        try writePNG(image, to: url, text: text)
        if let keep = ProcessInfo.processInfo.environment["JPGEN_KEEP_TEST_PNG"] {
            // For checking our files with other readers (e.g. PIL) by hand.
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(at: url, to: URL(fileURLWithPath: keep))
        }
        let back = try readPNG(url)
        XCTAssertEqual(back.image, image)
        XCTAssertEqual(back.text, text)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out.png"], "no temporary file left")
        // The Japanese text went into iTXt (UTF-8), the Latin-1 one into tEXt.
        let bytes = try Data(contentsOf: url)
        XCTAssertNotNil(bytes.range(of: Data("iTXtparameters".utf8)))
        XCTAssertNotNil(bytes.range(of: Data("tEXtSoftware\0JPGen caf\u{E9}".unicodeScalars.map { UInt8($0.value) })))
    }

    func testTensorConversion() throws {
        // x: [3, 2, 2]; values clamped to [0, 1] and rounded half to even (numpy's round).
        let x = Tensor(shape: [3, 2, 2], data: [0, 0.5, 1, 2, -1, .nan, 0.25, 1.0 / 255, 0.998, 0.002, 0.6, 0.4])
        let image = try RGB8Image(tensor: x)
        XCTAssertEqual(image.width, 2)
        XCTAssertEqual(image.height, 2)
        XCTAssertEqual(image[0, 0].0, 0)
        XCTAssertEqual(image[1, 0].0, 128)  // 127.5 -> 128 (even)
        XCTAssertEqual(image[0, 1].0, 255)
        XCTAssertEqual(image[1, 1].0, 255)
        XCTAssertEqual(image[0, 0].1, 0)
        XCTAssertEqual(image[1, 0].1, 0)  // NaN -> 0
        XCTAssertEqual(image[0, 1].1, 64)  // 63.75
        XCTAssertEqual(image[1, 1].1, 1)
        XCTAssertEqual([image[0, 0].2, image[1, 0].2, image[0, 1].2, image[1, 1].2], [254, 1, 153, 102])
        let batched = try RGB8Image(tensor: x.reshaped([1, 3, 2, 2]))
        XCTAssertEqual(batched, image)
        let t = image.tensor
        XCTAssertEqual(t.shape, [3, 2, 2])
        XCTAssertEqual(t[0, 0, 1], 128.0 / 255)
        XCTAssertThrowsError(try RGB8Image(tensor: Tensor(shape: [4, 2, 2]))) { XCTAssertEqual(imagingCaseName($0), "invalidTensorShape") }
        XCTAssertThrowsError(try RGB8Image(tensor: Tensor(shape: [2, 3, 2, 2]))) { XCTAssertEqual(imagingCaseName($0), "invalidTensorShape") }
        XCTAssertThrowsError(try RGB8Image(width: 2, height: 2, pixels: [1, 2, 3])) { XCTAssertEqual(imagingCaseName($0), "invalidPixelBuffer") }

        let dir = try imagingScratch("tensor")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.png")
        try writePNG(x, to: url)
        XCTAssertEqual(try readPNG(url).image, image)
    }

    func testBadFilesThrowClearErrors() throws {
        let cases = [
            "not_png.png": "notPNG", "truncated.png": "invalidPNG", "header_only.png": "invalidPNG",
            "corrupt_idat.png": "invalidPNG", "huge_dimensions.png": "imageTooLarge",
        ]
        for (name, want) in cases {
            XCTAssertThrowsError(try readPNG(imagingFixtures.appendingPathComponent(name)), name) { error in
                XCTAssertEqual(imagingCaseName(error), want, "\(name): \(error)")
                XCTAssertTrue(error.localizedDescription.contains(name), error.localizedDescription)
            }
        }
        XCTAssertThrowsError(try readPNG(imagingFixtures.appendingPathComponent("absent.png"))) {
            XCTAssertEqual(imagingCaseName($0), "cannotRead")
        }
        XCTAssertThrowsError(try decodePNG(Data())) { XCTAssertEqual(imagingCaseName($0), "notPNG") }
        // Every prefix of a valid file is refused, never returned as an image.
        let good = try Data(contentsOf: imagingFixtures.appendingPathComponent("rgb.png"))
        for n in 0..<good.count {
            XCTAssertThrowsError(try decodePNG(good.prefix(n)), "prefix of \(n) bytes") { error in
                XCTAssertTrue(["notPNG", "invalidPNG"].contains(imagingCaseName(error)), "\(n): \(error)")
            }
        }
        // A chunk length far past the end of the file (once a 1.9 GB malloc inside libpng).
        let forged = try Data(contentsOf: imagingFixtures.appendingPathComponent("forged_chunk_length.png"))
        XCTAssertThrowsError(try decodePNG(forged, name: "forged.png")) { error in
            XCTAssertEqual(imagingCaseName(error), "invalidPNG")
            XCTAssertTrue(error.localizedDescription.contains("declares 1933189172 bytes"), error.localizedDescription)
        }
    }

    func testInvalidTextKeysAndWriteFailure() throws {
        let image = try RGB8Image(width: 1, height: 1, pixels: [1, 2, 3])
        for key in ["", String(repeating: "k", count: 80), "日本", " lead", "a  b"] {
            XCTAssertThrowsError(try encodePNG(image, text: [PNGText(key: key, text: "x")]), key) {
                XCTAssertEqual(imagingCaseName($0), "invalidTextKey")
            }
        }
        XCTAssertThrowsError(try encodePNG(image, text: [PNGText(key: "k", text: "a\0b")])) {
            XCTAssertEqual(imagingCaseName($0), "invalidText")
        }
        XCTAssertThrowsError(try writePNG(image, to: URL(fileURLWithPath: "/nonexistent/dir/x.png"))) {
            XCTAssertEqual(imagingCaseName($0), "writeFailed")
        }
    }
}
