// `jpgen inspect FILE`: a safetensors file's summary (tensor count, dtypes, parameters, the
// largest tensors, __metadata__), as text or JSON. Bad files exit non-zero with the library's
// message (SafeTensorsError names the file and the problem).

import ArgumentParser
import Foundation
import SafeTensors

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarise a safetensors file, or a diffusers model folder (family, defaults, parts, parameters, dtypes).")

    @Argument(help: "A .safetensors file or a diffusers pipeline folder.") var file: String
    @Flag(name: .long, help: "Print the summary as JSON.") var json = false
    @Option(name: .long, help: "How many of the largest tensors to list.") var top = 10

    func validate() throws {
        guard top >= 0 else { throw ValidationError("--top must be non-negative") }
    }

    func run() throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: file, isDirectory: &isDir), isDir.boolValue {
            do {
                let model = try ModelSummary(folder: URL(fileURLWithPath: file))
                print(json ? model.jsonText : model.text)
                return
            } catch {
                FileHandle.standardError.write(Data("error: \(error.localizedDescription)\n".utf8))
                throw ExitCode.failure
            }
        }
        let summary: SafeTensorsSummary
        do {
            summary = try SafeTensorsSummary(file: SafeTensorsFile(url: URL(fileURLWithPath: file)), top: top)
        } catch {
            FileHandle.standardError.write(Data("error: \(error.localizedDescription)\n".utf8))
            throw ExitCode.failure
        }
        print(json ? summary.jsonText : summary.text)
    }
}

/// What `inspect` reports; the JSON field names are its stable output format.
struct SafeTensorsSummary: Encodable {
    struct TensorLine: Encodable {
        let name: String
        let dtype: String
        let shape: [Int]
        let parameters: Int
        let bytes: Int
    }

    let file: String
    let fileBytes: Int
    let tensorCount: Int
    let parameterCount: Int
    let dtypes: [String: Int]
    let largest: [TensorLine]
    let metadata: [String: String]

    enum CodingKeys: String, CodingKey {
        case file, fileBytes = "file_bytes", tensorCount = "tensor_count", parameterCount = "parameter_count"
        case dtypes, largest, metadata
    }

    init(file: SafeTensorsFile, top: Int) {
        let infos = file.infos
        self.file = file.url.path
        self.fileBytes = file.header.dataStart + file.header.dataSize
        self.tensorCount = infos.count
        self.parameterCount = infos.reduce(0) { $0 + $1.count }
        var dtypes: [String: Int] = [:]
        for info in infos { dtypes[info.dtype.rawValue, default: 0] += 1 }
        self.dtypes = dtypes
        // Largest by element count, ties by name, so the listing is deterministic.
        self.largest = infos.sorted { ($0.count, $1.name) > ($1.count, $0.name) }.prefix(top).map {
            TensorLine(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, parameters: $0.count, bytes: $0.byteRange.count)
        }
        self.metadata = file.metadata
    }

    var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    var text: String {
        var lines: [String] = []
        lines.append("file: \(file)")
        lines.append("size: \(fileBytes) bytes (\(humanCount(Double(fileBytes), unit: "B")))")
        lines.append("tensors: \(tensorCount)")
        lines.append("parameters: \(parameterCount) (\(humanCount(Double(parameterCount), unit: "")))")
        let byCount = dtypes.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
        lines.append("dtypes: " + (byCount.isEmpty ? "none" : byCount.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        if !largest.isEmpty {
            lines.append("largest tensors:")
            let width = largest.map(\.name.count).max() ?? 0
            for t in largest {
                let name = t.name.padding(toLength: max(width, t.name.count), withPad: " ", startingAt: 0)
                lines.append("  \(name)  \(t.dtype.padding(toLength: 7, withPad: " ", startingAt: 0)) \(t.shape)  \(t.parameters)")
            }
        }
        if metadata.isEmpty {
            lines.append("metadata: none")
        } else {
            lines.append("metadata:")
            for key in metadata.keys.sorted() {
                let value = metadata[key]!.replacingOccurrences(of: "\n", with: "\\n")
                lines.append("  \(key): \(value.count > 200 ? String(value.prefix(200)) + "..." : value)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// 1234567 -> "1.23M" (SI prefixes).
func humanCount(_ x: Double, unit: String) -> String {
    let prefixes = ["", "K", "M", "G", "T"]
    var value = x
    var i = 0
    while value >= 1000, i < prefixes.count - 1 {
        value /= 1000
        i += 1
    }
    return (i == 0 ? String(Int(value)) : String(format: "%.2f", value)) + prefixes[i] + unit
}
