// MeCab through its C API (libmecab): one model shared by every thread, a tagger per model, and a
// lattice per call (MeCab's thread-safe pattern; the string-returning *_sparse_tostr calls are not).
//
// The dictionary is resolved as: an explicit directory; else the system default of /etc/mecabrc.
// The dictionary actually loaded is reported (`dictionaryPath`, `dictionaryCharset`), since Debian's
// alternatives can point the default at another dictionary (naist-jdic, jumandic) without a word.

import CMeCab
import Foundation

public struct Morpheme: Equatable, Codable, Sendable {
    public var surface: String
    /// The dictionary's feature CSV (ipadic: POS, POS detail 1-3, conjugation, form, base, reading, pronunciation).
    public var feature: String
    /// Byte offsets of the surface in the UTF-8 text given to MeCab.
    public var byteStart: Int
    public var byteEnd: Int
    /// Whether MeCab found the word in a dictionary (false: an unknown-word guess).
    public var known: Bool

    enum CodingKeys: String, CodingKey {
        case surface, feature, byteStart = "byte_start", byteEnd = "byte_end", known
    }
}

public final class MeCab: @unchecked Sendable {
    let model: OpaquePointer
    let tagger: OpaquePointer
    public let dictionaryPath: String
    public let dictionaryCharset: String
    public let userDictionaries: [String]

    /// The Debian system ipadic (UTF-8), the dictionary JPGen's models are built against.
    public static let systemIPADic = "/var/lib/mecab/dic/ipadic-utf8"

    /// - Parameters:
    ///   - dictionary: a compiled system dictionary folder (with sys.dic); nil for /etc/mecabrc's default.
    ///   - userDictionaries: compiled user dictionaries (.dic) added on top.
    public init(dictionary: String? = nil, userDictionaries: [String] = []) throws {
        var arguments = ["mecab"]
        if let dictionary {
            guard FileManager.default.fileExists(atPath: dictionary + "/sys.dic") else {
                throw TokenizationError.dictionaryNotFound(
                    path: dictionary, hint: "install the Debian package mecab-ipadic-utf8 (make deps does), or pass the folder of a compiled dictionary")
            }
            arguments += ["-d", dictionary]
        } else if !FileManager.default.fileExists(atPath: "/etc/mecabrc") {
            throw TokenizationError.dictionaryNotFound(
                path: "/etc/mecabrc", hint: "install the Debian packages mecab and mecab-ipadic-utf8 (make deps does)")
        }
        for user in userDictionaries {
            guard FileManager.default.fileExists(atPath: user) else {
                throw TokenizationError.dictionaryNotFound(path: user, hint: "build the user dictionary first (make dictionary)")
            }
            arguments += ["-u", user]
        }
        let model: OpaquePointer? = arguments.withCStrings { argv in
            mecab_model_new(Int32(arguments.count), argv)
        }
        guard let model else {
            let message = String(cString: mecab_strerror(nil))
            throw TokenizationError.mecabFailed("cannot load the dictionary (\(arguments.dropFirst().joined(separator: " "))): \(message)")
        }
        guard let tagger = mecab_model_new_tagger(model) else {
            mecab_model_destroy(model)
            throw TokenizationError.mecabFailed("cannot create a tagger")
        }
        self.model = model
        self.tagger = tagger
        self.userDictionaries = userDictionaries
        var systemPath = dictionary ?? "", charset = ""
        var info = mecab_model_dictionary_info(model)
        while let current = info {
            if current.pointee.type == 0 {   // MECAB_SYS_DIC
                systemPath = URL(fileURLWithPath: String(cString: current.pointee.filename)).deletingLastPathComponent().path
                charset = String(cString: current.pointee.charset)
            }
            info = UnsafePointer(current.pointee.next)
        }
        dictionaryPath = systemPath
        dictionaryCharset = charset
        guard charset.lowercased().replacingOccurrences(of: "-", with: "") == "utf8" else {
            throw TokenizationError.mecabFailed("the dictionary at \(systemPath) is \(charset), not UTF-8: install mecab-ipadic-utf8")
        }
    }

    deinit {
        for lattice in idleLattices { mecab_lattice_destroy(lattice) }
        mecab_destroy(tagger)
        mecab_model_destroy(model)
    }

    /// Idle lattices, reused: a lattice serves one call at a time (creating one per call costs more than
    /// parsing a prompt: its buffers go back to the kernel each time).
    var idleLattices: [OpaquePointer] = []
    let latticeLock = NSLock()

    func takeLattice() throws -> OpaquePointer {
        latticeLock.lock()
        let idle = idleLattices.popLast()
        latticeLock.unlock()
        if let idle { return idle }
        guard let lattice = mecab_model_new_lattice(model) else { throw TokenizationError.mecabFailed("cannot create a lattice") }
        return lattice
    }

    func returnLattice(_ lattice: OpaquePointer) {
        mecab_lattice_clear(lattice)
        latticeLock.lock()
        if idleLattices.count < 64 { idleLattices.append(lattice); latticeLock.unlock() } else { latticeLock.unlock(); mecab_lattice_destroy(lattice) }
    }

    /// The morphemes of `text` (whitespace between them is skipped, as MeCab does).
    public func parse(_ text: String) throws -> [Morpheme] {
        let lattice = try takeLattice()
        defer { returnLattice(lattice) }
        let length = text.utf8.count
        return try text.withCString { base -> [Morpheme] in
            mecab_lattice_set_sentence2(lattice, base, length)
            guard mecab_parse_lattice(tagger, lattice) != 0 else {
                throw TokenizationError.mecabFailed(String(cString: mecab_lattice_strerror(lattice)))
            }
            var morphemes: [Morpheme] = []
            morphemes.reserveCapacity(length / 3 + 2)
            var node = mecab_lattice_get_bos_node(lattice)
            while let current = node {
                let n = current.pointee
                if n.stat == 0 || n.stat == 1 {   // MECAB_NOR_NODE, MECAB_UNK_NODE
                    let start = UnsafeRawPointer(n.surface) - UnsafeRawPointer(base)
                    let length = Int(n.length)
                    let surface = String(decoding: UnsafeRawBufferPointer(start: n.surface, count: length), as: UTF8.self)
                    morphemes.append(Morpheme(surface: surface, feature: String(cString: n.feature),
                                              byteStart: start, byteEnd: start + length, known: n.stat == 0))
                }
                node = UnsafeMutablePointer(n.next)
            }
            return morphemes
        }
    }
}

extension Array where Element == String {
    /// Calls `body` with a C argv (NUL-terminated copies, valid during the call).
    func withCStrings<R>(_ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}
