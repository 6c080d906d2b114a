// PNG reading and writing through libpng (C layer: Sources/CPNGShim, which owns the setjmp).
//
// Reading accepts RGB, RGBA, grey, grey+alpha, palette (with or without tRNS), 1-16 bits and
// interlaced files, and returns RGB8 the way PIL's `Image.convert("RGB")` does (alpha dropped;
// 16-bit scaled to 8 with rounding) plus the tEXt / zTXt / iTXt chunks. Writing produces RGB8
// with text chunks before the image data: tEXt when the text is Latin-1, else iTXt (UTF-8), as
// AUTOMATIC1111 writes its `parameters` chunk. Files are written to a temporary file beside the
// destination and renamed.

import CPNGShim
import Foundation
import Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One PNG text chunk.
public struct PNGText: Equatable, Sendable {
    public let key: String
    public let text: String

    public init(key: String, text: String) {
        self.key = key
        self.text = text
    }
}

/// A decoded PNG: its pixels as RGB8 and its text chunks in file order.
public struct PNGFile: Equatable, Sendable {
    public let image: RGB8Image
    public let text: [PNGText]
    /// The file's colour type and bit depth as stored (PNG_COLOR_TYPE_*, 1-16).
    public let storedColorType: Int
    public let storedBitDepth: Int

    /// The first text chunk with this key.
    public func text(_ key: String) -> String? { text.first { $0.key == key }?.text }
}

/// Images wider or taller than this are refused before pixel memory is allocated.
public let pngMaxDimension = 16384

/// Reads a PNG file.
public func readPNG(_ url: URL) throws -> PNGFile {
    let data: Data
    do {
        data = try Data(contentsOf: url)
    } catch {
        throw ImagingError.cannotRead(file: url.path, reason: (error as NSError).localizedDescription)
    }
    return try decodePNG(data, name: url.path)
}

/// Decodes PNG bytes; `name` is used in error messages.
public func decodePNG(_ data: Data, name: String = "<memory>") throws -> PNGFile {
    var image = jpgen_png_image()
    var error = [CChar](repeating: 0, count: Int(JPGEN_PNG_ERROR_SIZE))
    let status = data.withUnsafeBytes { bytes -> Int32 in
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        return jpgen_png_decode_rgb8(base, bytes.count, UInt32(pngMaxDimension), &image, &error)
    }
    defer { jpgen_png_free_image(&image) }
    guard status == 0 else {
        let message = String(cString: error)
        if message.hasPrefix("not a PNG file") { throw ImagingError.notPNG(file: name) }
        if message.contains("exceeds user limit") {
            throw ImagingError.imageTooLarge(file: name, limit: pngMaxDimension)
        }
        throw ImagingError.invalidPNG(file: name, reason: message)
    }
    let width = Int(image.width), height = Int(image.height)
    let pixels = [UInt8](UnsafeBufferPointer(start: image.pixels, count: width * height * 3))
    var texts: [PNGText] = []
    for i in 0..<Int(image.text_count) {
        let t = image.texts[i]
        let key = decodeLatin1(UnsafeRawBufferPointer(start: t.key, count: strlen(t.key)))
        let bytes = UnsafeRawBufferPointer(start: t.text, count: t.text_length)
        let text = t.is_utf8 != 0 ? String(decoding: bytes, as: UTF8.self) : decodeLatin1(bytes)
        texts.append(PNGText(key: key, text: text))
    }
    return PNGFile(image: try RGB8Image(width: width, height: height, pixels: pixels), text: texts,
                   storedColorType: Int(image.color_type), storedBitDepth: Int(image.bit_depth))
}

/// Encodes an RGB8 image with text chunks as PNG bytes. `compressionLevel` is zlib's 0-9.
public func encodePNG(_ image: RGB8Image, text: [PNGText] = [], compressionLevel: Int = 6) throws -> [UInt8] {
    // Keys: Latin-1, 1-79 bytes, printable, no leading/trailing/double spaces (PNG spec 11.3.4.2).
    var keys: [[CChar]] = []
    var values: [[CChar]] = []
    var utf8: [Bool] = []
    for t in text {
        guard let key = latin1Bytes(t.key), (1...79).contains(key.count),
              key.allSatisfy({ ($0 >= 0x20 && $0 <= 0x7E) || $0 >= 0xA1 }),
              key.first != 0x20, key.last != 0x20, !t.key.contains("  ") else {
            throw ImagingError.invalidTextKey(key: t.key)
        }
        guard !t.text.utf8.contains(0) else { throw ImagingError.invalidText(key: t.key, reason: "contains a NUL character") }
        let latin1 = latin1Bytes(t.text)
        keys.append(key.map { CChar(bitPattern: $0) } + [0])
        values.append((latin1 ?? Array(t.text.utf8)).map { CChar(bitPattern: $0) } + [0])
        utf8.append(latin1 == nil)
    }
    var out: UnsafeMutablePointer<UInt8>? = nil
    var size = 0
    var error = [CChar](repeating: 0, count: Int(JPGEN_PNG_ERROR_SIZE))
    let status: Int32 = withCStringArrays(keys, values) { keyPointers, valuePointers in
        var chunks = (0..<text.count).map { i in
            jpgen_png_text(key: keyPointers[i], text: valuePointers[i], text_length: values[i].count - 1, is_utf8: utf8[i] ? 1 : 0)
        }
        return image.pixels.withUnsafeBufferPointer { px in
            chunks.withUnsafeMutableBufferPointer { c in
                jpgen_png_encode_rgb8(px.baseAddress, UInt32(image.width), UInt32(image.height), c.baseAddress, Int32(c.count),
                                      Int32(max(0, min(9, compressionLevel))), &out, &size, &error)
            }
        }
    }
    guard status == 0, let out else { throw ImagingError.encodeFailed(file: "<memory>", reason: String(cString: error)) }
    defer { jpgen_png_free(out) }
    return [UInt8](UnsafeBufferPointer(start: out, count: size))
}

/// Writes an RGB8 image as a PNG file (temporary file + rename).
public func writePNG(_ image: RGB8Image, to url: URL, text: [PNGText] = []) throws {
    let bytes: [UInt8]
    do {
        bytes = try encodePNG(image, text: text)
    } catch ImagingError.encodeFailed(_, let reason) {
        throw ImagingError.encodeFailed(file: url.path, reason: reason)
    }
    try writeFileAtomically(bytes, to: url)
}

/// Writes x: [3, H, W] or [1, 3, H, W] with values in [0, 1] as an RGB8 PNG file.
public func writePNG(_ x: Tensor, to url: URL, text: [PNGText] = []) throws {
    try writePNG(RGB8Image(tensor: x), to: url, text: text)
}

/// Writes bytes to a temporary file beside `url`, fsyncs, and renames it onto `url`.
func writeFileAtomically(_ bytes: [UInt8], to url: URL) throws {
    let path = url.path
    let temp = url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw ImagingError.writeFailed(file: path, reason: String(cString: strerror(errno))) }
    var failure: String? = nil
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                failure = String(cString: strerror(errno))
                return
            }
            offset += n
        }
    }
    if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
    close(fd)
    if failure == nil, rename(temp, path) != 0 { failure = "rename failed: " + String(cString: strerror(errno)) }
    if let failure {
        unlink(temp)
        throw ImagingError.writeFailed(file: path, reason: failure)
    }
}

/// The Latin-1 bytes of `s`, or nil if some character is outside Latin-1.
func latin1Bytes(_ s: String) -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(s.unicodeScalars.count)
    for u in s.unicodeScalars {
        guard u.value <= 0xFF else { return nil }
        out.append(UInt8(u.value))
    }
    return out
}

func decodeLatin1(_ bytes: UnsafeRawBufferPointer) -> String {
    var s = String.UnicodeScalarView()
    for b in bytes { s.append(Unicode.Scalar(b)) }
    return String(s)
}

/// Calls `body` with stable C pointers to each NUL-terminated array.
private func withCStringArrays<R>(_ a: [[CChar]], _ b: [[CChar]],
                                   _ body: ([UnsafePointer<CChar>], [UnsafePointer<CChar>]) throws -> R) rethrows -> R {
    let pa = a.map { chars -> UnsafeMutablePointer<CChar> in
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: chars.count)
        p.initialize(from: chars, count: chars.count)
        return p
    }
    let pb = b.map { chars -> UnsafeMutablePointer<CChar> in
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: chars.count)
        p.initialize(from: chars, count: chars.count)
        return p
    }
    defer {
        pa.forEach { $0.deallocate() }
        pb.forEach { $0.deallocate() }
    }
    return try body(pa.map { UnsafePointer($0) }, pb.map { UnsafePointer($0) })
}
