import Foundation
import Tiefsee

/// How retrieved passages are put in front of the model and how it cites them.
public enum CitationStyle: String, Sendable {
    /// Numbered passages `[1] …`, the model cites `[n]`; company documents take precedence.
    case numbered
    /// DeepSeek-R1's published search template: `[webpage X begin] … [webpage X end]`, cited as `[citation:X]`.
    case deepseekR1

    /// R1-family models (DeepSeek-R1 and its distills) use the template they were trained with.
    public static func forModel(architecture: String, path: String) -> CitationStyle {
        let s = (architecture + " " + path).lowercased()
        return s.contains("deepseek-r1") || s.contains("deepseek_r1") || s.contains("r1-distill") ? .deepseekR1 : .numbered
    }
}

public struct GroundedPrompt: Sendable {
    /// Chat messages (role/content objects) ready for `Engine.renderChat`.
    public var messages: [JSONValue]
    /// The passages in the order they are numbered (1-based in the prompt).
    public var sources: [KnowledgeHit]
    public var style: CitationStyle
}

/// The reply used when retrieval finds nothing above the relevance floor.
public let noKnowledgeAnswer = "I could not find this in the company documents, so I cannot answer it from them."

/// Builds the chat messages for a question answered from retrieved passages.
public func buildGroundedPrompt(question: String, hits: [KnowledgeHit], style: CitationStyle = .numbered,
                                date: Date = Date()) -> GroundedPrompt {
    switch style {
    case .numbered:
        var ctx = ""
        for (i, h) in hits.enumerated() {
            ctx += "[\(i + 1)] (source: \(h.citation))\n\(h.text)\n\n"
        }
        let system = """
            You are the company's internal assistant. Answer ONLY from the company documents you are given. \
            The company documents are authoritative: when they differ from what you believe or from general \
            knowledge, the documents are right and you answer exactly as the documents say. \
            End your answer with the number of the document you used in square brackets, like [1]. \
            If the documents do not contain the answer, say that the documents do not cover it. \
            Answer in one or two short sentences, in the language of the question.
            """
        // One worked example (a house rule that contradicts general knowledge, answered with a
        // citation): small models copy the pattern far more reliably than they follow instructions.
        let exampleUser = """
            Company documents:

            [1] (source: travel-rules.md › Distances)
            For travel expense claims, the company counts one kilometre as 900 metres.

            [2] (source: canteen.md › Opening hours)
            The canteen opens at 11:30 on working days.

            Question: How many metres does a kilometre have for travel expense claims?
            """
        let exampleAnswer = "For travel expense claims, the company counts one kilometre as 900 metres [1]."
        let user = """
            Company documents:

            \(ctx)Question: \(question)
            """
        return GroundedPrompt(messages: [message("system", system), message("user", exampleUser), message("assistant", exampleAnswer),
                                         message("user", user)], sources: hits, style: style)
    case .deepseekR1:
        var results = ""
        for (i, h) in hits.enumerated() {
            results += "[webpage \(i + 1) begin]\n[file name]: \(h.citation)\n\(h.text)\n[webpage \(i + 1) end]\n"
        }
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd"
        f.locale = Locale(identifier: "en_US_POSIX")
        let user = """
            # The following contents are the search results related to the user's message:
            \(results)
            In the search results I provide to you, each result is formatted as [webpage X begin]...[webpage X end], where X represents the numerical index of each article. Please cite the context at the end of the relevant sentence when appropriate. Use the citation format [citation:X] in the corresponding part of your answer. If a sentence is derived from multiple contexts, list all relevant citation numbers, such as [citation:3][citation:5]. Be sure not to cluster all citations at the end; instead, include them in the corresponding parts of the answer.
            When responding, please keep the following points in mind:
            - Today is \(f.string(from: date)).
            - The search results are the company's own documents. Where they contradict general knowledge, the company documents take precedence.
            - Not all content in the search results is closely related to the user's question. You need to evaluate and filter the search results based on the question.
            - If the search results do not answer the question, say so instead of answering from memory.
            - Unless the user requests otherwise, your response should be in the same language as the user's question.

            # The user's message is:
            \(question)
            """
        return GroundedPrompt(messages: [message("user", user)], sources: hits, style: style)
    }
}

func message(_ role: String, _ content: String) -> JSONValue {
    .object([("role", .string(role)), ("content", .string(content))])
}

/// 1-based source numbers cited in `answer` ([n], [n, m], [citation:X]), in order of first use,
/// limited to those that exist.
public func citedSources(in answer: String, count: Int) -> [Int] {
    var out = [Int]()
    var i = answer.startIndex
    while let open = answer[i...].firstIndex(of: "[") {
        guard let close = answer[open...].firstIndex(of: "]") else { break }
        var inner = answer[answer.index(after: open)..<close]
        if inner.hasPrefix("citation:") { inner = inner.dropFirst("citation:".count) }
        for part in inner.split(whereSeparator: { $0 == "," || $0 == " " || $0 == ";" }) {
            if let n = Int(part), n >= 1, n <= count, !out.contains(n) { out.append(n) }
        }
        i = answer.index(after: open)
    }
    return out
}

/// Rewrites R1 `[citation:X]` markers to `[X]` so replies read the same for every model.
public func normalizeCitationMarkers(_ s: String) -> String {
    s.replacingOccurrences(of: "[citation:", with: "[")
}

public struct GroundedAnswer: Sendable {
    public var text: String
    public var sources: [KnowledgeHit]
    /// 1-based indexes into `sources` that the answer cites.
    public var cited: [Int]
    /// True when nothing relevant was retrieved and the model was not asked.
    public var noKnowledge: Bool
    public var generation: GenerationResult?

    /// "Sources:" lines: cited ones (or all, when none was cited).
    public var sourceList: String {
        let idx = cited.isEmpty ? Array(1...max(1, sources.count)).filter { $0 <= sources.count } : cited
        return idx.map { "[\($0)] \(sources[$0 - 1].citation)" }.joined(separator: "\n")
    }
}

/// Retrieval + generation: the library-level `ask` that the CLI (and later the server) uses.
public final class KnowledgeAnswerer {
    public let engine: Engine
    public let kb: KnowledgeBase
    public var topK = 3
    public var minSimilarity: Float = 0.3
    /// When nothing relevant is found: answer `noKnowledgeAnswer` without calling the model (default),
    /// or let the model answer without documents.
    public var refuseWithoutKnowledge = true
    public var style: CitationStyle
    /// Cross-encoder that reorders the retrieved candidates before the best `topK` are used.
    public var reranker: Reranker?
    /// `--draft`: speculative decoding of the (often quoting) answer with a draft model.
    public var draft: DraftModel?
    /// `--mtp`: the same with the model's multi-token-prediction layer.
    public var mtp: MTPDraft?

    public init(engine: Engine, kb: KnowledgeBase, style: CitationStyle? = nil) {
        self.engine = engine
        self.kb = kb
        self.style = style ?? CitationStyle.forModel(architecture: engine.files.architectureName, path: engine.files.location.path)
    }

    /// Retrieval and the grounded prompt `ask` renders; nil when nothing relevant was found and
    /// `refuseWithoutKnowledge` is set (answer `noKnowledgeAnswer` without calling the model).
    /// The server's `knowledge` field uses this, so both build the same prompt.
    public func prepare(_ question: String) throws -> GroundedPrompt? {
        let hits = try kb.search(question, topK: topK, minSimilarity: minSimilarity, reranker: reranker)
        if hits.isEmpty && refuseWithoutKnowledge { return nil }
        return buildGroundedPrompt(question: question, hits: hits, style: style)
    }

    public func ask(_ question: String, options: GenerationOptions = GenerationOptions(), contextSize: Int = 4096,
                    onText: (String) -> Bool = { _ in true }) throws -> GroundedAnswer {
        guard let prompt = try prepare(question) else {
            return GroundedAnswer(text: noKnowledgeAnswer, sources: [], cited: [], noKnowledge: true, generation: nil)
        }
        let hits = prompt.sources
        let text = try engine.renderChat(prompt.messages)
        let session = Session(engine: engine, contextSize: contextSize, draft: draft, mtp: mtp)
        let r = try session.generate(prompt: engine.encodePrompt(text), options: options, onText: onText)
        // R1-style models think first; only the content after </think> is the answer.
        var split = ReasoningSplitter(startInThinking: text.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("<think>"))
        var answer = ""
        for part in split.feed(r.text) + split.flush() { if case .content(let c) = part { answer += c } }
        answer = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        return GroundedAnswer(text: normalizeCitationMarkers(answer), sources: hits,
                              cited: citedSources(in: answer, count: hits.count), noKnowledge: hits.isEmpty, generation: r)
    }
}
