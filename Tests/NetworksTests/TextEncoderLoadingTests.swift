// Strict loading of text encoders: every bad input gets the error that names the key, the shapes
// or the config field. Broken checkpoints are made from the clip_folder / bert_series fixtures.

import Foundation
import Kernels
import XCTest
@testable import Networks

final class TextEncoderLoadingTests: XCTestCase {
    typealias F = TextEncoderFixtures

    /// A copy of a fixture folder whose weights are `edit`ed and config.json `configEdit`ed.
    func brokenCopy(of name: String,
                    weights edit: ([(String, Tensor)]) -> [(String, Tensor)] = { $0 },
                    config configEdit: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
        let src = F.folder(name)
        let dst = try temporaryFolder(self)
        let tensors = try readAll(src.appendingPathComponent("model.safetensors"))
        try writeTestSafeTensors(edit(tensors), to: dst.appendingPathComponent("model.safetensors"))
        var config = try JSONSerialization.jsonObject(
            with: Data(contentsOf: src.appendingPathComponent("config.json"))) as! [String: Any]
        configEdit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dst.appendingPathComponent("config.json"))
        return dst
    }

    func assertThrows(_ expected: NetworksError, _ body: () throws -> Void,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? NetworksError, expected, file: file, line: line)
            XCTAssertFalse((error as? LocalizedError)?.errorDescription?.isEmpty ?? true, file: file, line: line)
        }
    }

    func testUnmodifiedCopyLoads() throws {
        XCTAssertNoThrow(try TextEncoder.load(folder: try brokenCopy(of: "clip_folder")))
    }

    func testMissingKeyIsNamed() throws {
        let folder = try brokenCopy(of: "clip_folder", weights: { $0.filter { $0.0 != "text_model.final_layer_norm.bias" } })
        assertThrows(.missingKey("final_layer_norm.bias")) { _ = try TextEncoder.load(folder: folder) }
    }

    func testUnusedKeyIsNamedUnlessAllowed() throws {
        let folder = try brokenCopy(of: "clip_folder", weights: { $0 + [("text_model.extra.weight", Tensor(shape: [2]))] })
        assertThrows(.unusedKeys(["text_model.extra.weight"])) { _ = try TextEncoder.load(folder: folder) }
        XCTAssertNoThrow(try TextEncoder.load(folder: folder, allowUnused: true))
    }

    func testShapeMismatchNamesKeyAndShapes() throws {
        let folder = try brokenCopy(of: "clip_folder", config: { $0["intermediate_size"] = 40 })
        assertThrows(.shapeMismatch(key: "encoder.layers.0.mlp.fc1.weight", expected: [40, 32], actual: [37, 32])) {
            _ = try TextEncoder.load(folder: folder)
        }
    }

    func testMissingConfigFieldIsNamed() throws {
        let folder = try brokenCopy(of: "clip_folder", config: { $0.removeValue(forKey: "hidden_size") })
        let file = folder.appendingPathComponent("config.json").path
        assertThrows(.missingConfigField(file: file, field: "hidden_size")) { _ = try TextEncoder.load(folder: folder) }
    }

    func testSeriesModelWithoutProjectDimNamesTheField() throws {
        let folder = try brokenCopy(of: "bert_series", config: { $0.removeValue(forKey: "project_dim") })
        let file = folder.appendingPathComponent("config.json").path
        assertThrows(.missingConfigField(file: file, field: "project_dim")) { _ = try TextEncoder.load(folder: folder) }
    }

    func testUnknownArchitectureIsNamed() throws {
        let folder = try brokenCopy(of: "clip_folder", config: { $0["architectures"] = ["GPT2Model"] })
        let file = folder.appendingPathComponent("config.json").path
        assertThrows(.unsupportedArchitecture(file: file, name: "GPT2Model")) { _ = try TextEncoder.load(folder: folder) }
    }

    func testUnknownActivationIsNamed() throws {
        let folder = try brokenCopy(of: "bert_folder", config: { $0["hidden_act"] = "mish" })
        let file = folder.appendingPathComponent("config.json").path
        assertThrows(.unsupportedArchitecture(file: file, name: "hidden_act=mish")) { _ = try TextEncoder.load(folder: folder) }
    }

    func testPickleCheckpointIsRefused() throws {
        let folder = try temporaryFolder(self)
        try FileManager.default.copyItem(at: F.folder("clip_folder").appendingPathComponent("config.json"),
                                         to: folder.appendingPathComponent("config.json"))
        try Data([0x80, 0x02]).write(to: folder.appendingPathComponent("pytorch_model.bin"))
        let bin = folder.appendingPathComponent("pytorch_model.bin").path
        assertThrows(.pickleRefused(file: bin)) { _ = try TextEncoder.load(folder: folder) }
    }

    func testSingleFileWithoutTheTextEncoderIsExplained() throws {
        let checkpoint = try WeightStore(file: F.folder("sd1_single").appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try TextEncoder.load(checkpoint: checkpoint, part: .sd2)) { error in
            guard case .unrecognizedCheckpoint(_, let reason)? = error as? NetworksError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(reason.contains("cond_stage_model.model."), reason)
        }
    }

    // The shape lists the benchmarks build random models from are exactly what the models load.
    func testParameterShapesMatchFixtureCheckpoints() throws {
        let clipFolder = F.folder("clip_folder")
        let clip = try CLIPTextKeyMap.transformers(try WeightStore(folder: clipFolder))
        let clipShapes = try F.clipConfig(clipFolder).parameterShapes()
        XCTAssertEqual(Set(clip.names), Set(clipShapes.keys))
        for name in clip.names { XCTAssertEqual(clip.shape(of: name), clipShapes[name], name) }

        let bertFolder = F.folder("bert_folder")
        let bert = try WeightStore(folder: bertFolder)
        let config = try loadConfig(BERTConfig.self, from: bertFolder.appendingPathComponent("config.json"))
        let bertShapes = config.parameterShapes()
        XCTAssertEqual(Set(bert.names), Set(bertShapes.keys))
        for name in bert.names { XCTAssertEqual(bert.shape(of: name), bertShapes[name], name) }
    }

    // A model built from in-memory tensors uses every one of them and runs.
    func testInMemoryStoreBuildsAModel() throws {
        let config = CLIPTextConfig(vocabSize: 50, hiddenSize: 16, intermediateSize: 20, numHiddenLayers: 2,
                                    numAttentionHeads: 2, maxPositionEmbeddings: 8, eosTokenId: 49)
        var tensors: [String: Tensor] = [:]
        for (name, shape) in config.parameterShapes(withProjection: true) {
            tensors[name] = Tensor(shape: shape, repeating: 0.01)
        }
        let store = WeightStore(tensors: tensors)
        let model = try CLIPTextModel(config: config, weights: store)
        XCTAssertNoThrow(try store.finish())
        let output = try model(ids: [[48, 3, 4, 49, 49]])
        XCTAssertEqual(output.hiddenStates.count, 3)
        XCTAssertEqual(output.textEmbeds?.shape, [1, 512])
        XCTAssertEqual(model.endOfTextPosition([48, 3, 4, 49, 49]), 3)   // the first end token
    }

    func testBadTokenIdsAreRejected() throws {
        let encoder = try TextEncoder.load(folder: F.folder("clip_folder"))
        XCTAssertThrowsError(try encoder(ids: [[97, 99, 98]])) { error in
            guard case .invalidInput(let message)? = error as? NetworksError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("99"), message)
        }
        XCTAssertThrowsError(try encoder(ids: [Array(repeating: 5, count: 17)]))   // 17 > 16 positions
        XCTAssertThrowsError(try encoder(ids: [[1, 2], [1]]))                      // ragged batch
        XCTAssertThrowsError(try encoder(ids: [[1, 2]], attentionMask: [[1]]))      // mask shape
        let bert = try TextEncoder.load(folder: F.folder("bert_folder"))
        XCTAssertThrowsError(try bert(ids: [[2, 5, 3]], tokenTypeIds: [[0, 2, 0]]))  // type_vocab_size 2
    }
}
