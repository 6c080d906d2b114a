import Foundation
import Kernels
import SafeTensors
import XCTest

@testable import Diffusion

/// torch.randn, value for value (Tools/fixtures/torch_randn.py): several seeds (one past 2^32),
/// shapes of every size class (< 16, multiples of 16, remainders), and call sequences on one generator.
final class TorchGeneratorTests: XCTestCase {
    struct Case: Decodable { let seed: UInt64; let shapes: [[Int]] }
    struct Cases: Decodable { let torch: String; let cases: [Case] }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Diffusion")

    func testRandnEqualsTorch() throws {
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("torch_randn.json")))
        let expected = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("torch_randn.safetensors"))
        var compared = 0, mismatched = 0
        for (i, c) in cases.cases.enumerated() {
            var generator = TorchGenerator(seed: c.seed)
            for (k, shape) in c.shapes.enumerated() {
                let values = generator.randn(shape).scalars
                let head = try expected.tensor("case\(i).draw\(k).head").scalars
                let tail = try expected.tensor("case\(i).draw\(k).tail").scalars
                for (a, b) in zip(values.prefix(head.count), head) {
                    compared += 1
                    if a.bitPattern != b.bitPattern { mismatched += 1 }
                    // Tolerance: exact is the goal; 1e-6 absolute is the bound asserted.
                    XCTAssertEqual(a, b, accuracy: 1e-6, "seed \(c.seed) draw \(k) \(shape)")
                }
                XCTAssertEqual(Array(values.suffix(16)), tail, "seed \(c.seed) draw \(k): last 16 values")
            }
        }
        XCTAssertGreaterThan(compared, 30_000)
        print("torch.randn: \(compared - mismatched) of \(compared) values bit-identical")
        XCTAssertEqual(mismatched, 0, "every value bit-identical to torch \(cases.torch)")
    }

    func testEngineMatchesTheMT19937ReferenceSequence() {
        // std::mt19937 seeded with 5489 yields 3499211612 first, and 4123659995 as its 10000th value
        // (C++ standard, [rand.predef]).
        var generator = TorchGenerator(seed: 5489)
        XCTAssertEqual(generator.random(), 3_499_211_612)
        for _ in 0..<9_998 { _ = generator.random() }
        XCTAssertEqual(generator.random(), 4_123_659_995)
    }
}
