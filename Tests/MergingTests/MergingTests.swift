import Foundation
import Kernels
import SafeTensors
import XCTest

@testable import Merging

let mergingFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/Merging")

/// The methods against mergekit's own functions (Tools/fixtures/merging_reference.py) and their formulas.
final class MergeMethodTests: XCTestCase {
    let file = try! SafeTensorsFile(url: mergingFixtures.appendingPathComponent("methods.safetensors"))
    func t(_ name: String) -> [Float] { try! file.tensor(name).scalars }

    func run(_ body: (UnsafeMutableBufferPointer<Float>) -> Void) -> [Float] {
        var out = [Float](repeating: 0, count: 512)
        out.withUnsafeMutableBufferPointer { body($0) }
        return out
    }

    func assertClose(_ a: [Float], _ b: [Float], _ tolerance: Float, _ message: String) {
        XCTAssertEqual(a.count, b.count, message)
        let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(diff, tolerance, "\(message): max abs difference \(diff)")
    }

    func testTIESAndTaskArithmeticEqualMergekit() {
        let base = t("base"), m1 = t("m1"), m2 = t("m2")
        withBuffers([base, m1, m2]) { b in
            // Tolerance 1e-6: same float32 arithmetic up to summation order.
            let ties = run { mergeTaskVectors(base: b[0], models: [b[1], b[2]], options: TaskVectorOptions(
                weights: [0.7, 0.5], densities: [0.5, 0.3], sparsify: .magnitude, consensus: true, normalize: true), into: $0) }
            assertClose(ties, t("ties"), 1e-6, "ties")
            let plain = run { mergeTaskVectors(base: b[0], models: [b[1], b[2]], options: TaskVectorOptions(
                weights: [1, 1], densities: [0.2, 0.9], sparsify: .magnitude, consensus: true, normalize: false), into: $0) }
            assertClose(plain, t("ties_unnormalized"), 1e-6, "ties, not normalised")
            let arithmetic = run { mergeTaskVectors(base: b[0], models: [b[1], b[2]], options: TaskVectorOptions(
                weights: [0.7, 0.5], densities: [1, 1], sparsify: .none, consensus: false, normalize: false), into: $0) }
            assertClose(arithmetic, t("task_arithmetic"), 1e-6, "task arithmetic")
        }
    }

    func testSlerpEqualsMergekitAndFallsBackToLinear() {
        withBuffers([t("base"), t("far"), t("near")]) { b in
            assertClose(run { mergeSlerp(a: b[0], b: b[1], t: 0.3, rows: 8, into: $0) }, t("slerp"), 1e-5, "slerp")
            assertClose(run { mergeSlerp(a: b[0], b: b[2], t: 0.6, rows: 8, into: $0) }, t("slerp_near"), 1e-5, "slerp, parallel rows")
        }
    }

    func testLinearAndAddDifferenceFormulas() {
        let a: [Float] = [1, 2, 3], b: [Float] = [3, 2, 1], c: [Float] = [1, 1, 1]
        withBuffers([a, b, c]) { x in
            var out = [Float](repeating: 0, count: 3)
            out.withUnsafeMutableBufferPointer { mergeLinear([x[0], x[1]], weights: [0.75, 0.25], normalize: false, into: $0) }
            XCTAssertEqual(out, [1.5, 2, 2.5])
            out.withUnsafeMutableBufferPointer { mergeLinear([x[0], x[1]], weights: [3, 1], normalize: true, into: $0) }
            XCTAssertEqual(out, [1.5, 2, 2.5])
            out.withUnsafeMutableBufferPointer { mergeAddDifference(a: x[0], b: x[1], c: x[2], alpha: 0.5, into: $0) }
            XCTAssertEqual(out, [2, 2.5, 3])   // a + 0.5 (b - c)
        }
    }

    func testDAREMaskStatisticsAndRescaling() {
        let n = 100_000
        var rng = SplitMix64(seed: 1)
        let x = (0..<n).map { _ in Float(rng.nextUniform() * 2 - 1) }
        for density: Float in [0.1, 0.3, 0.9] {
            var kept = x
            var r = SplitMix64(seed: 42)
            dropAndRescale(&kept, density: density, rescale: .density, rng: &r)
            let survivors = kept.indices.filter { kept[$0] != 0 }
            let fraction = Double(survivors.count) / Double(n)
            // Binomial: 5 standard deviations of the kept fraction.
            XCTAssertEqual(fraction, Double(density), accuracy: 5 * (Double(density) * Double(1 - density) / Double(n)).squareRoot())
            for i in survivors.prefix(1000) { XCTAssertEqual(kept[i], x[i] / density, "rescaled by 1/density exactly") }
            var again = x
            var r2 = SplitMix64(seed: 42)
            dropAndRescale(&again, density: density, rescale: .density, rng: &r2)
            XCTAssertEqual(again, kept, "the same seed drops the same entries")
            var l1 = x
            var r3 = SplitMix64(seed: 42)
            dropAndRescale(&l1, density: density, rescale: .l1, rng: &r3)
            let before = x.reduce(Float(0)) { $0 + abs($1) }, after = l1.reduce(Float(0)) { $0 + abs($1) }
            XCTAssertEqual(after, before, accuracy: before * 1e-4, "l1 rescale keeps the L1 norm")
        }
    }

    func testMagnitudeKeepsTheLargest() {
        var x: [Float] = [0.1, -5, 3, 0.2, -0.3, 4]
        keepLargestMagnitudes(&x, density: 0.5)
        XCTAssertEqual(x, [0, -5, 3, 0, 0, 4])
        var y: [Float] = [1, 2]
        keepLargestMagnitudes(&y, density: 0.01)
        XCTAssertEqual(y, [0, 2], "a positive density keeps at least one entry")
    }

    func testSHA256KnownDigests() throws {
        var h = SHA256Hasher()
        Data("abc".utf8).withUnsafeBytes { h.update($0) }
        XCTAssertEqual(h.finalize(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var long = SHA256Hasher()
        let million = Data(repeating: 0x61, count: 1_000_000)
        million.withUnsafeBytes { long.update($0) }
        XCTAssertEqual(long.finalize(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The SHA-extension path and the portable one agree on every length and split of the input.
    func testSHA256HardwareEqualsPortable() throws {
        var rng = SystemRandomNumberGenerator()
        let data = Data((0..<20_000).map { _ in UInt8.random(in: 0...255, using: &rng) })
        for length in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 4097, 20_000] {
            var fast = SHA256Hasher(), slow = SHA256Hasher()
            slow.useHardware = false
            let piece = data.prefix(length)
            let cut = length / 3
            piece.prefix(cut).withUnsafeBytes { fast.update($0); slow.update($0) }
            piece.dropFirst(cut).withUnsafeBytes { fast.update($0); slow.update($0) }
            XCTAssertEqual(fast.finalize(), slow.finalize(), "length \(length)")
        }
        if !SHA256Hasher.hardware { print("note: no SHA extensions on this CPU; both sides were the portable code") }
    }
}

/// Block and module assignment on the real SD1.5 and SDXL UNet tensor names.
final class BlockMapTests: XCTestCase {
    struct Key: Decodable { let name: String; let block: String }

    func testDiffusersNamesOfRealConfigs() throws {
        let keys = try JSONDecoder().decode([String: [Key]].self, from: Data(contentsOf: mergingFixtures.appendingPathComponent("blocks.json")))
        for (family, list) in keys {
            XCTAssertGreaterThan(list.count, 600)
            for key in list {
                XCTAssertEqual(blockName("unet/" + key.name), key.block, "\(family) \(key.name)")
                XCTAssertEqual(blockName(key.name), key.block, "\(family) \(key.name) without a prefix")
            }
            let expected = Set(blockNames(sdxl: family == "sdxl"))
            XCTAssertEqual(Set(list.map(\.block)), expected, "\(family): every block of the layout is used")
            let attention = list.filter { moduleClass("unet/" + $0.name) == .attention }
            XCTAssertTrue(attention.allSatisfy { $0.name.contains("attentions") }, family)
            XCTAssertGreaterThan(attention.count, list.count / 3)
        }
    }

    func testLDMNamesAndOtherComponents() {
        XCTAssertEqual(tensorPlace("model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"),
                       TensorPlace(block: "IN04", module: .attention))
        XCTAssertEqual(tensorPlace("model.diffusion_model.input_blocks.4.1.proj_in.weight"), TensorPlace(block: "IN04", module: .attention))
        XCTAssertEqual(tensorPlace("model.diffusion_model.input_blocks.4.0.in_layers.2.weight"), TensorPlace(block: "IN04", module: .other))
        XCTAssertEqual(tensorPlace("model.diffusion_model.middle_block.1.norm.bias"), TensorPlace(block: "M00", module: .attention))
        XCTAssertEqual(tensorPlace("model.diffusion_model.output_blocks.11.0.skip_connection.weight").block, "OUT11")
        XCTAssertEqual(blockName("model.diffusion_model.time_embed.0.weight"), "BASE")
        XCTAssertEqual(blockName("first_stage_model.decoder.up.0.block.0.conv1.weight"), "BASE")
        XCTAssertEqual(blockName("vae/decoder.up_blocks.0.resnets.0.conv1.weight"), "BASE", "only the UNet has blocks")
        XCTAssertEqual(tensorPlace("cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"),
                       TensorPlace(block: "BASE", module: .attention))
        XCTAssertTrue(globMatches("*.norm*", "model.diffusion_model.out.0.norm1.weight"))
        XCTAssertFalse(globMatches("*.norm", "a.norm.weight"))
    }
}
