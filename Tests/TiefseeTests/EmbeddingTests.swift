import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeKnowledge

/// The default embedding model (all-MiniLM-L6-v2), or a visible skip when it has not been fetched.
func requireEmbeddingModel() throws -> EmbeddingModel {
    let p = EmbeddingModel.defaultModelPath
    guard FileManager.default.fileExists(atPath: p + "/model.safetensors") else {
        print("SKIP: embedding model not found at \(p); run scripts/fetch-embedding-model.sh")
        throw XCTSkip("embedding model not found at \(p); run scripts/fetch-embedding-model.sh")
    }
    return try EmbeddingModel.load(nil)
}

final class EmbeddingTests: XCTestCase {
    struct Case { let text: String; let ids: [Int]; let embedding: [Float] }

    func loadCases() throws -> [Case] {
        let j = try JSONValue.parse(contentsOf: fixturePath("embeddings/all-minilm-l6-v2.json"))
        return (j["cases"]?.array ?? []).map { c in
            Case(text: c["text"]!.string!, ids: c["ids"]!.array!.map { $0.int! },
                 embedding: c["embedding"]!.array!.map { Float($0.double!) })
        }
    }

    func testWordPieceMatchesHFTokenizer() throws {
        let m = try requireEmbeddingModel()
        let cases = try loadCases()
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        for c in cases { XCTAssertEqual(m.tokenize(c.text), c.ids, c.text) }
    }

    func testEmbeddingParityWithSentenceTransformers() throws {
        let m = try requireEmbeddingModel()
        XCTAssertEqual(m.pooling, .mean)
        XCTAssertTrue(m.normalize)
        XCTAssertEqual(m.maxSequenceLength, 256)
        let cases = try loadCases()
        let got = try m.embed(cases.map(\.text), maxBatchTokens: 300)
        var worst: Float = 1
        for (c, g) in zip(cases, got) {
            let cos = cosineSimilarity(c.embedding, g)
            worst = min(worst, cos)
            XCTAssertGreaterThanOrEqual(cos, 0.9999, c.text)
        }
        print("embedding parity: \(cases.count) sentences, min cosine \(worst)")
        // Batching must not change the result: one at a time gives the same vectors.
        let single = try m.embed([cases[3].text])[0]
        XCTAssertGreaterThan(cosineSimilarity(single, got[3]), 0.99999)
    }

    func testWordPieceBasics() throws {
        let vocab = ["[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "un": 4, "##aff": 5, "##able": 6, "hello": 7, ",": 8, "cafe": 9]
        let t = try WordPieceTokenizer(vocab: vocab)
        XCTAssertEqual(t.encodeWords("Unaffable, HELLO"), [4, 5, 6, 8, 7])
        XCTAssertEqual(t.encodeWords("Café unknownword"), [9, 1])
        XCTAssertEqual(t.encode("hello", maxLength: 3), [2, 7, 3])
    }
}
