// A SentencePiece model file (`spiece.model`, `sentencepiece.bpe.model`): the protobuf ModelProto of
// sentencepiece's src/sentencepiece_model.proto, read with a small wire-format reader (only the fields
// tokenization needs; every other field is skipped). Written here rather than with swift-protobuf: five
// messages of a stable schema do not justify a code generator in the build.
//
//   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece   1 piece (string), 2 score (float), 3 type (NORMAL=1 UNKNOWN=2 CONTROL=3 USER_DEFINED=4 UNUSED=5 BYTE=6)
//   TrainerSpec     3 model_type (UNIGRAM=1 BPE=2 WORD=3 CHAR=4), 24 treat_whitespace_as_suffix, 35 byte_fallback,
//                   40-43 unk/bos/eos/pad ids, 45 unk_piece
//   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix, 4 remove_extra_whitespaces, 5 escape_whitespaces

import Foundation

public struct SentencePieceModel: Sendable {
    public enum PieceType: Int, Sendable { case normal = 1, unknown, control, userDefined, unused, byte }
    public enum ModelType: Int, Sendable { case unigram = 1, bpe, word, char }

    public struct Piece: Sendable {
        public var piece: String
        public var score: Float
        public var type: PieceType
    }

    public struct NormalizerSpec: Sendable {
        public var name = ""
        public var precompiledCharsmap = Data()
        public var addDummyPrefix = true
        public var removeExtraWhitespaces = true
        public var escapeWhitespaces = true
    }

    public var pieces: [Piece] = []
    public var modelType = ModelType.unigram
    public var byteFallback = false
    public var treatWhitespaceAsSuffix = false
    public var unkId = 0, bosId = 1, eosId = 2, padId = -1
    public var unkPiece = "<unk>"
    public var normalizerSpec = NormalizerSpec()

    /// Reads and checks a model file (the checks of sentencepiece's ModelInterface::InitializePieces).
    public init(contentsOf url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { throw TokenizationError.missingFile(path: url.path) }
        try self.init(data: try Data(contentsOf: url), path: url.path)
    }

    public init(data: Data, path: String) throws {
        func bad(_ reason: String) -> TokenizationError { .invalidFile(path: path, reason: reason) }
        do {
            var reader = ProtobufReader(data)
            while let (field, wire) = try reader.nextField() {
                switch (field, wire) {
                case (1, 2): pieces.append(try Self.piece(try reader.bytes()))
                case (2, 2): try readTrainerSpec(try reader.bytes())
                case (3, 2): normalizerSpec = try Self.normalizer(try reader.bytes())
                default: try reader.skip(wire)
                }
            }
        } catch let error as ProtobufReader.Failure {
            throw bad("not a SentencePiece model (protobuf ModelProto): \(error.reason)")
        }
        guard !pieces.isEmpty else { throw bad("no pieces: not a SentencePiece model") }
        guard modelType == .unigram || modelType == .bpe else {
            throw TokenizationError.unsupported(path: path, reason: "SentencePiece model_type \(modelType) (supported: unigram, bpe)")
        }
        var seen = Set<String>(), unknowns = 0, bytes = Set<UInt8>()
        for (i, p) in pieces.enumerated() {
            if p.piece.isEmpty { throw bad("piece \(i) is empty") }
            if !seen.insert(p.piece).inserted { throw bad("piece '\(p.piece)' (id \(i)) is defined twice") }
            if p.type == .unknown { unknowns += 1; unkId = i }
            if p.type == .byte {
                guard byteFallback, let b = Self.byteValue(p.piece) else { throw bad("byte piece '\(p.piece)' (id \(i)) without byte_fallback or malformed") }
                bytes.insert(b)
            }
        }
        guard unknowns == 1 else { throw bad("\(unknowns) unknown pieces; exactly one is required") }
        if byteFallback && bytes.count != 256 { throw bad("byte_fallback is set but only \(bytes.count) of 256 byte pieces exist") }
    }

    /// "<0x41>" -> 0x41.
    static func byteValue(_ piece: String) -> UInt8? {
        guard piece.count == 6, piece.hasPrefix("<0x"), piece.hasSuffix(">") else { return nil }
        return UInt8(piece.dropFirst(3).prefix(2), radix: 16)
    }

    static func piece(_ data: Data) throws -> Piece {
        var reader = ProtobufReader(data)
        var piece = Piece(piece: "", score: 0, type: .normal)
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2): piece.piece = String(decoding: try reader.bytes(), as: UTF8.self)
            case (2, 5): piece.score = Float(bitPattern: try reader.fixed32())
            case (3, 0):
                let raw = Int(try reader.varint())
                guard let type = PieceType(rawValue: raw) else { throw ProtobufReader.Failure(reason: "piece type \(raw)") }
                piece.type = type
            default: try reader.skip(wire)
            }
        }
        return piece
    }

    mutating func readTrainerSpec(_ data: Data) throws {
        var reader = ProtobufReader(data)
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (3, 0):
                let raw = Int(try reader.varint())
                guard let type = ModelType(rawValue: raw) else { throw ProtobufReader.Failure(reason: "model_type \(raw)") }
                modelType = type
            case (24, 0): treatWhitespaceAsSuffix = try reader.varint() != 0
            case (35, 0): byteFallback = try reader.varint() != 0
            case (40, 0): unkId = Int(Int32(truncatingIfNeeded: try reader.varint()))
            case (41, 0): bosId = Int(Int32(truncatingIfNeeded: try reader.varint()))
            case (42, 0): eosId = Int(Int32(truncatingIfNeeded: try reader.varint()))
            case (43, 0): padId = Int(Int32(truncatingIfNeeded: try reader.varint()))
            case (45, 2): unkPiece = String(decoding: try reader.bytes(), as: UTF8.self)
            default: try reader.skip(wire)
            }
        }
    }

    static func normalizer(_ data: Data) throws -> NormalizerSpec {
        var reader = ProtobufReader(data)
        var spec = NormalizerSpec()
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2): spec.name = String(decoding: try reader.bytes(), as: UTF8.self)
            case (2, 2): spec.precompiledCharsmap = try reader.bytes()
            case (3, 0): spec.addDummyPrefix = try reader.varint() != 0
            case (4, 0): spec.removeExtraWhitespaces = try reader.varint() != 0
            case (5, 0): spec.escapeWhitespaces = try reader.varint() != 0
            default: try reader.skip(wire)
            }
        }
        return spec
    }
}

/// The protobuf wire format (varint, 64-bit, length-delimited, 32-bit), bounds-checked.
struct ProtobufReader {
    struct Failure: Error { let reason: String }
    let buffer: [UInt8]
    var position = 0

    init(_ data: Data) { buffer = [UInt8](data) }

    /// The next field number and wire type, or nil at the end.
    mutating func nextField() throws -> (Int, Int)? {
        guard position < buffer.count else { return nil }
        let key = try varint()
        let field = Int(key >> 3), wire = Int(key & 7)
        guard field > 0 else { throw Failure(reason: "field number 0 at byte \(position)") }
        return (field, wire)
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < buffer.count else { throw Failure(reason: "truncated varint") }
            guard shift < 64 else { throw Failure(reason: "varint longer than 10 bytes at byte \(position)") }
            let b = buffer[position]
            position += 1
            value |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func fixed32() throws -> UInt32 {
        guard position + 4 <= buffer.count else { throw Failure(reason: "truncated 32-bit field") }
        var value: UInt32 = 0
        for k in 0..<4 { value |= UInt32(buffer[position + k]) << (8 * k) }
        position += 4
        return value
    }

    mutating func bytes() throws -> Data {
        let length = try varint()
        guard length <= UInt64(buffer.count - position) else {
            throw Failure(reason: "a field of \(length) bytes at byte \(position) runs past the end (\(buffer.count) bytes)")
        }
        let start = position
        position += Int(length)
        return Data(buffer[start..<position])
    }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard position + 8 <= buffer.count else { throw Failure(reason: "truncated 64-bit field") }
            position += 8
        case 2: _ = try bytes()
        case 5: _ = try fixed32()
        default: throw Failure(reason: "wire type \(wire) at byte \(position)")
        }
    }
}
