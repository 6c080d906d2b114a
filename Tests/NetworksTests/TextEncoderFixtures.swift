// Helpers for the text-encoder tests: the fixture folder (written by
// Tools/fixtures/text_encoders.py), expected tensors, comparison, and a tiny safetensors writer to
// make broken checkpoints for the error tests (independent of the SafeTensors module under test).

import Foundation
import Kernels
import SafeTensors
import XCTest
@testable import Networks

enum TextEncoderFixtures {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/TextEncoders")

    static func folder(_ name: String) -> URL { root.appendingPathComponent(name) }

    /// The expected outputs of one fixture (all F32).
    static func expected(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: folder(name).appendingPathComponent("expected.safetensors"))
    }

    /// A [B, T] F32 tensor of small integers as B rows of T ints.
    static func intRows(_ file: SafeTensorsFile, _ name: String) throws -> [[Int]] {
        let t = try file.tensor(name)
        let rows = t.shape[0], cols = t.shape[1]
        let values = t.scalars
        return (0..<rows).map { r in (0..<cols).map { c in Int(values[r * cols + c].rounded()) } }
    }

    static func clipConfig(_ url: URL) throws -> CLIPTextConfig {
        try loadConfig(CLIPTextConfig.self, from: url.appendingPathComponent("config.json"))
    }
}

/// Asserts max |actual - expected| <= tolerance, with the shapes equal.
func assertClose(_ actual: Tensor?, _ expected: Tensor, tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard let actual else {
        XCTFail("\(what): missing output", file: file, line: line)
        return
    }
    XCTAssertEqual(actual.shape, expected.shape, "\(what): shape", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    var worst: Float = 0
    actual.withUnsafeBufferPointer { a in
        expected.withUnsafeBufferPointer { e in
            for i in 0..<a.count {
                let d = abs(a[i] - e[i])
                if !(d <= worst) { worst = d.isNaN ? .infinity : d }
            }
        }
    }
    XCTAssertLessThanOrEqual(worst, tolerance, "\(what): max abs difference \(worst)", file: file, line: line)
}

/// Compares every `<prefix>hidden_states.N`, `last_hidden_state` and the pooled/projected outputs
/// that the expected file has.
func assertMatches(_ output: TextEncoderOutput, _ expected: SafeTensorsFile, prefix: String = "",
                   tolerance: Float, file: StaticString = #filePath, line: UInt = #line) throws {
    var n = 0
    while let _ = expected.info("\(prefix)hidden_states.\(n)") { n += 1 }
    XCTAssertEqual(output.hiddenStates.count, n, "\(prefix)hidden_states count", file: file, line: line)
    for i in 0..<min(n, output.hiddenStates.count) {
        assertClose(output.hiddenStates[i], try expected.tensor("\(prefix)hidden_states.\(i)"),
                    tolerance: tolerance, "\(prefix)hidden_states.\(i)", file: file, line: line)
    }
    assertClose(output.lastHiddenState, try expected.tensor(prefix + "last_hidden_state"),
                tolerance: tolerance, prefix + "last_hidden_state", file: file, line: line)
    let optionals: [(String, Tensor?)] = [("pooler_output", output.pooled), ("text_embeds", output.textEmbeds),
                                         ("projection_state", output.projectionState)]
    for (name, value) in optionals where expected.info(prefix + name) != nil {
        assertClose(value, try expected.tensor(prefix + name), tolerance: tolerance, prefix + name,
                    file: file, line: line)
    }
}

/// A minimal safetensors writer (F32 only) for building deliberately broken checkpoints.
func writeTestSafeTensors(_ tensors: [(String, Tensor)], to url: URL, dtype: String = "F32") throws {
    var header: [String: Any] = [:]
    var body = Data()
    for (name, tensor) in tensors {
        let start = body.count
        tensor.withUnsafeBufferPointer { buf in
            if dtype == "F16" {
                for v in buf { withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { body.append(contentsOf: $0) } }
            } else {
                body.append(UnsafeBufferPointer(start: buf.baseAddress, count: buf.count))
            }
        }
        header[name] = ["dtype": dtype, "shape": tensor.shape, "data_offsets": [start, body.count]]
    }
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    while json.count % 8 != 0 { json.append(0x20) }
    var out = Data()
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
    out.append(json)
    out.append(body)
    try out.write(to: url)
}

/// A scratch folder removed when the test ends.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("jpgen-te-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// All tensors of a safetensors file, in header order.
func readAll(_ url: URL) throws -> [(String, Tensor)] {
    let file = try SafeTensorsFile(url: url)
    return try file.names.map { ($0, try file.tensor($0)) }
}
