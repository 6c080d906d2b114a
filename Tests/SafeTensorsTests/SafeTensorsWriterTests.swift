// Writer tests: our bytes equal those Python's safetensors wrote for the same tensors and
// metadata (exact byte comparison), files read back, and every misuse gets its error with no
// file left behind.

import Foundation
import Kernels
import XCTest
@testable import SafeTensors

final class SafeTensorsWriterTests: XCTestCase {
    func testBytesIdenticalToPython() throws {
        let dir = safeTensorsFixtures.appendingPathComponent("written")
        let spec = try loadJSON(dir.appendingPathComponent("written.json")) as! [String: [String: Any]]
        let scratch = try scratchDirectory("writer")
        defer { try? FileManager.default.removeItem(at: scratch) }
        XCTAssertEqual(spec.count, 3)
        for (name, s) in spec {
            let tensors = s["tensors"] as! [[String: Any]]
            let entries = tensors.map { t in
                (name: t["name"] as! String,
                 dtype: SafeTensorsDType(pythonName: t["dtype"] as! String)!,
                 shape: t["shape"] as! [Int])
            }
            let url = scratch.appendingPathComponent(name + ".safetensors")
            let writer = try SafeTensorsWriter(url: url, entries: entries, metadata: s["metadata"] as! [String: String])
            // Write in reverse declaration order: the writer places each tensor at its offset.
            for t in tensors.reversed() {
                let n = (t["shape"] as! [Int]).reduce(1, *)
                let values = formulaValues(n, salt: t["salt"] as! Int)
                try values.withUnsafeBufferPointer { try writer.write(t["name"] as! String, float32: $0) }
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "nothing under the final name before finish()")
            try writer.finish()
            let ours = try Data(contentsOf: url)
            let python = try Data(contentsOf: dir.appendingPathComponent(name + ".safetensors"))
            XCTAssertEqual(ours.count, python.count, name)
            XCTAssertTrue(ours == python, "\(name): bytes differ from Python's")
            // No temporary files left beside it.
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix(".") }, [])
        }
    }

    func testRoundTripRawAndFloat() throws {
        let scratch = try scratchDirectory("roundtrip")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let url = scratch.appendingPathComponent("m.safetensors")
        let w = try SafeTensorsWriter(url: url, entries: [
            (name: "a", dtype: .F32, shape: [2, 3]), (name: "b", dtype: .U8, shape: [4]), (name: "c", dtype: .F16, shape: []),
        ], metadata: ["prompt": "富士山\n\"q\"", "seed": "1"])
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        try a.withUnsafeBufferPointer { try w.write("a", float32: $0) }
        try [UInt8](arrayLiteral: 9, 8, 7, 6).withUnsafeBytes { try w.write("b", raw: $0) }
        try [Float](arrayLiteral: 0.1).withUnsafeBufferPointer { try w.write("c", float32: $0) }
        try w.finish()
        let f = try SafeTensorsFile(url: url)
        XCTAssertEqual(f.metadata, ["prompt": "富士山\n\"q\"", "seed": "1"])
        XCTAssertEqual(try f.tensor("a").scalars, a)
        XCTAssertEqual(try f.tensor("a").shape, [2, 3])
        XCTAssertEqual(try f.tensor("b").scalars, [9, 8, 7, 6])
        XCTAssertEqual(try f.tensor("c").scalars, [Float(Float16(0.1))])
        XCTAssertEqual(f.names, ["a", "c", "b"])  // F32, F16, U8: Python's layout order
    }

    func testStreamingLargeTensorsAcrossConversionChunks() throws {
        // 1.5M elements: more than the writer's 1M-element conversion chunk, and several
        // parallel chunks when read back. Values are exact in f16 and bf16 (tolerance 0).
        let scratch = try scratchDirectory("large")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let url = scratch.appendingPathComponent("big.safetensors")
        let n = 1_500_000
        let values = (0..<n).map { Float($0 % 256) - 128 }
        let w = try SafeTensorsWriter(url: url, entries: [(name: "h", dtype: .F16, shape: [n / 1000, 1000]),
                                                         (name: "b", dtype: .BF16, shape: [n])], metadata: [:])
        try values.withUnsafeBufferPointer { try w.write("h", float32: $0) }
        try values.withUnsafeBufferPointer { try w.write("b", float32: $0) }
        try w.finish()
        let f = try SafeTensorsFile(url: url)
        XCTAssertEqual(try f.tensor("h").scalars, values)
        XCTAssertEqual(try f.tensor("b").scalars, values)
        XCTAssertEqual(try f.tensor("h").shape, [1500, 1000])
    }

    func testWholeTensorConvenienceWriter() throws {
        let scratch = try scratchDirectory("whole")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let url = scratch.appendingPathComponent("w.safetensors")
        let a = Tensor(shape: [2, 2], data: [1, 2, 3, 4]), b = Tensor(shape: [], data: [0.5])
        try writeSafeTensors(["a": a, "b": b], to: url, dtype: .BF16, metadata: ["k": "v"])
        let f = try SafeTensorsFile(url: url)
        XCTAssertEqual(f.names, ["a", "b"])
        XCTAssertEqual(f.info("a")?.dtype, .BF16)
        XCTAssertEqual(try f.tensor("a").scalars, [1, 2, 3, 4])
        XCTAssertEqual(try f.tensor("b").shape, [])
        XCTAssertEqual(f.metadata, ["k": "v"])
    }

    /// A digest known only after the tensors are written replaces its placeholder in the header.
    func testPatchMetadataPlaceholder() throws {
        let scratch = try scratchDirectory("patch")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let url = scratch.appendingPathComponent("p.safetensors")
        let placeholder = "pending0" + String(repeating: "z", count: 56)
        let writer = try SafeTensorsWriter(url: url, entries: [("x", .F32, [2])], metadata: ["sha": placeholder, "k": "v"])
        try [Float(1), 2].withUnsafeBufferPointer { try writer.write("x", float32: $0) }
        XCTAssertThrowsError(try writer.patchMetadata(placeholder: placeholder, value: "short"))
        XCTAssertThrowsError(try writer.patchMetadata(placeholder: "absent" + String(repeating: "z", count: 58),
                                                      value: String(repeating: "a", count: 64)))
        let digest = String(repeating: "0123456789abcdef", count: 4)
        try writer.patchMetadata(placeholder: placeholder, value: digest)
        try writer.finish()
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.metadata, ["sha": digest, "k": "v"])
        XCTAssertEqual(try file.tensor("x").scalars, [1, 2])
    }

    func testWriterMisuseErrors() throws {
        let scratch = try scratchDirectory("misuse")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let url = scratch.appendingPathComponent("x.safetensors")
        XCTAssertThrowsError(try SafeTensorsWriter(url: url, entries: [(name: "a", dtype: .F32, shape: [1]), (name: "a", dtype: .F16, shape: [1])], metadata: [:])) {
            XCTAssertEqual(caseName($0), "duplicateEntry")
        }
        XCTAssertThrowsError(try SafeTensorsWriter(url: url, entries: [(name: "__metadata__", dtype: .F32, shape: [1])], metadata: [:])) {
            XCTAssertEqual(caseName($0), "invalidName")
        }
        XCTAssertThrowsError(try SafeTensorsWriter(url: scratch.appendingPathComponent("no/such/dir.safetensors"), entries: [], metadata: [:])) {
            XCTAssertEqual(caseName($0), "writeFailed")
        }
        do {
            let w = try SafeTensorsWriter(url: url, entries: [(name: "a", dtype: .F32, shape: [2]), (name: "b", dtype: .BF16, shape: [1])], metadata: [:])
            XCTAssertThrowsError(try [Float](arrayLiteral: 1).withUnsafeBufferPointer { try w.write("a", float32: $0) }) {
                XCTAssertEqual(caseName($0), "wrongElementCount")
            }
            XCTAssertThrowsError(try [UInt8](arrayLiteral: 1).withUnsafeBytes { try w.write("a", raw: $0) }) {
                XCTAssertEqual(caseName($0), "wrongByteCount")
            }
            XCTAssertThrowsError(try [Float](arrayLiteral: 1).withUnsafeBufferPointer { try w.write("zz", float32: $0) }) {
                XCTAssertEqual(caseName($0), "unknownEntry")
            }
            try [Float](arrayLiteral: 1, 2).withUnsafeBufferPointer { try w.write("a", float32: $0) }
            XCTAssertThrowsError(try [Float](arrayLiteral: 1, 2).withUnsafeBufferPointer { try w.write("a", float32: $0) }) {
                XCTAssertEqual(caseName($0), "alreadyWritten")
            }
            XCTAssertThrowsError(try w.finish()) {
                XCTAssertEqual(caseName($0), "notWritten")
                XCTAssertTrue($0.localizedDescription.contains("b"))
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path).count, 1, "temp file exists while writing")
        }
        // The abandoned writer removed its temporary file; nothing was created under the final name.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), [])
    }
}

extension SafeTensorsDType {
    /// torch dtype names used by the fixture script ("float16", "int64", ...).
    init?(pythonName: String) {
        let table: [String: SafeTensorsDType] = [
            "float64": .F64, "float32": .F32, "float16": .F16, "bfloat16": .BF16, "int64": .I64, "int32": .I32,
            "int16": .I16, "int8": .I8, "uint8": .U8, "bool": .BOOL,
        ]
        guard let d = table[pythonName] else { return nil }
        self = d
    }
}
