// The precompiled normalisation map of a SentencePiece model (NormalizerSpec.precompiled_charsmap; nmt_nfkc
// and friends), as sentencepiece's normalizer.cc reads it:
//   <u32 little-endian: trie size in bytes><darts-clone double-array trie><normalized strings, each NUL-ended>
// The trie maps a UTF-8 byte string to the offset of its replacement in the strings blob.
//
// Two users, two lookup rules:
//   sentencepiece (Normalizer::NormalizePrefix): at each position the LONGEST matching prefix is replaced;
//   tokenizers' Precompiled normalizer (spm_precompiled): each grapheme cluster shorter than 6 bytes is
//   replaced whole by the value of its SHORTEST matching prefix, else each character on its own the same way.

import Foundation

public struct PrecompiledCharsmap: Sendable {
    let units: [UInt32]
    let normalized: [UInt8]

    public init(_ blob: Data, path: String) throws {
        let bytes = [UInt8](blob)
        guard bytes.count > 4 else { throw TokenizationError.invalidFile(path: path, reason: "precompiled_charsmap of \(bytes.count) bytes is too short") }
        let trieSize = Int(UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
        guard trieSize < bytes.count - 4, trieSize % 4 == 0, trieSize >= 4 else {
            throw TokenizationError.invalidFile(path: path, reason: "precompiled_charsmap: trie size \(trieSize) does not fit its \(bytes.count)-byte blob")
        }
        var units = [UInt32](repeating: 0, count: trieSize / 4)
        for i in 0..<units.count {
            let o = 4 + 4 * i
            units[i] = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        self.units = units
        self.normalized = Array(bytes[(4 + trieSize)...])
    }

    // darts-clone unit fields.
    @inline(__always) static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) static func value(_ u: UInt32) -> Int { Int(u & 0x7FFF_FFFF) }
    @inline(__always) static func label(_ u: UInt32) -> UInt32 { u & 0x8000_00FF }
    @inline(__always) static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

    /// Darts::DoubleArray::commonPrefixSearch over bytes[start..<end]: calls `match(length, value)` for
    /// each prefix in the trie, shortest first; stops when `match` returns false.
    @inline(__always)
    func prefixes(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, _ match: (Int, Int) -> Bool) {
        var node = Self.offset(units[0])
        var i = start
        while i < end {
            let c = bytes[i]
            if c == 0 { return }
            node ^= Int(c)
            guard node >= 0, node < units.count else { return }
            let unit = units[node]
            if Self.label(unit) != UInt32(c) { return }
            node ^= Self.offset(unit)
            guard node >= 0, node < units.count else { return }
            if Self.hasLeaf(unit), !match(i + 1 - start, Self.value(units[node])) { return }
            i += 1
        }
    }

    /// The replacement string starting at `offset` in the blob (up to its NUL).
    func replacement(at offset: Int) -> ArraySlice<UInt8> {
        guard offset < normalized.count else { return [] }
        var end = offset
        while end < normalized.count && normalized[end] != 0 { end += 1 }
        return normalized[offset..<end]
    }

    /// sentencepiece's rule: the longest rule matching at `start`: (bytes consumed, replacement), or nil.
    func longestPrefix(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> (Int, ArraySlice<UInt8>)? {
        var best: (Int, Int)?
        prefixes(bytes, from: start, to: end) { length, value in
            if best == nil || length > best!.0 { best = (length, value) }
            return true
        }
        return best.map { ($0.0, replacement(at: $0.1)) }
    }

    /// spm_precompiled's `transform`: the value of the first (shortest) prefix of `chunk` in the trie.
    func transform(_ chunk: [UInt8]) -> ArraySlice<UInt8>? {
        var first: Int?
        chunk.withUnsafeBufferPointer { buffer in
            prefixes(buffer, from: 0, to: buffer.count) { _, value in
                first = value
                return false
            }
        }
        return first.map { replacement(at: $0) }
    }

    /// tokenizers' Precompiled normalizer (normalizers/precompiled.rs): per extended grapheme cluster.
    public func normalizeLikeTokenizers(_ text: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for grapheme in text {
            let bytes = Array(grapheme.utf8)
            if bytes.count < 6, let value = transform(bytes) {
                out += value
                continue
            }
            for scalar in grapheme.unicodeScalars {
                let s = Array(String(scalar).utf8)
                if let value = transform(s) { out += value } else { out += s }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
