// SafeTensorsHeader: parse and fully validate the header of a safetensors file, from its bytes.
//
// Layout (huggingface/safetensors, `SafeTensors::read_metadata` and `Metadata::validate`):
//   [8 bytes: header length N, little-endian u64][N bytes: JSON header][data section]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data section) plus an optional "__metadata__" of string -> string. Like the
// Python package we require the tensors to tile the data section exactly: sorted by offsets, each
// begins where the previous ends, the last ends at the end of the file, and each spans
// product(shape) * dtype size bytes. Nothing is read from the data section here.
//
// This file depends only on Foundation so that the fuzz target (Fuzz/) can compile it alone.

import Foundation

public struct SafeTensorsHeader: Sendable {
    /// Tensors in header (JSON) order.
    public let tensors: [SafeTensorsInfo]
    public let metadata: [String: String]
    /// Byte offset of the data section from the start of the file (8 + header length).
    public let dataStart: Int
    /// Size of the data section in bytes.
    public let dataSize: Int
}

/// Python's `MAX_HEADER_SIZE`.
public let safeTensorsMaxHeaderSize = 100_000_000

/// Recognises PyTorch pickle checkpoints (`.ckpt`, `.pt`, `.bin`): a zip archive (torch.save since
/// 1.6) or a raw pickle stream (protocol 2-5 starts with 0x80, version). Returns a description.
func pickleFormat(_ bytes: UnsafeRawBufferPointer) -> String? {
    if bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4B, bytes[2] == 0x03, bytes[3] == 0x04 {
        return "zip archive written by torch.save"
    }
    if bytes.count >= 2, bytes[0] == 0x80, (2...5).contains(bytes[1]) {
        return "pickle protocol \(bytes[1])"
    }
    return nil
}

/// Parses and validates the header of the safetensors file whose complete contents are `bytes`.
/// `file` is used only in error messages.
public func parseSafeTensorsHeader(_ bytes: UnsafeRawBufferPointer, file: String) throws -> SafeTensorsHeader {
    let fileSize = bytes.count
    // 1. The length prefix, and a header inside the file. A pickle checkpoint is recognised first
    //    unless the bytes also read as a plausible safetensors header (a '{' right after the length).
    var length: UInt64 = 0
    if fileSize >= 8 {
        for i in 0..<8 { length |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    }
    let plausible = fileSize >= 9 && length >= 1 && length <= UInt64(fileSize - 8) && bytes[8] == UInt8(ascii: "{")
    if !plausible, let format = pickleFormat(bytes) {
        throw SafeTensorsError.pickleCheckpoint(file: file, format: format)
    }
    guard fileSize >= 8 else { throw SafeTensorsError.truncated(file: file, expectedBytes: 8, actualBytes: fileSize) }
    guard length <= UInt64(safeTensorsMaxHeaderSize) else {
        throw SafeTensorsError.headerTooLarge(file: file, headerLength: length, limit: safeTensorsMaxHeaderSize)
    }
    guard length <= UInt64(fileSize - 8) else {
        throw SafeTensorsError.headerLengthPastEnd(file: file, headerLength: length, fileSize: fileSize)
    }
    let headerEnd = 8 + Int(length)
    let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<headerEnd])

    // 2. JSON object.
    let root: JSONValue
    do {
        root = try JSONParser.parse(headerBytes)
    } catch let e as JSONParseError {
        throw SafeTensorsError.headerNotJSON(file: file, reason: "\(e.message) at header byte \(e.offset)")
    }
    guard case let .object(members) = root else {
        throw SafeTensorsError.headerNotJSON(file: file, reason: "the top level is \(root.summary.prefix(40)), not an object")
    }

    // 3. Entries.
    let dataSize = fileSize - headerEnd
    var metadata: [String: String] = [:]
    var tensors: [SafeTensorsInfo] = []
    tensors.reserveCapacity(members.count)
    for (key, value) in members {
        if key == "__metadata__" {
            metadata = try parseMetadata(value, file: file)
        } else {
            tensors.append(try parseEntry(key: key, value: value, dataSize: dataSize, file: file))
        }
    }

    // 4. The tensors tile the data section: sorted by (begin, end), each begins where the previous
    //    ended (zero-size tensors may share an offset), sizes match, and nothing is left over.
    let order = tensors.indices.sorted {
        (tensors[$0].byteRange.lowerBound, tensors[$0].byteRange.upperBound)
            < (tensors[$1].byteRange.lowerBound, tensors[$1].byteRange.upperBound)
    }
    var expectedBegin = 0
    var previous: String? = nil
    for i in order {
        let t = tensors[i]
        if t.byteRange.lowerBound < expectedBegin, let previous {
            throw SafeTensorsError.overlappingOffsets(file: file, key: t.name, other: previous)
        }
        if t.byteRange.lowerBound > expectedBegin {
            throw SafeTensorsError.gapInData(file: file, key: t.name, gapStart: expectedBegin, gapEnd: t.byteRange.lowerBound)
        }
        // Element count and byte size, refusing overflow (a hostile shape like [2^40, 2^40]).
        var elements = 1
        var overflow = false
        for d in t.shape {
            let (p, o) = elements.multipliedReportingOverflow(by: d)
            elements = p
            overflow = overflow || o
        }
        let (bytesNeeded, o2) = elements.multipliedReportingOverflow(by: t.dtype.byteSize)
        if overflow || o2 || bytesNeeded != t.byteRange.count {
            throw SafeTensorsError.sizeMismatch(
                file: file, key: t.name, dtype: t.dtype.rawValue, shape: t.shape,
                expectedBytes: overflow || o2 ? Int.max : bytesNeeded, actualBytes: t.byteRange.count)
        }
        expectedBegin = t.byteRange.upperBound
        previous = t.name
    }
    if expectedBegin > dataSize {
        throw SafeTensorsError.truncated(file: file, expectedBytes: headerEnd + expectedBegin, actualBytes: fileSize)
    }
    if expectedBegin < dataSize {
        throw SafeTensorsError.unusedData(file: file, dataSize: dataSize, usedBytes: expectedBegin)
    }
    return SafeTensorsHeader(tensors: tensors, metadata: metadata, dataStart: headerEnd, dataSize: dataSize)
}

func parseMetadata(_ value: JSONValue, file: String) throws -> [String: String] {
    if case .null = value { return [:] }
    guard case let .object(pairs) = value else {
        throw SafeTensorsError.invalidMetadata(file: file, reason: "found \(value.summary.prefix(40))")
    }
    var metadata: [String: String] = [:]
    for (k, v) in pairs {
        guard case let .string(s) = v else {
            throw SafeTensorsError.invalidMetadata(file: file, reason: "key '\(k)' holds \(v.summary.prefix(40))")
        }
        metadata[k] = s
    }
    return metadata
}

func parseEntry(key: String, value: JSONValue, dataSize: Int, file: String) throws -> SafeTensorsInfo {
    guard case let .object(fields) = value else {
        throw SafeTensorsError.invalidEntry(file: file, key: key, reason: "expected an object, found \(value.summary.prefix(40))")
    }
    var dtypeValue: JSONValue?, shapeValue: JSONValue?, offsetsValue: JSONValue?
    for (name, v) in fields {
        switch name {
        case "dtype": dtypeValue = v
        case "shape": shapeValue = v
        case "data_offsets": offsetsValue = v
        default: continue  // serde (Python's reader) ignores unknown fields; so do we
        }
    }
    guard let dtypeValue else { throw SafeTensorsError.invalidEntry(file: file, key: key, reason: "missing 'dtype'") }
    guard let shapeValue else { throw SafeTensorsError.invalidEntry(file: file, key: key, reason: "missing 'shape'") }
    guard let offsetsValue else { throw SafeTensorsError.invalidEntry(file: file, key: key, reason: "missing 'data_offsets'") }

    guard case let .string(dtypeName) = dtypeValue else {
        throw SafeTensorsError.invalidEntry(file: file, key: key, reason: "'dtype' is \(dtypeValue.summary.prefix(40)), not a string")
    }
    guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
        throw SafeTensorsError.unknownDType(file: file, key: key, dtype: dtypeName)
    }

    guard case let .array(dims) = shapeValue else {
        throw SafeTensorsError.invalidEntry(file: file, key: key, reason: "'shape' is \(shapeValue.summary.prefix(40)), not an array")
    }
    var shape: [Int] = []
    shape.reserveCapacity(dims.count)
    for d in dims {
        guard case let .integer(n) = d, n >= 0 else {
            throw SafeTensorsError.invalidEntry(file: file, key: key, reason: "'shape' has \(d.summary.prefix(40)), not a non-negative integer")
        }
        shape.append(n)
    }

    guard case let .array(offsets) = offsetsValue, offsets.count == 2 else {
        throw SafeTensorsError.invalidEntry(file: file, key: key, reason: "'data_offsets' is \(offsetsValue.summary.prefix(60)), not [begin, end]")
    }
    let texts = offsets.map { String($0.summary.prefix(40)) }
    guard case let .integer(begin) = offsets[0], case let .integer(end) = offsets[1],
          begin >= 0, begin <= end else {
        throw SafeTensorsError.offsetsOutOfRange(file: file, key: key, offsets: texts, dataSize: dataSize)
    }
    return SafeTensorsInfo(name: key, dtype: dtype, shape: shape, byteRange: begin..<end)
}
