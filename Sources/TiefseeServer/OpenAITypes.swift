import Foundation
import Tiefsee
import TiefseeKnowledge

/// An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}` with an HTTP status.
public struct OpenAIError: Error, CustomStringConvertible {
    public let status: Int
    public let message: String
    public let type: String
    public let param: String?
    public let code: String?

    public init(_ status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        self.status = status; self.message = message; self.type = type; self.param = param; self.code = code
    }

    public var description: String { "\(status) \(message)" }

    public var json: JSONValue {
        .object([("error", .object([
            ("message", .string(message)),
            ("type", .string(type)),
            ("param", param.map { .string($0) } ?? .null),
            ("code", code.map { .string($0) } ?? .null),
        ]))])
    }

    public var response: HTTPResponse {
        var headers: [(String, String)] = []
        if status == 503 || status == 429 { headers.append(("Retry-After", "1")) }
        if status == 401 { headers.append(("WWW-Authenticate", "Bearer")) }
        return .json(status, json, headers: headers)
    }

    static func badParam(_ name: String, _ message: String) -> OpenAIError {
        OpenAIError(400, message, param: name, code: "invalid_value")
    }
}

/// What the `knowledge` hook returns for a chat request: the messages to render (the grounded
/// prompt), the passages they number, or — when nothing relevant was found — the reply to send
/// without calling the model.
public struct KnowledgeContext {
    public var messages: [JSONValue]
    /// The passages in prompt order (1-based `[n]` in the prompt).
    public var sources: [KnowledgeHit]
    /// Set when retrieval found nothing relevant: this text is the answer and the model is not run.
    public var directAnswer: String?
    public init(messages: [JSONValue], sources: [KnowledgeHit], directAnswer: String? = nil) {
        self.messages = messages; self.sources = sources; self.directAnswer = directAnswer
    }
}

/// Hooks for features other libraries provide (embeddings, knowledge base); `ServerKnowledge`
/// supplies them. Unset hooks make the endpoint answer 404 and the `knowledge` field 400.
public struct ServerHooks {
    /// POST /v1/embeddings: the request body in, the OpenAI-shaped response out. Runs on the
    /// connection's thread, never on the scheduler's decode thread.
    public var embeddings: ((JSONValue) throws -> JSONValue)?
    /// The chat request's knowledge spec (the `knowledge` field, or the name from a
    /// `MODEL@kb:NAME` model alias, as a string), its messages and the bases its sender may
    /// read in; the grounded prompt out.
    public var knowledge: ((JSONValue, [JSONValue], KnowledgeAccess) throws -> KnowledgeContext)?
    /// GET /api/knowledge: the bases the sender may read.
    public var knowledgeBases: ((KnowledgeAccess) throws -> JSONValue)?
    /// POST /api/knowledge/NAME/documents?filename=F: a document's bytes into base NAME.
    public var upload: ((_ kb: String, _ filename: String, _ data: [UInt8], KnowledgeAccess) throws -> JSONValue)?
    /// POST /v1/rerank (and /rerank): {"model", "query", "documents", "top_n"} in,
    /// {"results": [{"index", "relevance_score"}]} out (llama.cpp's and vLLM's shape).
    public var rerank: ((JSONValue) throws -> JSONValue)? = nil
    public init(embeddings: ((JSONValue) throws -> JSONValue)? = nil,
                knowledge: ((JSONValue, [JSONValue], KnowledgeAccess) throws -> KnowledgeContext)? = nil,
                knowledgeBases: ((KnowledgeAccess) throws -> JSONValue)? = nil,
                upload: ((String, String, [UInt8], KnowledgeAccess) throws -> JSONValue)? = nil) {
        self.embeddings = embeddings; self.knowledge = knowledge; self.knowledgeBases = knowledgeBases; self.upload = upload
    }
}

/// Reads typed fields of a request body, turning wrong types and ranges into 400 errors.
struct RequestReader {
    let body: JSONValue

    init(_ bytes: [UInt8], allowed: Set<String>) throws {
        guard !bytes.isEmpty else { throw OpenAIError(400, "the request body is empty; expected a JSON object") }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw OpenAIError(400, "the request body is not valid UTF-8")
        }
        let v: JSONValue
        do {
            v = try JSONValue.parse(bytes, maxDepth: 64, rejectDuplicateKeys: true)
        } catch {
            throw OpenAIError(400, "the request body is not valid JSON: \(error)")
        }
        try self.init(json: v, allowed: allowed)
    }

    /// A body another API's request was translated into (Anthropic messages, Responses).
    init(json v: JSONValue, allowed: Set<String>) throws {
        guard case .object(let kv) = v else { throw OpenAIError(400, "the request body must be a JSON object") }
        for (k, _) in kv where !allowed.contains(k) {
            throw OpenAIError(400, "Unrecognized request argument supplied: \(k)", param: k, code: "unknown_parameter")
        }
        body = v
    }

    func present(_ k: String) -> JSONValue? {
        guard let v = body[k], !v.isNull else { return nil }
        return v
    }

    func string(_ k: String) throws -> String? {
        guard let v = present(k) else { return nil }
        guard let s = v.string else { throw OpenAIError.badParam(k, "'\(k)' must be a string") }
        return s
    }
    func bool(_ k: String) throws -> Bool? {
        guard let v = present(k) else { return nil }
        guard let b = v.bool else { throw OpenAIError.badParam(k, "'\(k)' must be a boolean") }
        return b
    }
    func int(_ k: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let v = present(k) else { return nil }
        guard case .int(let i) = v else {
            if case .double(let d) = v, d == d.rounded(), let i = v.int { return try checkRange(k, i, range) }
            throw OpenAIError.badParam(k, "'\(k)' must be an integer")
        }
        return try checkRange(k, i, range)
    }
    private func checkRange(_ k: String, _ i: Int, _ r: ClosedRange<Int>) throws -> Int {
        guard r.contains(i) else { throw OpenAIError.badParam(k, "'\(k)' must be between \(r.lowerBound) and \(r.upperBound), got \(i)") }
        return i
    }
    func number(_ k: String, _ range: ClosedRange<Double>) throws -> Double? {
        guard let v = present(k) else { return nil }
        guard let d = v.double, d.isFinite else { throw OpenAIError.badParam(k, "'\(k)' must be a number") }
        guard range.contains(d) else { throw OpenAIError.badParam(k, "'\(k)' must be between \(range.lowerBound) and \(range.upperBound), got \(d)") }
        return d
    }
    func stopStrings() throws -> [String] {
        guard let v = present("stop") else { return [] }
        if let s = v.string { return s.isEmpty ? [] : [s] }
        guard let a = v.array, a.count <= 4, a.allSatisfy({ $0.string != nil }) else {
            throw OpenAIError.badParam("stop", "'stop' must be a string or an array of at most 4 strings")
        }
        return a.compactMap(\.string).filter { !$0.isEmpty }
    }
}
