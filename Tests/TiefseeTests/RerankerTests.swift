import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeKnowledge

/// Cross-encoders (BERT, XLM-RoBERTa) and an XLM-RoBERTa embedding model against
/// sentence-transformers on tiny random models (scripts/gen_reranker_fixtures.py).
final class RerankerTests: XCTestCase {
    func reference() throws -> JSONValue { try JSONValue.parse(contentsOf: fixturePath("rerankers/reference.json")) }
    func ints(_ v: JSONValue?) -> [Int] { (v?.array ?? []).map { $0.int! } }

    func testTokenizersMatchHF() throws {
        let ref = try reference()
        let texts = (ref["texts"]?.array ?? []).map { $0.string! }
        let maxLen = ref["max_length"]!.int!
        for name in ["bert-cross-encoder", "xlmr-cross-encoder"] {
            let tok = try loadEncoderTokenizer(path: fixturePath("rerankers/" + name))
            let m = ref["models"]![name]!
            for (t, ids) in zip(texts, m["single_ids"]!.array!) {
                XCTAssertEqual(tok.encode(t, maxLength: maxLen), ints(ids), "\(name): \(t)")
            }
            for p in m["pairs"]!.array! {
                let got = tok.encodePair(p["query"]!.string!, p["document"]!.string!, maxLength: maxLen)
                XCTAssertEqual(got.ids, ints(p["ids"]), "\(name) pair ids")
                XCTAssertEqual(got.types, ints(p["type_ids"]), "\(name) pair types")
            }
        }
        XCTAssertTrue(try loadEncoderTokenizer(path: fixturePath("rerankers/xlmr-cross-encoder")) is UnigramTokenizer)
    }

    func testCrossEncoderScoresMatchSentenceTransformers() throws {
        let ref = try reference()
        for name in ["bert-cross-encoder", "xlmr-cross-encoder"] {
            let r = try Reranker(folder: fixturePath("rerankers/" + name))
            XCTAssertTrue(r.sigmoid)
            let pairs = ref["models"]![name]!["pairs"]!.array!
            var worst: Float = 0
            // Group by query as /v1/rerank does: one query, several documents in one batch.
            var byQuery = [(String, [Int])]()
            for (i, p) in pairs.enumerated() {
                if let k = byQuery.firstIndex(where: { $0.0 == p["query"]!.string! }) { byQuery[k].1.append(i) }
                else { byQuery.append((p["query"]!.string!, [i])) }
            }
            for (q, idx) in byQuery {
                let got = try r.score(query: q, documents: idx.map { pairs[$0]["document"]!.string! })
                for (g, i) in zip(got, idx) {
                    let want = Float(pairs[i]["score"]!.double!)
                    worst = max(worst, abs(g - want))
                    XCTAssertEqual(g, want, accuracy: 1e-4, "\(name) pair \(i)")
                }
            }
            let logits = try r.logits(pairs.map { (ints($0["ids"]), ints($0["type_ids"])) })
            for (l, p) in zip(logits, pairs) { XCTAssertEqual(l, Float(p["logit"]!.double!), accuracy: 1e-4) }
            print("\(name): \(pairs.count) pairs, max |score diff| \(worst)")
            // Ranking puts the best document first, with its index.
            let ranked = try r.rank(query: byQuery[0].0, documents: byQuery[0].1.map { pairs[$0]["document"]!.string! }, topN: 2)
            XCTAssertEqual(ranked.count, 2)
            XCTAssertGreaterThanOrEqual(ranked[0].score, ranked[1].score)
        }
    }

    func testXLMRobertaEmbeddingMatchesSentenceTransformers() throws {
        let ref = try reference()["models"]!["xlmr-embedding"]!
        let m = try EmbeddingModel(folder: fixturePath("rerankers/xlmr-embedding"))
        XCTAssertEqual(m.pooling, .cls)
        XCTAssertTrue(m.normalize)
        XCTAssertEqual(m.encoder.config.family, .roberta)
        let texts = ref["texts"]!.array!.map { $0.string! }
        for (t, ids) in zip(texts, ref["ids"]!.array!) { XCTAssertEqual(m.tokenize(t), ints(ids), t) }
        let got = try m.embed(texts, maxBatchTokens: 100)
        var worst: Float = 1
        for (g, e) in zip(got, ref["embeddings"]!.array!) {
            let want = e.array!.map { Float($0.double!) }
            worst = min(worst, cosineSimilarity(g, want))
        }
        print("xlmr-embedding: \(texts.count) texts, min cosine \(worst)")
        XCTAssertGreaterThanOrEqual(worst, 0.9999)
    }

    func testRerankerRefusesMultiLabelHeadsAndBadFolders() throws {
        XCTAssertThrowsError(try Reranker.load("/nonexistent/reranker"))
        // An embedding model has no classification head.
        XCTAssertThrowsError(try Reranker(folder: fixturePath("rerankers/xlmr-embedding"))) { e in
            XCTAssertTrue("\(e)".contains("classifier"), "\(e)")
        }
    }

    func testPrecompiledCharsmapNormalizes() throws {
        let j = try JSONValue.parse(contentsOf: fixturePath("rerankers/xlmr-cross-encoder/tokenizer.json"))
        let c = try PrecompiledCharsmap(base64: j["normalizer"]!["precompiled_charsmap"]!.string!)
        // nmt_nfkc: compatibility forms fold (ligature, full width, circled digits); plain text stays.
        XCTAssertEqual(c.normalize("ﬁle ＡＢＣ ①"), "file ABC 1")
        XCTAssertEqual(c.normalize("Grüße aus Köln"), "Grüße aus Köln")
    }

    /// kb search with a reranker: the fused candidates come back in the cross-encoder's order,
    /// with its scores (bge-m3-style XLM-R embedder and XLM-R reranker, no default model needed).
    func testKnowledgeSearchRerank() throws {
        let dir = NSTemporaryDirectory() + "tiefsee-rerank-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/docs", withIntermediateDirectories: true)
        let texts = ["Das Projekt Kompassrose wird von Jana Vogt geleitet.", "Die Kantine bietet täglich ein vegetarisches Gericht an.",
                     "Project Kompassrose is led by Jana Vogt.", "Fahrtkosten werden mit 0,30 € pro Kilometer erstattet.",
                     "Remote work is allowed up to three days per week."]
        for (i, t) in texts.enumerated() { try "# Doc \(i)\n\n\(t)\n".write(toFile: dir + "/docs/d\(i).md", atomically: true, encoding: .utf8) }
        let embedder = try EmbeddingModel(folder: fixturePath("rerankers/xlmr-embedding"))
        let kb = try KnowledgeBase(name: "rr", path: dir + "/rr.sqlite", embedder: embedder)
        try kb.add(paths: [dir + "/docs"])
        let reranker = try Reranker(folder: fixturePath("rerankers/xlmr-cross-encoder"))
        let q = "Wer leitet das Projekt Kompassrose?"
        let plain = try kb.search(q, topK: 5, minSimilarity: -1)
        let reranked = try kb.search(q, topK: 3, minSimilarity: -1, reranker: reranker)
        XCTAssertEqual(reranked.count, 3)
        let want = try reranker.score(query: q, documents: plain.map(\.rerankText))
        let order = want.indices.sorted { want[$0] > want[$1] }
        XCTAssertEqual(reranked.map(\.chunkID), order.prefix(3).map { plain[$0].chunkID })
        for (h, i) in zip(reranked, order) { XCTAssertEqual(h.rerankScore!, want[i], accuracy: 1e-6) }
        XCTAssertNil(plain[0].rerankScore)
    }

    /// The CLI end to end with the fixture models: kb add --embedding-model (XLM-R, bge-m3 style),
    /// kb search --rerank --json carries the cross-encoder's scores, best first.
    func testCLISearchWithRerank() throws {
        let dir = NSTemporaryDirectory() + "tiefsee-rerank-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/docs", withIntermediateDirectories: true)
        for (i, t) in ["Das Projekt Kompassrose wird von Jana Vogt geleitet.", "Die Kantine bietet täglich ein Gericht an.",
                       "Fahrtkosten werden mit 0,30 € pro Kilometer erstattet."].enumerated() {
            try "# Doc \(i)\n\n\(t)\n".write(toFile: dir + "/docs/d\(i).md", atomically: true, encoding: .utf8)
        }
        let env = ["TIEFSEE_HOME": dir]
        let add = try runTiefseeCLI(["kb", "add", dir + "/docs", "--kb", "t", "--embedding-model", fixturePath("rerankers/xlmr-embedding")], env: env)
        XCTAssertEqual(add.status, 0, add.stderr)
        let rr = fixturePath("rerankers/xlmr-cross-encoder")
        let r = try runTiefseeCLI(["kb", "search", "Wer leitet Kompassrose?", "--kb", "t", "--rerank", rr, "--min-score", "-1", "-k", "3", "--json"], env: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let hits = try XCTUnwrap(try JSONValue.parse(r.stdout)["hits"]?.array)
        XCTAssertEqual(hits.count, 3)
        let scores = hits.compactMap { $0["rerank_score"]?.double }
        XCTAssertEqual(scores.count, 3, "every hit has a rerank score")
        XCTAssertEqual(scores, scores.sorted(by: >))
        let want = try Reranker(folder: rr).score(query: "Wer leitet Kompassrose?", documents: [hits[0]["heading"]!.string! + "\n" + hits[0]["text"]!.string!])
        XCTAssertEqual(Float(scores[0]), want[0], accuracy: 1e-5)
        let bad = try runTiefseeCLI(["kb", "search", "x", "--kb", "t", "--rerank", dir + "/nothing"], env: env)
        XCTAssertNotEqual(bad.status, 0)
    }
}
