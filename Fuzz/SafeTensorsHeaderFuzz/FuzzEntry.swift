// libFuzzer entry point for the safetensors header parser (Sources/SafeTensors/SafeTensorsHeader.swift).
// Built by `make fuzz` with `swiftc -sanitize=fuzzer,address -parse-as-library` together with the
// parser's Foundation-only source files; it is not part of the SwiftPM package.
//
// Every input must either parse into a header whose tensors tile the data section, or throw a
// SafeTensorsError; a crash, a sanitizer report, or an inconsistent accepted header is a finding.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensorsHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    do {
        let header = try parseSafeTensorsHeader(bytes, file: "fuzz-input")
        // Invariants of an accepted header.
        precondition(header.dataStart + header.dataSize == size, "data section does not end at end of input")
        var total = 0
        for t in header.tensors {
            precondition(t.byteRange.lowerBound >= 0 && t.byteRange.upperBound <= header.dataSize, "tensor outside data")
            precondition(t.count * t.dtype.byteSize == t.byteRange.count, "size mismatch accepted")
            total += t.byteRange.count
        }
        precondition(total == header.dataSize, "tensors do not tile the data section")
        // Messages must render for every error value the parser can produce.
    } catch let error as SafeTensorsError {
        _ = error.errorDescription
    } catch {
        preconditionFailure("unexpected error type \(error)")
    }
    return 0
}
