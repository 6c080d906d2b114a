// End to end: Japanese text -> BertJapaneseTokenizer (MeCab ipadic + WordPiece, from the fixture's
// vocab.txt and tokenizer_config.json) -> BertModel -> embeddings, against transformers' tokenizer
// and model run by Tools/fixtures/text_encoders.py. Tolerance: max abs difference 1e-4.

import Foundation
import Kernels
import Tokenization
import XCTest
@testable import Networks

final class TextEncoderJapaneseTests: XCTestCase {
    let tolerance: Float = 1e-4
    typealias F = TextEncoderFixtures

    func testJapaneseTextThroughTokenizerToEmbedding() throws {
        let folder = F.folder("bert_japanese")
        let text = try String(contentsOf: folder.appendingPathComponent("text.txt"), encoding: .utf8)
        let expected = try F.expected("bert_japanese")

        // 江ノ島と富士山が見える風景 -> [CLS] 江ノ島 と 富士山 が 見える 風 ##景 [SEP]
        let tokenizer = try loadTokenizer(folder: folder)
        let encoding = try tokenizer.encode(text)
        XCTAssertEqual(encoding.ids, try F.intRows(expected, "input_ids")[0])

        let encoder = try TextEncoder.load(folder: folder)
        let output = try encoder(ids: [encoding.ids], attentionMask: [encoding.attentionMask])
        assertClose(output.lastHiddenState, try expected.tensor("last_hidden_state"), tolerance: tolerance,
                    "last_hidden_state")
        assertClose(output.pooled, try expected.tensor("pooler_output"), tolerance: tolerance, "pooler_output")
    }

    // Padded to a fixed length with its attention mask, the real tokens' embeddings do not change.
    func testPaddedJapaneseEncodingKeepsTheEmbedding() throws {
        let folder = F.folder("bert_japanese")
        let text = try String(contentsOf: folder.appendingPathComponent("text.txt"), encoding: .utf8)
        let expected = try F.expected("bert_japanese").tensor("last_hidden_state")   // [1, 9, 32]
        let tokenizer = try loadTokenizer(folder: folder)
        let padded = try tokenizer.encode(text, options: EncodingOptions(padToMaxLength: true, maxLength: 16))
        XCTAssertEqual(padded.ids.count, 16)
        XCTAssertEqual(padded.attentionMask.reduce(0, +), expected.shape[1])

        let output = try TextEncoder.load(folder: folder)(ids: [padded.ids], attentionMask: [padded.attentionMask])
        let t = expected.shape[1], c = expected.shape[2]
        let real = Tensor(shape: [1, t, c], data: Array(output.lastHiddenState.scalars.prefix(t * c)))
        assertClose(real, expected, tolerance: tolerance, "last_hidden_state of the unpadded tokens")
    }
}
