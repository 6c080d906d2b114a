// Reader tests: files written by Python's safetensors (Tools/fixtures/safetensors_fixtures.py),
// every dtype converted to Float32 and compared exactly (tolerance 0: conversions to Float32 are
// exact for these values, and torch's `.float()` is the reference), and every malformed input
// refused with its own SafeTensorsError case that names the file.

import Foundation
import XCTest
@testable import SafeTensors

final class SafeTensorsReaderTests: XCTestCase {
    func testPythonWrittenFilesReadExactly() throws {
        let dir = safeTensorsFixtures.appendingPathComponent("good")
        let expected = try loadJSON(dir.appendingPathComponent("expected.json")) as! [String: [String: Any]]
        XCTAssertEqual(expected.count, 3)
        for (fileName, spec) in expected {
            let file = try SafeTensorsFile(url: dir.appendingPathComponent(fileName))
            XCTAssertEqual(file.metadata, spec["metadata"] as! [String: String], fileName)
            let tensors = spec["tensors"] as! [String: [String: Any]]
            XCTAssertEqual(Set(file.names), Set(tensors.keys), fileName)
            for (name, t) in tensors {
                let info = try XCTUnwrap(file.info(name), name)
                XCTAssertEqual(info.shape, t["shape"] as! [Int], name)
                let tensor = try file.tensor(name)
                XCTAssertEqual(tensor.shape, info.shape, name)
                let want = (t["values"] as! [Any]).map(fixtureFloat)
                let got = tensor.scalars
                XCTAssertEqual(got.count, want.count, name)
                for (i, (g, w)) in zip(got, want).enumerated() {
                    if w.isNaN {
                        XCTAssertTrue(g.isNaN, "\(name)[\(i)]: \(g) should be NaN")
                    } else {
                        XCTAssertEqual(g.bitPattern, w.bitPattern, "\(name)[\(i)]: \(g) != \(w)")
                    }
                }
            }
        }
    }

    func testDTypesHeaderOrderAndRawBytes() throws {
        let file = try SafeTensorsFile(url: safeTensorsFixtures.appendingPathComponent("good/all_dtypes.safetensors"))
        XCTAssertEqual(file.info("f16.special")?.dtype, .F16)
        XCTAssertEqual(file.info("bf16.random")?.dtype, .BF16)
        XCTAssertEqual(file.info("f8e4m3.vals")?.dtype, .F8_E4M3)
        XCTAssertEqual(file.info("f32.scalar")?.shape, [])
        XCTAssertEqual(try file.tensor("f32.scalar").count, 1)
        XCTAssertEqual(file.info("f32.empty")?.byteRange.count, 0)
        XCTAssertEqual(try file.rawBytes("f32.empty").count, 0)
        XCTAssertEqual(file.metadata["title"], "富士山と江ノ島")
        // Python lays tensors out by dtype then name; header order is JSON order = data order.
        let offsets = file.names.map { file.info($0)!.byteRange.lowerBound }
        XCTAssertEqual(offsets, offsets.sorted())
        let raw = try file.rawBytes("i16.vals")
        XCTAssertEqual(raw.count, 6)
        XCTAssertEqual(raw.loadUnaligned(fromByteOffset: 0, as: Int16.self), -32768)
        XCTAssertNil(file.info("absent"))
        XCTAssertThrowsError(try file.tensor("absent")) { XCTAssertEqual(caseName($0), "missingTensor") }
    }

    func testBadFilesEachGetTheirOwnError() throws {
        let dir = safeTensorsFixtures.appendingPathComponent("bad")
        let expected = try loadJSON(dir.appendingPathComponent("bad.json")) as! [String: String]
        XCTAssertGreaterThanOrEqual(expected.count, 20)
        for (fileName, wantCase) in expected.sorted(by: { $0.key < $1.key }) {
            let url = dir.appendingPathComponent(fileName)
            XCTAssertThrowsError(try SafeTensorsFile(url: url), fileName) { error in
                XCTAssertEqual(caseName(error), wantCase, "\(fileName): \(error)")
                let message = error.localizedDescription
                XCTAssertTrue(message.contains(fileName), "message must name the file: \(message)")
            }
        }
    }

    func testPickleCheckpointsAreRefusedAndTheMessageSaysToConvert() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pickle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let formats = ["model.ckpt": "zip archive written by torch.save", "legacy.pt": "pickle protocol 2"]
        for (name, bytes) in pickleCheckpointBytes {
            let url = folder.appendingPathComponent(name)
            try Data(bytes).write(to: url)
            XCTAssertThrowsError(try SafeTensorsFile(url: url), name) { error in
                XCTAssertEqual(caseName(error), "pickleCheckpoint", name)
                let message = error.localizedDescription
                for phrase in [url.path, formats[name]!, "convert it to .safetensors"] {
                    XCTAssertTrue(message.contains(phrase), "\(name): \(message)")
                }
            }
        }
    }

    func testMissingFileAndDirectory() {
        XCTAssertThrowsError(try SafeTensorsFile(url: URL(fileURLWithPath: "/nonexistent/x.safetensors"))) {
            XCTAssertEqual(caseName($0), "cannotOpen")
        }
        XCTAssertThrowsError(try SafeTensorsFile(url: safeTensorsFixtures)) { XCTAssertEqual(caseName($0), "cannotOpen") }
    }

    /// Every truncation of a valid file is refused (never a partial read treated as good).
    func testEveryTruncationIsRefused() throws {
        let data = try Data(contentsOf: safeTensorsFixtures.appendingPathComponent("written/mixed.safetensors"))
        try data.withUnsafeBytes { bytes in
            XCTAssertNoThrow(try parseSafeTensorsHeader(bytes, file: "mixed"))
            for n in 0..<bytes.count {
                XCTAssertThrowsError(try parseSafeTensorsHeader(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), file: "cut")) {
                    XCTAssertTrue(["truncated", "headerLengthPastEnd", "headerNotJSON"].contains(caseName($0)), "\(n): \($0)")
                }
            }
        }
    }

    func testHeaderPaddingAndUnknownFieldsAccepted() throws {
        // Trailing spaces (Python's padding) and extra per-tensor fields (serde ignores them).
        let json = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":[1,{"x":null}]}}   "#
        var bytes = [UInt8](repeating: 0, count: 8)
        let h = Array(json.utf8)
        for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: h.count >> (8 * i)) }
        bytes += h + [0, 0, 128, 63]
        let header = try bytes.withUnsafeBytes { try parseSafeTensorsHeader($0, file: "x") }
        XCTAssertEqual(header.tensors.map(\.name), ["a"])
        XCTAssertEqual(header.dataSize, 4)
    }

    func testHeaderLengthThatLooksLikePickleMagicIsStillSafetensors() throws {
        // A 640-byte header: the length prefix begins 0x80 0x02, the pickle protocol-2 magic.
        var json = Array(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#.utf8)
        json += [UInt8](repeating: 0x20, count: 640 - json.count)
        let bytes = [0x80, 0x02, 0, 0, 0, 0, 0, 0] + json + [7]
        let header = try bytes.withUnsafeBytes { try parseSafeTensorsHeader($0, file: "x") }
        XCTAssertEqual(header.tensors.first?.name, "a")
        // The same prefix without a JSON header is a pickle.
        XCTAssertThrowsError(try ([0x80, 0x02, 0x7D, 0x71] as [UInt8]).withUnsafeBytes { try parseSafeTensorsHeader($0, file: "x") }) {
            XCTAssertEqual(caseName($0), "pickleCheckpoint")
        }
    }

    func testJSONParserEscapesAndLimits() throws {
        func parse(_ s: String) throws -> JSONValue { try Array(s.utf8).withUnsafeBytes { try JSONParser.parse($0) } }
        XCTAssertEqual(try parse(#""a\u00e9\ud83d\ude00\n\"""#), .string("aé😀\n\""))
        XCTAssertEqual(try parse(" [1, -2, 3.5, true, null] "), .array([.integer(1), .integer(-2), .number("3.5"), .bool(true), .null]))
        XCTAssertThrowsError(try parse(#""\ud800""#))
        XCTAssertThrowsError(try parse("[1,]"))
        XCTAssertThrowsError(try parse("01"))
        XCTAssertThrowsError(try parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)))
        XCTAssertThrowsError(try parse("\"a\u{1}\""))
    }
}
