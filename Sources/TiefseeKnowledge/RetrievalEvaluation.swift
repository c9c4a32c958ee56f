import Foundation
import Tiefsee

/// Recall@k of a knowledge base against questions whose answering passage is known
/// (fixtures/kb-corpus/questions.json): a question counts as found when one of the top-k hits
/// comes from the expected document and contains the answer string.
public struct RetrievalEvaluation {
    public struct Question: Sendable {
        public var question: String
        public var doc: String
        public var answer: String
    }

    public struct Result: Sendable {
        public var recall: [String: Double] = [:]
        public var misses: [String: [String]] = [:]
        public var questions = 0
        public var meanQuerySeconds = 0.0
    }

    public static func loadQuestions(_ path: String) throws -> [Question] {
        let j = try JSONValue.parse(contentsOf: path)
        return (j.array ?? []).compactMap { q in
            guard let t = q["question"]?.string, let d = q["doc"]?.string, let a = q["answer"]?.string else { return nil }
            return Question(question: t, doc: d, answer: a)
        }
    }

    static func squash(_ s: String) -> String {
        s.lowercased().split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).joined(separator: " ")
    }

    public static func isHit(_ h: KnowledgeHit, _ q: Question) -> Bool {
        h.path.hasSuffix("/" + q.doc) && squash(h.text).contains(squash(q.answer))
    }

    /// Runs every mode (floor disabled, pure ranking) plus hybrid with the default relevance floor,
    /// and with a reranker hybrid (floor disabled) reranked by it ("hybrid+rerank").
    public static func run(kb: KnowledgeBase, questions: [Question], k: Int = 5, floor: Float = 0.3,
                           reranker: Reranker? = nil) throws -> Result {
        var r = Result()
        r.questions = questions.count
        var seconds = 0.0, queries = 0
        var runs: [(String, RetrievalMode, Float, Reranker?)] = [("hybrid", .hybrid, -2, nil), ("bm25", .bm25, -2, nil),
                                                                 ("vector", .vector, -2, nil), ("hybrid+floor", .hybrid, floor, nil)]
        if let reranker { runs.append(("hybrid+rerank", .hybrid, -2, reranker)) }
        for (label, mode, fl, rr) in runs {
            var found = 0
            for q in questions {
                let t0 = Date()
                let hits = try kb.search(q.question, topK: k, mode: mode, minSimilarity: fl, reranker: rr)
                seconds += Date().timeIntervalSince(t0); queries += 1
                if hits.contains(where: { isHit($0, q) }) { found += 1 } else { r.misses[label, default: []].append(q.question) }
            }
            r.recall[label] = questions.isEmpty ? 0 : Double(found) / Double(questions.count)
        }
        r.meanQuerySeconds = queries > 0 ? seconds / Double(queries) : 0
        return r
    }
}
