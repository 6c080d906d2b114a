// Shared helpers for the SafeTensors tests: fixture paths, JSON loading, error-case names.

import Foundation
import XCTest
@testable import SafeTensors

let safeTensorsFixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/SafeTensors")

/// The first bytes of PyTorch's two pickle checkpoint formats as torch.save writes them (only
/// safetensors files ship in the repository, so the tests write these at run time): a zip local
/// file header naming archive/data.pkl, and pickle protocol 2 followed by torch's magic number.
let pickleCheckpointBytes: [String: [UInt8]] = [
    "model.ckpt": [0x50, 0x4B, 0x03, 0x04] + [UInt8](repeating: 0, count: 22) + [16, 0, 0, 0] + Array("archive/data.pkl".utf8),
    "legacy.pt": [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E, 0x80],
]

func loadJSON(_ url: URL) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url))
}

/// The enum case name of an error ("truncated", "sizeMismatch", ...).
func caseName(_ error: Error) -> String {
    let mirror = Mirror(reflecting: error)
    if let label = mirror.children.first?.label { return label }
    return String(describing: error)
}

/// A fixture JSON value as Float: numbers, or "nan" / "inf" / "-inf".
func fixtureFloat(_ v: Any) -> Float {
    if let s = v as? String {
        switch s {
        case "nan": return .nan
        case "inf": return .infinity
        default: return -.infinity
        }
    }
    return Float((v as! NSNumber).doubleValue)
}

/// The fixture formula: ((i * 37 + salt) % 101) / 8 - 6, exact in Float32.
func formulaValues(_ n: Int, salt: Int) -> [Float] {
    (0..<n).map { Float(($0 * 37 + salt) % 101) / 8 - 6 }
}

/// A fresh scratch directory under the system temporary directory.
func scratchDirectory(_ name: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("jpgen-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
