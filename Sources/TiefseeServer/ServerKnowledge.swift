import Foundation
import Tiefsee
import TiefseeKnowledge

/// The server's embeddings endpoint and knowledge-base answers (`tiefsee serve
/// --embedding-model`): implements `ServerHooks` with `EmbeddingModel`, `KnowledgeBase` and
/// `KnowledgeAnswerer`. Both run on the connection's thread (the embedding model is its own
/// instance, separate from the chat model), so the scheduler's decode thread is never held up
/// for a whole request; compute goes through the shared thread pool, one job at a time.
public final class ServerKnowledge: @unchecked Sendable {
    public let engine: Engine
    /// The model /v1/embeddings serves and knowledge bases search with; nil: each base loads the
    /// model it was built with (default all-minilm-l6-v2).
    public let embedder: EmbeddingModel?
    /// The cross-encoder /v1/rerank serves; knowledge retrieval reranks with it too.
    public let reranker: Reranker?
    /// Most documents in one /v1/rerank request.
    public var maxRerankDocuments = 1024
    /// Where bases live (default `$TIEFSEE_HOME/kb`).
    public let directory: String
    /// Most inputs in one /v1/embeddings request (OpenAI's limit).
    public var maxInputs = 2048
    private let lock = NSLock()
    private var bases: [String: KnowledgeBase] = [:]
    private var searchCounts: [String: Int] = [:]

    /// Searches run per base since start (tests check that refused requests never searched).
    public func searches(_ kb: String) -> Int { lock.lock(); defer { lock.unlock() }; return searchCounts[kb] ?? 0 }

    public init(engine: Engine, embedder: EmbeddingModel?, reranker: Reranker? = nil, directory: String = KnowledgeBase.directory) {
        self.engine = engine
        self.embedder = embedder
        self.reranker = reranker
        self.directory = directory
    }

    /// Hooks for `OpenAIServer` (they keep this object alive): embeddings only with an embedding
    /// model; knowledge always.
    public var hooks: ServerHooks {
        var h = ServerHooks(embeddings: embedder == nil ? nil : { try self.embeddings($0) },
                            knowledge: { try self.knowledge($0, $1, access: $2) },
                            knowledgeBases: { try self.list(access: $0) },
                            upload: { try self.upload(kb: $0, filename: $1, data: $2, access: $3) })
        if reranker != nil { h.rerank = { try self.rerank($0) } }
        return h
    }

    // MARK: /v1/rerank

    static let rerankFields: Set<String> = ["model", "query", "documents", "top_n", "return_documents"]

    /// llama.cpp's and vLLM's rerank: documents as strings (or {"text": …}), results best first
    /// with their index into `documents`; `top_n` keeps the best N; `return_documents` echoes the text.
    public func rerank(_ body: JSONValue) throws -> JSONValue {
        guard let model = reranker else { throw OpenAIError(404, "reranking is not available (tiefsee serve --reranker-model M)") }
        guard case .object(let kv) = body else { throw OpenAIError(400, "the request body must be a JSON object") }
        for (k, _) in kv where !ServerKnowledge.rerankFields.contains(k) {
            throw OpenAIError(400, "Unrecognized request argument supplied: \(k)", param: k, code: "unknown_parameter")
        }
        if let m = body["model"], !m.isNull {
            guard let name = m.string else { throw OpenAIError.badParam("model", "'model' must be a string") }
            guard name == model.name || name == model.folder else {
                throw OpenAIError(404, "The model '\(name)' does not exist; this server reranks with '\(model.name)'.",
                                  param: "model", code: "model_not_found")
            }
        }
        guard let query = body["query"]?.string, !query.isEmpty else { throw OpenAIError.badParam("query", "'query' must be a non-empty string") }
        guard let docs = body["documents"]?.array else { throw OpenAIError.badParam("documents", "'documents' must be an array of strings") }
        guard !docs.isEmpty else { throw OpenAIError.badParam("documents", "'documents' must not be empty") }
        guard docs.count <= maxRerankDocuments else {
            throw OpenAIError.badParam("documents", "'documents' has \(docs.count) items; at most \(maxRerankDocuments) per request")
        }
        let texts: [String] = try docs.enumerated().map { i, d in
            guard let t = d.string ?? d["text"]?.string else {
                throw OpenAIError.badParam("documents", "documents[\(i)] must be a string or {\"text\": string}")
            }
            return t
        }
        var topN = texts.count
        if let t = body["top_n"], !t.isNull {
            guard let n = t.int, n >= 1 else { throw OpenAIError.badParam("top_n", "'top_n' must be a positive integer") }
            topN = min(n, texts.count)
        }
        let echo = body["return_documents"]?.bool ?? false
        let pairs = model.tokenize(query: query, documents: texts)
        let tokens = pairs.reduce(0) { $0 + $1.ids.count }
        let ranked = try model.rank(pairs: pairs, topN: topN)
        let results: [JSONValue] = ranked.map { r in
            var o: [(String, JSONValue)] = [("index", .int(r.index)), ("relevance_score", .double(Double(r.score)))]
            if echo { o.append(("document", .object([("text", .string(texts[r.index]))]))) }
            return .object(o)
        }
        return .object([("object", .string("list")), ("model", .string(model.name)), ("results", .array(results)),
                         ("usage", .object([("prompt_tokens", .int(tokens)), ("total_tokens", .int(tokens))]))])
    }

    // MARK: /v1/embeddings

    static let embeddingFields: Set<String> = ["input", "model", "encoding_format", "dimensions", "user"]

    public func embeddings(_ body: JSONValue) throws -> JSONValue {
        guard let model = embedder else { throw OpenAIError(404, "embeddings are not available") }
        guard case .object(let kv) = body else { throw OpenAIError(400, "the request body must be a JSON object") }
        for (k, _) in kv where !ServerKnowledge.embeddingFields.contains(k) {
            throw OpenAIError(400, "Unrecognized request argument supplied: \(k)", param: k, code: "unknown_parameter")
        }
        if let m = body["model"], !m.isNull {
            guard let name = m.string else { throw OpenAIError.badParam("model", "'model' must be a string") }
            guard name == model.name || name == model.folder else {
                throw OpenAIError(404, "The model '\(name)' does not exist; this server embeds with '\(model.name)'.",
                                  param: "model", code: "model_not_found")
            }
        }
        var base64 = false
        if let f = body["encoding_format"], !f.isNull {
            switch f.string {
            case "float": break
            case "base64": base64 = true
            default: throw OpenAIError.badParam("encoding_format", "'encoding_format' must be \"float\" or \"base64\"")
            }
        }
        if let d = body["dimensions"], !d.isNull {
            guard d.int == model.dimension else {
                throw OpenAIError.badParam("dimensions", "'dimensions' is not supported: \(model.name) always returns \(model.dimension) dimensions")
            }
        }
        if let u = body["user"], !u.isNull, u.string == nil { throw OpenAIError.badParam("user", "'user' must be a string") }
        guard let input = body["input"], !input.isNull else { throw OpenAIError.badParam("input", "'input' is required") }
        let texts: [String]
        switch input {
        case .string(let s): texts = [s]
        case .array(let a):
            guard !a.isEmpty else { throw OpenAIError.badParam("input", "'input' must not be an empty array") }
            if a.allSatisfy({ $0.int != nil }) || a.contains(where: { $0.array != nil }) {
                throw OpenAIError(400, "token-id input is not supported: \(model.name) uses its own WordPiece vocabulary; send text",
                                  param: "input", code: "unsupported_value")
            }
            guard a.allSatisfy({ $0.string != nil }) else {
                throw OpenAIError.badParam("input", "'input' must be a string or an array of strings")
            }
            guard a.count <= maxInputs else {
                throw OpenAIError.badParam("input", "'input' has \(a.count) items; at most \(maxInputs) per request")
            }
            texts = a.compactMap(\.string)
        default:
            throw OpenAIError.badParam("input", "'input' must be a string or an array of strings")
        }
        if let i = texts.firstIndex(where: { $0.isEmpty }) {
            throw OpenAIError.badParam("input", texts.count == 1 ? "'input' must not be empty" : "input[\(i)] must not be empty")
        }
        let ids = texts.map(model.tokenize)
        let vectors = try model.embed(tokenIDs: ids)
        let tokens = ids.reduce(0) { $0 + $1.count }
        let data: [JSONValue] = vectors.enumerated().map { i, v in
            .object([("object", .string("embedding")), ("index", .int(i)),
                     ("embedding", base64 ? .string(ServerKnowledge.base64(v)) : .array(v.map { .double(Double($0)) }))])
        }
        return .object([("object", .string("list")), ("data", .array(data)), ("model", .string(model.name)),
                         ("usage", .object([("prompt_tokens", .int(tokens)), ("total_tokens", .int(tokens))]))])
    }

    /// Little-endian f32 bytes, base64 (OpenAI's `encoding_format: "base64"`).
    static func base64(_ v: [Float]) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(v.count * 4)
        for f in v { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes += $0 } }
        return Data(bytes).base64EncodedString()
    }

    // MARK: knowledge

    /// `spec`: "NAME" or {"kb": "NAME", "top_k": N, "min_score": S}. Retrieves for the last user
    /// message and returns `KnowledgeAnswerer`'s grounded prompt (the one `tiefsee ask` uses),
    /// with earlier turns (not system messages) kept before the final question.
    public func knowledge(_ spec: JSONValue, _ messages: [JSONValue], access: KnowledgeAccess = .all) throws -> KnowledgeContext {
        let name: String
        var topK: Int? = nil
        var minScore: Double? = nil
        switch spec {
        case .string(let s): name = s
        case .object(let kv):
            for (k, _) in kv where !["kb", "top_k", "min_score"].contains(k) {
                throw OpenAIError.badParam("knowledge.\(k)", "Unrecognized field in knowledge: \(k) (use kb, top_k, min_score)")
            }
            guard let s = spec["kb"]?.string else { throw OpenAIError.badParam("knowledge.kb", "'knowledge.kb' (the base's name) is required") }
            name = s
            if let t = spec["top_k"], !t.isNull {
                guard let i = t.int, (1...20).contains(i) else { throw OpenAIError.badParam("knowledge.top_k", "'knowledge.top_k' must be an integer 1…20") }
                topK = i
            }
            if let m = spec["min_score"], !m.isNull {
                guard let d = m.double, d.isFinite, d <= 1 else { throw OpenAIError.badParam("knowledge.min_score", "'knowledge.min_score' must be a number ≤ 1 (negative: no floor)") }
                minScore = d
            }
        default:
            throw OpenAIError.badParam("knowledge", "'knowledge' must be a knowledge base name or {\"kb\": NAME, \"top_k\": N}")
        }
        guard KnowledgeBase.validName(name) else { throw OpenAIError.badParam("knowledge", "invalid knowledge base name '\(name)'") }
        // Checked before anything is opened or searched: no passage of a base the sender may not
        // read is ever retrieved.
        guard access.mayRead(name) else { throw ServerKnowledge.forbidden(name, "read") }
        let path = directory + "/" + name + ".sqlite"
        guard FileManager.default.fileExists(atPath: path) else {
            throw OpenAIError(404, "The knowledge base '\(name)' does not exist (tiefsee kb ls lists the bases).",
                              param: "knowledge", code: "knowledge_base_not_found")
        }
        guard let last = messages.lastIndex(where: { $0["role"]?.string == "user" }),
              let question = messages[last]["content"]?.string,
              !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw OpenAIError.badParam("messages", "answering from a knowledge base needs a user message with text")
        }
        lock.lock(); defer { lock.unlock() }
        let kb = try base(name, create: false)
        searchCounts[name, default: 0] += 1
        let answerer = KnowledgeAnswerer(engine: engine, kb: kb)
        answerer.reranker = reranker
        if let topK { answerer.topK = topK }
        if let minScore { answerer.minSimilarity = Float(minScore) }
        let prompt: GroundedPrompt?
        do { prompt = try answerer.prepare(question) } catch let e as KnowledgeError {
            throw OpenAIError(500, "knowledge base '\(name)': \(e)", type: "server_error")
        }
        guard let prompt else { return KnowledgeContext(messages: messages, sources: [], directAnswer: noKnowledgeAnswer) }
        var out = prompt.messages
        let history = messages[..<last].filter { $0["role"]?.string != "system" }
        out.insert(contentsOf: history, at: out.count - 1)
        return KnowledgeContext(messages: out, sources: prompt.sources)
    }

    static func forbidden(_ name: String, _ what: String) -> OpenAIError {
        OpenAIError(403, "you may not \(what) the knowledge base '\(name)' (tiefsee group grant GROUP \(name)\(what == "read" ? "" : " --write") gives a group access)",
                    type: "permission_error", param: "knowledge", code: "knowledge_base_forbidden")
    }

    /// The open base `name` (caller holds `lock`).
    private func base(_ name: String, create: Bool) throws -> KnowledgeBase {
        if let b = bases[name] { return b }
        let kb = try KnowledgeBase(name: name, path: directory + "/" + name + ".sqlite", embedder: embedder, create: create)
        bases[name] = kb
        return kb
    }

    // MARK: the chat page: listing and upload

    /// GET /api/knowledge: the bases `access` may read — those on disk, and for a principal also
    /// the ones it may write that do not exist yet (its first upload creates them).
    public func list(access: KnowledgeAccess) throws -> JSONValue {
        let onDisk = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".sqlite") }.map { String($0.dropLast(7)) }
        var names = Set(onDisk.filter { KnowledgeBase.validName($0) })
        if case .only(let p?) = access { names.formUnion(p.writable) }
        lock.lock(); defer { lock.unlock() }
        let rows: [JSONValue] = try names.sorted().filter { access.mayRead($0) }.map { name in
            let exists = onDisk.contains(name)
            let c = exists ? try base(name, create: false).counts() : (documents: 0, chunks: 0)
            return .object([("name", .string(name)), ("documents", .int(c.documents)), ("chunks", .int(c.chunks)),
                            ("writable", .bool(access.mayWrite(name)))])
        }
        return .object([("object", .string("list")), ("data", .array(rows))])
    }

    /// The file name an upload is stored under: its last path component, with characters other
    /// than letters, digits and `-_. ` replaced; the extension must be one ingest reads.
    static func safeFileName(_ raw: String) throws -> String {
        let last = raw.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let cleaned = String(last.map { $0.isLetter || $0.isNumber || "-_. ".contains($0) ? $0 : "_" }).trimmingCharacters(in: .whitespaces)
        guard !cleaned.isEmpty, !cleaned.hasPrefix("."), cleaned.count <= 200 else {
            throw OpenAIError.badParam("filename", "'filename' must name the document, e.g. ?filename=handbook.pdf")
        }
        guard DocumentExtractor.isSupported(cleaned) else {
            throw OpenAIError.badParam("filename", "'\(cleaned)' is not a supported document type (.txt .md .html .pdf .docx)")
        }
        return cleaned
    }

    /// POST /api/knowledge/NAME/documents?filename=F: stores the document under
    /// `DIRECTORY/NAME.files/` and ingests it like `tiefsee kb add` (a file of the same name is
    /// replaced and re-embedded only if its content changed).
    public func upload(kb name: String, filename: String, data: [UInt8], access: KnowledgeAccess) throws -> JSONValue {
        guard KnowledgeBase.validName(name) else { throw OpenAIError.badParam("knowledge", "invalid knowledge base name '\(name)'") }
        guard access.mayWrite(name) else { throw ServerKnowledge.forbidden(name, "upload into") }
        let file = try ServerKnowledge.safeFileName(filename)
        guard !data.isEmpty else { throw OpenAIError.badParam("body", "the document is empty") }
        let folder = directory + "/" + name + ".files"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/" + file
        try Data(data).write(to: URL(fileURLWithPath: path))
        lock.lock(); defer { lock.unlock() }
        let kb = try base(name, create: true)
        let report: IngestReport
        do { report = try kb.add(paths: [path]) } catch let e as KnowledgeError {
            throw OpenAIError(422, "\(file): \(e)", param: "body", code: "document_unreadable")
        }
        if let f = report.failed.first {
            try? FileManager.default.removeItem(atPath: path)
            throw OpenAIError(422, "\(file) could not be read: \(f.error)", param: "body", code: "document_unreadable")
        }
        let c = try kb.counts()
        let status = !report.added.isEmpty ? "added" : !report.updated.isEmpty ? "updated" : "unchanged"
        return .object([("kb", .string(name)), ("file", .string(file)), ("status", .string(status)),
                        ("chunks", .int(report.chunksEmbedded)), ("documents", .int(c.documents)), ("total_chunks", .int(c.chunks)),
                        ("seconds", .double((report.seconds * 1000).rounded() / 1000))])
    }
}
