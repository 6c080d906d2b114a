// WeightStore: dtype conversion, strict accounting, views (scoped, renamed, transposed, row
// slices), folder and index discovery, and config decoding errors.

import Foundation
import Kernels
import XCTest
@testable import Networks

final class WeightsTests: XCTestCase {
    let a = Tensor(shape: [2, 3], data: [1, -2, 0.5, 3, 4.25, -0.125])   // exact in f16
    let b = Tensor(shape: [4], data: [1, 2, 3, 4])

    func store(_ tensors: [(String, Tensor)], dtype: String = "F32") throws -> WeightStore {
        let url = try temporaryFolder(self).appendingPathComponent("w.safetensors")
        try writeTestSafeTensors(tensors, to: url, dtype: dtype)
        return try WeightStore(file: url)
    }

    func testF16WeightsLoadAsF32() throws {
        let s = try store([("a", a)], dtype: "F16")
        XCTAssertEqual(s.dtype(of: "a"), .F16)
        XCTAssertEqual(try s.take("a", shape: [2, 3]).scalars, a.scalars)
    }

    func testTakeChecksShapeAndFinishReportsUnused() throws {
        let s = try store([("a", a), ("b", b)])
        XCTAssertThrowsError(try s.take("a", shape: [3, 2])) { error in
            XCTAssertEqual(error as? NetworksError, .shapeMismatch(key: "a", expected: [3, 2], actual: [2, 3]))
        }
        XCTAssertThrowsError(try s.take("c", shape: [1])) { error in
            XCTAssertEqual(error as? NetworksError, .missingKey("c"))
        }
        XCTAssertNil(try s.optional("c", shape: [1]))
        _ = try s.take("a", shape: [2, 3])
        XCTAssertThrowsError(try s.finish()) { error in
            XCTAssertEqual(error as? NetworksError, .unusedKeys(["b"]))
        }
        XCTAssertNoThrow(try s.finish(allowUnused: true))
        s.ignore { $0 == "b" }
        XCTAssertNoThrow(try s.finish())
    }

    func testScopedViewAccountsOnlyForItsPrefix() throws {
        let s = try store([("te.a", a), ("unet.b", b)])
        let view = s.scoped(prefix: "te.")
        XCTAssertEqual(view.names, ["a"])
        _ = try view.take("a", shape: [2, 3])
        XCTAssertNoThrow(try view.finish())
        XCTAssertEqual(s.unusedNames, ["te.a", "unet.b"])   // the parent keeps its own accounting
    }

    func testRemappedTransposeAndRowSlices() throws {
        let s = try store([("proj", a), ("fused", b)])
        let view = try s.remapped { name, shape in
            name == "proj" ? [("proj.T", .transposed)]
                : [("lo", .rows(0..<shape[0] / 2)), ("hi", .rows(shape[0] / 2..<shape[0]))]
        }
        XCTAssertEqual(view.shape(of: "proj.T"), [3, 2])
        XCTAssertEqual(try view.take("proj.T", shape: [3, 2]).scalars, [1, 3, -2, 4.25, 0.5, -0.125])
        XCTAssertEqual(try view.take("lo", shape: [2]).scalars, [1, 2])
        XCTAssertThrowsError(try view.finish()) { error in
            XCTAssertEqual(error as? NetworksError, .unusedKeys(["fused"]))   // named as stored
        }
        XCTAssertEqual(try view.take("hi", shape: [2]).scalars, [3, 4])
        XCTAssertNoThrow(try view.finish())
    }

    func testShardedIndexAndItsErrors() throws {
        let folder = try temporaryFolder(self)
        try writeTestSafeTensors([("a", a)], to: folder.appendingPathComponent("model-1.safetensors"))
        try writeTestSafeTensors([("b", b)], to: folder.appendingPathComponent("model-2.safetensors"))
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        try #"{"metadata": {}, "weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}"#
            .write(to: index, atomically: true, encoding: .utf8)
        let s = try WeightStore(folder: folder)
        XCTAssertEqual(s.names, ["a", "b"])
        XCTAssertEqual(try s.take("b", shape: [4]).scalars, b.scalars)

        try #"{"weight_map": {"a": "model-1.safetensors", "b": "model-3.safetensors"}}"#
            .write(to: index, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try WeightStore(folder: folder)) { error in
            XCTAssertEqual(error as? NetworksError,
                           .invalidIndex(file: index.path, reason: "shard 'model-3.safetensors' does not exist"))
        }
    }

    func testVariantPicksItsFile() throws {
        let folder = try temporaryFolder(self)
        try writeTestSafeTensors([("a", a)], to: folder.appendingPathComponent("model.safetensors"))
        try writeTestSafeTensors([("b", b)], to: folder.appendingPathComponent("model.fp16.safetensors"), dtype: "F16")
        XCTAssertEqual(try WeightStore(folder: folder).names, ["a"])
        let fp16 = try WeightStore(folder: folder, variant: "fp16")
        XCTAssertEqual(fp16.names, ["b"])
        XCTAssertEqual(fp16.dtype(of: "b"), .F16)
    }

    func testFolderWithSeveralFilesAndNoIndexIsAnError() throws {
        let folder = try temporaryFolder(self)
        try writeTestSafeTensors([("a", a)], to: folder.appendingPathComponent("x.safetensors"))
        try writeTestSafeTensors([("b", b)], to: folder.appendingPathComponent("y.safetensors"))
        XCTAssertThrowsError(try WeightStore(folder: folder)) { error in
            guard case .noWeights(let path, _)? = error as? NetworksError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, folder.path)
        }
        XCTAssertThrowsError(try WeightStore(file: folder.appendingPathComponent("model.ckpt"))) { error in
            XCTAssertEqual(error as? NetworksError, .pickleRefused(file: folder.appendingPathComponent("model.ckpt").path))
        }
    }

    func testConfigErrorsNameTheFieldAndFile() throws {
        let url = try temporaryFolder(self).appendingPathComponent("config.json")
        try #"{"vocab_size": 10, "hidden_size": "wide"}"#.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadConfig(BERTConfig.self, from: url)) { error in
            guard case .invalidConfig(let file, let reason)? = error as? NetworksError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, url.path)
            XCTAssertTrue(reason.contains("hidden_size"), reason)
        }
        try #"{"vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 4}"#
            .write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadConfig(BERTConfig.self, from: url)) { error in
            XCTAssertEqual(error as? NetworksError, .missingConfigField(file: url.path, field: "num_hidden_layers"))
        }
    }
}
