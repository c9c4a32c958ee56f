import Foundation
import Tiefsee

public struct ServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var apiKey: String? = nil
    public var parallel = 4
    /// Context per slot; nil: the model's maximum, bounded by `kvCacheBudgetBytes` over all slots.
    public var contextSize: Int? = nil
    public var kvCacheBudgetBytes = 4 << 30
    /// Requests that may wait for a slot; past this, 503 with Retry-After.
    public var maxQueue = 32
    public var limits = HTTPLimits()
    /// The model id clients name (default: the model file or folder name).
    public var modelID: String? = nil
    /// Template variables every chat request starts from (`--think`); a request's
    /// `chat_template_kwargs` override them.
    public var chatTemplateKwargs: [String: JSONValue] = [:]
    /// RAM for KV states kept beyond the slots (`--cache-ram MiB`); 0: none.
    public var cacheRAMBytes = 0
    /// Users, API keys and groups (`tiefsee user …`): with it every request but /health and the
    /// chat page's login needs a user's key or session, and knowledge bases are read by the
    /// groups granted them. nil: no users (only `apiKey`, if set), every base readable.
    public var users: UserDatabase? = nil
    /// `--draft MODEL`: proposes tokens for greedy requests (checked by the model, same text).
    public var draft: DraftModel? = nil
    /// `--mtp`: the model's multi-token-prediction layer proposes instead (DeepSeek-V3/R1, V4).
    public var mtp: MTPDraft? = nil
    public init() {}
}

/// `tiefsee serve`: OpenAI-compatible endpoints over the batch scheduler.
public final class OpenAIServer: @unchecked Sendable {
    public let engine: Engine
    public let config: ServerConfig
    public let scheduler: BatchScheduler
    public let metrics: ServerMetrics
    public let modelID: String
    public let contextSize: Int
    public var hooks: ServerHooks
    private var http: HTTPServer?
    let template: ChatTemplate?
    /// R1-style models: `<think>…</think>` goes to reasoning_content.
    public let splitsReasoning: Bool
    public let supportsTools: Bool
    /// How the model writes tool calls (ToolCalls.swift, DeepSeekToolCalls.swift).
    public let toolCallFormat: ToolCallFormat
    /// DeepSeek V3-family templates concatenate tool-call arguments as text.
    let keepsArgumentText: Bool
    let created = Int(Date().timeIntervalSince1970)
    /// MoE models: experts chosen per layer since start (the chat page's model panel).
    let routing: RoutingStats?

    /// 0 for a server without a listener (one model of a ModelRouter).
    public var port: Int { http?.port ?? 0 }
    public var host: String { config.host }

    /// `listen: false` builds the model's endpoints without a listener: a `ModelRouter` passes
    /// it the requests that name this model.
    public init(engine: Engine, config: ServerConfig, hooks: ServerHooks = ServerHooks(), listen: Bool = true) throws {
        self.engine = engine
        self.config = config
        self.hooks = hooks
        let parallel = max(1, config.parallel)
        contextSize = config.contextSize ?? engine.defaultContextSize(maxCacheBytes: config.kvCacheBudgetBytes / parallel)
        metrics = ServerMetrics(slots: parallel)
        modelID = config.modelID ?? OpenAIServer.defaultModelID(engine)
        template = try engine.chatTemplateSource.map { try ChatTemplate(source: $0) }
        let src = engine.chatTemplateSource ?? ""
        let encoder = engine.deepSeekEncoding != nil
        splitsReasoning = encoder || src.contains("<think>") || src.contains("</think>")
        toolCallFormat = engine.toolCallFormat
        supportsTools = encoder || src.contains("tools") || toolCallFormat == .deepseek
        keepsArgumentText = !encoder && ChatTemplate.wantsArgumentText(src)
        routing = engine.config.moe != nil ? engine.model.startRoutingStats() : nil
        scheduler = BatchScheduler(engine: engine, parallel: parallel, contextSize: contextSize,
                                   maxQueue: config.maxQueue, metrics: metrics,
                                   promptCache: config.cacheRAMBytes > 0 ? PromptCache(budgetBytes: config.cacheRAMBytes) : nil,
                                   draft: config.draft, mtp: config.mtp)
        guard listen else { return }
        let http = try HTTPServer(host: config.host, port: config.port, limits: config.limits,
                                  preflight: { [unowned self] in self.preflight($0) },
                                  handler: { [unowned self] in self.handle($0) })
        self.http = http
        http.onResponse = { [metrics] req, status in
            metrics.countRequest(endpoint: OpenAIServer.endpointLabel(req.path), status: status)
        }
    }

    public func stop() {
        http?.stop()
        scheduler.shutdown()
    }

    static func defaultModelID(_ engine: Engine) -> String {
        var name = URL(fileURLWithPath: engine.files.location.path).lastPathComponent
        if name.lowercased().hasSuffix(".gguf") { name = String(name.dropLast(5)) }
        return name.isEmpty ? "tiefsee" : name
    }

    static let endpoints = ["/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses", "/v1/models",
                            "/v1/embeddings", "/v1/rerank", "/health", "/metrics"]
    static func endpointLabel(_ path: String) -> String {
        if path.hasPrefix("/v1/models/") { return "/v1/models" }
        if path == "/rerank" { return "/v1/rerank" }
        return endpoints.contains(path) ? path : "other"
    }

    // MARK: routing

    /// Headers only: authentication, routes and methods are checked before a body is read.
    func preflight(_ req: HTTPRequest) -> HTTPResponse? {
        guard let e = OpenAIServer.preflightError(req, config: config, embeddings: hooks.embeddings != nil,
                                                 rerank: hooks.rerank != nil) else { return nil }
        return req.path == "/v1/messages" ? OpenAIServer.anthropicError(e) : e.response
    }

    /// The method a path answers to; nil: no such route.
    static func method(for path: String, embeddings: Bool, rerank: Bool = false) -> String? {
        if ["/health", "/metrics", "/v1/models", "/api/session", "/api/model", "/api/knowledge"].contains(path)
            || path.hasPrefix("/v1/models/") || WebChatAssets.files[path] != nil { return "GET" }
        if ["/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses", "/api/login", "/api/logout"].contains(path)
            || (path == "/v1/embeddings" && embeddings) || (rerankPaths.contains(path) && rerank)
            || uploadTarget(path) != nil { return "POST" }
        return nil
    }

    static let rerankPaths: Set<String> = ["/v1/rerank", "/rerank"]

    static func preflightError(_ req: HTTPRequest, config: ServerConfig, embeddings: Bool, rerank: Bool = false) -> OpenAIError? {
        let path = req.path
        guard let wanted = method(for: path, embeddings: embeddings, rerank: rerank) else {
            return OpenAIError(404, "Unknown request URL: \(req.method) \(path)", code: "unknown_url")
        }
        if !isPublic(path), let e = authenticate(req, config) { return e }
        if req.method != wanted && !(wanted == "GET" && req.method == "HEAD") {
            return OpenAIError(405, "\(req.method) is not allowed on \(path); use \(wanted)", code: "method_not_allowed")
        }
        return nil
    }

    func handle(_ req: HTTPRequest) -> HTTPResponse {
        do {
            switch req.path {
            case "/health":
                return .json(200, .object([("status", .string("ok")), ("model", .string(modelID)),
                                           ("slots_total", .int(scheduler.parallel)), ("slots_busy", .int(scheduler.busySlots)),
                                           ("queue_depth", .int(scheduler.queueDepth))]))
            case "/metrics":
                return .text(200, metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
            case "/v1/models":
                return .json(200, .object([("object", .string("list")), ("data", .array([modelObject]))]))
            case "/v1/chat/completions":
                return try chatCompletions(req)
            case "/v1/completions":
                return try completions(req)
            case "/v1/messages":
                return anthropicMessages(req)
            case "/v1/responses":
                return try responses(req)
            case "/api/model":
                return .json(200, modelInfo)
            case "/api/knowledge":
                return try knowledgeBases(req)
            case "/v1/embeddings":
                guard let f = hooks.embeddings else { throw OpenAIError(404, "embeddings are not available") }
                let body = try RequestReader(req.body, allowed: Set((try? JSONValue.parse(req.body, maxDepth: 64).object?.map(\.0)) ?? []))
                return .json(200, try f(body.body))
            case "/v1/rerank", "/rerank":
                guard let f = hooks.rerank else { throw OpenAIError(404, "reranking is not available (tiefsee serve --reranker-model M)") }
                let body = try RequestReader(req.body, allowed: Set((try? JSONValue.parse(req.body, maxDepth: 64).object?.map(\.0)) ?? []))
                return .json(200, try f(body.body))
            default:
                if let r = OpenAIServer.webResponse(req, config) { return r }
                if let kb = OpenAIServer.uploadTarget(req.path) { return try upload(req, kb: kb) }
                if req.path.hasPrefix("/v1/models/") {
                    let id = String(req.path.dropFirst("/v1/models/".count)).removingPercentEncoding ?? ""
                    guard isServedModel(id) else { throw modelNotFound(id) }
                    return .json(200, modelObject)
                }
                throw OpenAIError(404, "Unknown request URL: \(req.path)", code: "unknown_url")
            }
        } catch let e as OpenAIError {
            return e.response
        } catch let e as SchedulerFullError {
            return OpenAIError(503, e.description, type: "server_error", code: "server_busy").response
        } catch {
            return OpenAIError(500, "internal error: \(error)", type: "server_error").response
        }
    }

    var modelObject: JSONValue {
        .object([("id", .string(modelID)), ("object", .string("model")), ("created", .int(created)),
                 ("owned_by", .string("tiefsee")), ("context_length", .int(contextSize))])
    }

    func isServedModel(_ name: String) -> Bool {
        name == modelID || name == URL(fileURLWithPath: engine.files.location.path).lastPathComponent
    }

    func modelNotFound(_ name: String) -> OpenAIError {
        OpenAIError(404, "The model '\(name)' does not exist; this server serves '\(modelID)'.", param: "model", code: "model_not_found")
    }

    // MARK: shared request fields

    struct Common {
        var options = GenerationOptions()
        var stream = false
        var includeUsage = false
        /// NAME from a `MODEL@kb:NAME` model alias (chat only).
        var kbAlias: String? = nil
    }

    /// The model alias that answers from a knowledge base: `MODEL@kb:NAME`.
    static let kbAliasMarker = "@kb:"

    func readCommon(_ r: RequestReader, maxTokensDefault: Int?, allowKBAlias: Bool = false) throws -> Common {
        var c = Common()
        if let m = r.present("model") {
            guard var name = m.string else { throw OpenAIError.badParam("model", "'model' must be a string") }
            if allowKBAlias, let at = name.range(of: OpenAIServer.kbAliasMarker, options: .backwards) {
                c.kbAlias = String(name[at.upperBound...])
                name = String(name[..<at.lowerBound])
            }
            guard isServedModel(name) else { throw modelNotFound(name) }
        }
        if let n = try r.int("n", 1...128), n != 1 { throw OpenAIError.badParam("n", "only n=1 is supported") }
        var p = SamplingParameters()
        p.temperature = try r.number("temperature", 0...2) ?? 1.0
        p.topP = try r.number("top_p", 0...1) ?? 1.0
        if p.topP == 0 { p.temperature = 0 }
        p.presencePenalty = try r.number("presence_penalty", -2...2) ?? 0
        p.frequencyPenalty = try r.number("frequency_penalty", -2...2) ?? 0
        if let s = try r.int("seed", Int.min...Int.max) { p.seed = UInt64(bitPattern: Int64(s)) }
        if let lb = r.present("logit_bias") {
            guard let o = lb.object else { throw OpenAIError.badParam("logit_bias", "'logit_bias' must be an object") }
            if !o.isEmpty { throw OpenAIError.badParam("logit_bias", "logit_bias is not supported") }
        }
        _ = try r.string("user")
        c.options.sampling = p
        c.options.stop = try r.stopStrings()
        // Tiefsee's own field: prompt-lookup speculation for greedy requests (default on).
        c.options.promptLookup = try r.bool("prompt_lookup") ?? true
        let mt = try r.int("max_completion_tokens", 1...Int(Int32.max)) ?? r.int("max_tokens", 1...Int(Int32.max))
        c.options.maxTokens = mt ?? maxTokensDefault ?? contextSize
        c.stream = try r.bool("stream") ?? false
        if let so = r.present("stream_options") {
            guard case .object(let kv) = so else { throw OpenAIError.badParam("stream_options", "'stream_options' must be an object") }
            for (k, v) in kv {
                guard k == "include_usage", let b = v.bool else {
                    throw OpenAIError.badParam("stream_options", "unsupported stream_options field '\(k)'")
                }
                c.includeUsage = b
            }
            guard c.stream else { throw OpenAIError.badParam("stream_options", "stream_options is only allowed with stream: true") }
        }
        return c
    }

    func tokenize(_ text: String) throws -> [Int] {
        let ids = engine.encodePrompt(text)
        guard !ids.isEmpty else { throw OpenAIError(400, "the prompt is empty", param: "messages") }
        try checkLength(ids.count)
        return ids
    }

    func checkLength(_ n: Int) throws {
        guard n < contextSize else {
            throw OpenAIError(400, "This model's maximum context length is \(contextSize) tokens. However, your messages resulted in \(n) tokens.",
                              param: "messages", code: "context_length_exceeded")
        }
    }

    /// Runs a job to the end on the connection's thread (non-streaming responses), cancelling it
    /// if the client disconnects meanwhile.
    static func finishReason(_ f: FinishReason) -> JSONValue {
        switch f {
        case .stop: return .string("stop")
        case .length: return .string("length")
        case .cancelled: return .string("stop")
        }
    }

    static func usage(_ s: JobSummary) -> JSONValue {
        .object([("prompt_tokens", .int(s.promptTokens)), ("completion_tokens", .int(s.completionTokens)),
                 ("total_tokens", .int(s.promptTokens + s.completionTokens))])
    }

    static func newID(_ prefix: String) -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return prefix + String((0..<24).map { _ in chars[Int.random(in: 0..<chars.count)] })
    }

    static func chatLogprobs(_ lps: [TokenLogprob]) -> JSONValue {
        .object([("content", .array(lps.map { l in
            .object([("token", .string(l.token)), ("logprob", .double(l.logprob)),
                     ("bytes", .array(l.bytes.map { .int(Int($0)) })),
                     ("top_logprobs", .array(l.top.map { t in
                         .object([("token", .string(t.token)), ("logprob", .double(t.logprob)),
                                  ("bytes", .array(t.bytes.map { .int(Int($0)) }))])
                     }))])
        })), ("refusal", .null)])
    }

    static func sse(_ v: JSONValue) -> String { "data: " + v.serialized() + "\n\n" }
    static let sseHeaders: [(String, String)] = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                                                 ("X-Accel-Buffering", "no")]

    // MARK: completions

    static let completionFields: Set<String> = [
        "model", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p", "seed", "stop",
        "presence_penalty", "frequency_penalty", "logprobs", "echo", "n", "best_of", "user", "logit_bias", "suffix",
        "grammar", "response_format", "prompt_lookup",
    ]

    func completions(_ req: HTTPRequest) throws -> HTTPResponse {
        let r = try RequestReader(req.body, allowed: OpenAIServer.completionFields)
        let c = try readCommon(r, maxTokensDefault: 16)
        if let b = try r.int("best_of", 1...20), b != 1 { throw OpenAIError.badParam("best_of", "only best_of=1 is supported") }
        if let s = try r.string("suffix"), !s.isEmpty { throw OpenAIError.badParam("suffix", "suffix is not supported") }
        let echo = try r.bool("echo") ?? false
        let topLogprobs = try r.int("logprobs", 0...5)
        guard let pv = r.present("prompt") else { throw OpenAIError.badParam("prompt", "'prompt' is required") }
        let (ids, promptText) = try completionPrompt(pv)
        guard !ids.isEmpty else { throw OpenAIError.badParam("prompt", "the prompt is empty") }
        try checkLength(ids.count)
        var options = c.options
        options.maxTokens = min(options.maxTokens, contextSize - ids.count)
        options.grammar = try readOutputGrammar(r)
        let job = GenerationJob(prompt: ids, options: options, topLogprobs: topLogprobs)
        try scheduler.submit(job)
        let reply = CompletionReply(id: OpenAIServer.newID("cmpl-"), created: Int(Date().timeIntervalSince1970), model: modelID,
                                    logprobs: topLogprobs != nil)
        if !c.stream {
            let (text, lps, sum) = collect(job, req)
            if let e = sum.error { throw OpenAIError(500, "generation failed: \(e)", type: "server_error") }
            let prefix = echo ? promptText : ""
            return .json(200, reply.body(prefix + text, reply.logprobsJSON(lps, offset: prefix.count),
                                         OpenAIServer.finishReason(sum.finishReason), usage: OpenAIServer.usage(sum)))
        }
        return streamCompletion(job, reply, echoing: echo ? promptText : nil, includeUsage: c.includeUsage)
    }

    /// The prompt as text or token ids, in the shapes OpenAI's legacy endpoint accepts.
    func completionPrompt(_ pv: JSONValue) throws -> (ids: [Int], text: String) {
        let vocab = engine.model.outputHead.outFeatures
        func fromTokens(_ a: [JSONValue]) throws -> [Int] {
            try a.map { v in
                guard let i = v.int, i >= 0, i < vocab else { throw OpenAIError.badParam("prompt", "token ids must be integers in 0..<\(vocab)") }
                return i
            }
        }
        switch pv {
        case .string(let s):
            return (engine.encodePrompt(s), s)
        case .array(let a) where a.count == 1 && a[0].string != nil:
            return (engine.encodePrompt(a[0].string!), a[0].string!)
        case .array(let a) where !a.isEmpty && a.allSatisfy({ $0.int != nil }):
            let ids = try fromTokens(a)
            return (ids, engine.tokenizer.decode(ids))
        case .array(let a) where a.count == 1 && a[0].array != nil:
            let ids = try fromTokens(a[0].array!)
            return (ids, engine.tokenizer.decode(ids))
        default:
            throw OpenAIError.badParam("prompt", "'prompt' must be a string, a one-element array of strings, or an array of token ids")
        }
    }

    /// Server-sent events of a completion: the echoed prompt first when asked, a chunk per piece
    /// of text, the finish chunk, the usage chunk when stream_options asked for it, [DONE].
    func streamCompletion(_ job: GenerationJob, _ reply: CompletionReply, echoing prompt: String?, includeUsage: Bool) -> HTTPResponse {
        var ended = false
        var pendingEcho = prompt
        var offset = prompt?.count ?? 0
        let usageNull: JSONValue? = includeUsage ? .null : nil
        let stream = HTTPStream(keepAlive: ": keep-alive\n\n", next: {
            if ended { return nil }
            var out = ""
            if let p = pendingEcho { out += OpenAIServer.sse(reply.body(p, .null, .null, usage: usageNull)); pendingEcho = nil }
            for e in job.next(timeout: 0.01) {
                switch e {
                case .text(let s, let l):
                    out += OpenAIServer.sse(reply.body(s, reply.logprobsJSON(l, offset: offset), .null, usage: usageNull))
                    offset += s.count
                case .done(let sum):
                    if let e = sum.error { out += OpenAIServer.sse(OpenAIError(500, "generation failed: \(e)", type: "server_error").json) }
                    out += OpenAIServer.sse(reply.body("", .null, OpenAIServer.finishReason(sum.finishReason), usage: usageNull))
                    if includeUsage { out += OpenAIServer.sse(reply.usageChunk(OpenAIServer.usage(sum))) }
                    out += "data: [DONE]\n\n"
                    ended = true
                }
            }
            return Array(out.utf8)
        }, onCancel: { job.cancel() })
        return HTTPResponse(status: 200, headers: OpenAIServer.sseHeaders, body: .stream(stream))
    }
}

/// The envelope of `/v1/completions` answers, whole or streamed: one writer for both.
struct CompletionReply {
    let id: String
    let created: Int
    let model: String
    /// Whether the request asked for logprobs (otherwise the field is null).
    let logprobs: Bool

    func body(_ text: String, _ lps: JSONValue, _ finish: JSONValue, usage: JSONValue?) -> JSONValue {
        var o: [(String, JSONValue)] = [("id", .string(id)), ("object", .string("text_completion")), ("created", .int(created)),
                                        ("model", .string(model)), ("system_fingerprint", .string("tiefsee")),
                                        ("choices", .array([.object([("text", .string(text)), ("index", .int(0)),
                                                                     ("logprobs", lps), ("finish_reason", finish)])]))]
        if let usage { o.append(("usage", usage)) }
        return .object(o)
    }

    func usageChunk(_ usage: JSONValue) -> JSONValue {
        .object([("id", .string(id)), ("object", .string("text_completion")), ("created", .int(created)),
                 ("model", .string(model)), ("choices", .array([])), ("usage", usage)])
    }

    /// Legacy logprobs: tokens, their logprobs, the top alternatives and each token's text offset.
    func logprobsJSON(_ lps: [TokenLogprob], offset: Int) -> JSONValue {
        guard logprobs else { return .null }
        var pos = offset
        var offsets: [JSONValue] = []
        for l in lps { offsets.append(.int(pos)); pos += l.token.count }
        return .object([
            ("tokens", .array(lps.map { .string($0.token) })),
            ("token_logprobs", .array(lps.map { .double($0.logprob) })),
            ("top_logprobs", .array(lps.map { l in .object(l.top.map { ($0.token, .double($0.logprob)) }) })),
            ("text_offset", .array(offsets)),
        ])
    }
}
