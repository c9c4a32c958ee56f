import Foundation

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
    private var http: HTTPServer!
    private let template: ChatTemplate?
    /// R1-style models: `<think>…</think>` goes to reasoning_content.
    public let splitsReasoning: Bool
    public let supportsTools: Bool
    let created = Int(Date().timeIntervalSince1970)

    public var port: Int { http.port }
    public var host: String { config.host }

    public init(engine: Engine, config: ServerConfig, hooks: ServerHooks = ServerHooks()) throws {
        self.engine = engine
        self.config = config
        self.hooks = hooks
        let parallel = max(1, config.parallel)
        contextSize = config.contextSize ?? engine.defaultContextSize(maxCacheBytes: config.kvCacheBudgetBytes / parallel)
        metrics = ServerMetrics(slots: parallel)
        modelID = config.modelID ?? OpenAIServer.defaultModelID(engine)
        template = try engine.chatTemplateSource.map { try ChatTemplate(source: $0) }
        let src = engine.chatTemplateSource ?? ""
        splitsReasoning = src.contains("<think>") || src.contains("</think>")
        supportsTools = src.contains("tools")
        scheduler = BatchScheduler(engine: engine, parallel: parallel, contextSize: contextSize,
                                   maxQueue: config.maxQueue, metrics: metrics)
        http = try HTTPServer(host: config.host, port: config.port, limits: config.limits,
                              preflight: { [unowned self] in self.preflight($0) },
                              handler: { [unowned self] in self.handle($0) })
        http.onResponse = { [metrics] req, status in
            metrics.countRequest(endpoint: OpenAIServer.endpointLabel(req.path), status: status)
        }
    }

    public func stop() {
        http.stop()
        scheduler.shutdown()
    }

    static func defaultModelID(_ engine: Engine) -> String {
        var name = URL(fileURLWithPath: engine.files.location.path).lastPathComponent
        if name.lowercased().hasSuffix(".gguf") { name = String(name.dropLast(5)) }
        return name.isEmpty ? "tiefsee" : name
    }

    static let endpoints = ["/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/embeddings", "/health", "/metrics"]
    static func endpointLabel(_ path: String) -> String {
        if path.hasPrefix("/v1/models/") { return "/v1/models" }
        return endpoints.contains(path) ? path : "other"
    }

    // MARK: routing

    /// Headers only: authentication, routes and methods are checked before a body is read.
    func preflight(_ req: HTTPRequest) -> HTTPResponse? {
        let path = req.path
        let isModelPath = path == "/v1/models" || path.hasPrefix("/v1/models/")
        let getPaths = path == "/health" || path == "/metrics" || isModelPath
        let postPaths = ["/v1/chat/completions", "/v1/completions"].contains(path) || (path == "/v1/embeddings" && hooks.embeddings != nil)
        guard getPaths || postPaths else {
            return OpenAIError(404, "Unknown request URL: \(req.method) \(path)", code: "unknown_url").response
        }
        if path != "/health", let key = config.apiKey, !key.isEmpty {
            let given = req.header("Authorization") ?? ""
            let expected = "Bearer " + key
            if !OpenAIServer.constantTimeEqual(given, expected) {
                let msg = given.isEmpty ? "You didn't provide an API key. Provide it as 'Authorization: Bearer KEY'."
                                        : "Incorrect API key provided."
                return OpenAIError(401, msg, code: "invalid_api_key").response
            }
        }
        let wanted = getPaths ? "GET" : "POST"
        if req.method != wanted && !(wanted == "GET" && req.method == "HEAD") {
            return OpenAIError(405, "\(req.method) is not allowed on \(path); use \(wanted)", code: "method_not_allowed").response
        }
        return nil
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<y.count { diff |= (i < x.count ? x[i] : 0) ^ y[i] }
        return diff == 0
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
            case "/v1/embeddings":
                guard let f = hooks.embeddings else { throw OpenAIError(404, "embeddings are not available") }
                let body = try RequestReader(req.body, allowed: Set((try? JSONValue.parse(req.body, maxDepth: 64).object?.map(\.0)) ?? []))
                return .json(200, try f(body.body))
            default:
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
    func collect(_ job: GenerationJob, _ req: HTTPRequest) -> (String, [TokenLogprob], JobSummary)? {
        var text = ""
        var lps: [TokenLogprob] = []
        while true {
            for e in job.next(timeout: 0.02) {
                switch e {
                case .text(let s, let l): text += s; lps += l
                case .done(let sum): return (text, lps, sum)
                }
            }
            if req.clientGone { job.cancel() }
        }
    }

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

    // MARK: chat

    static let chatFields: Set<String> = [
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "seed", "stop", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "response_format", "tools",
        "tool_choice", "n", "user", "logit_bias", "parallel_tool_calls", "metadata", "store", "service_tier", "knowledge",
        "grammar",
    ]

    func chatCompletions(_ req: HTTPRequest) throws -> HTTPResponse {
        var allowed = OpenAIServer.chatFields
        if hooks.knowledge == nil { allowed.remove("knowledge") }
        let r = try RequestReader(req.body, allowed: allowed)
        let c = try readCommon(r, maxTokensDefault: nil, allowKBAlias: true)
        var messages = try readMessages(r)
        var knowledge: KnowledgeContext? = nil
        if c.kbAlias != nil && r.present("knowledge") != nil {
            throw OpenAIError.badParam("knowledge", "give the knowledge base either as 'knowledge' or as a MODEL@kb:NAME model alias, not both")
        }
        if let spec = r.present("knowledge") ?? c.kbAlias.map({ JSONValue.string($0) }) {
            guard let f = hooks.knowledge else {
                throw OpenAIError(400, "knowledge bases are not available on this server (start it with --embedding-model, or fetch the default embedding model)",
                                  param: "model", code: "knowledge_unavailable")
            }
            let ctx = try f(spec, messages)
            knowledge = ctx
            messages = ctx.messages
        }

        // logprobs
        var topLogprobs: Int? = nil
        if try r.bool("logprobs") == true { topLogprobs = try r.int("top_logprobs", 0...20) ?? 0 }
        else if r.present("top_logprobs") != nil { throw OpenAIError.badParam("top_logprobs", "top_logprobs requires logprobs: true") }

        // response_format / grammar
        var grammar = try readOutputGrammar(r)

        // tools
        var tools: [JSONValue]? = nil
        var prefill = ""
        var forcedTool: String? = nil
        if let tv = r.present("tools") {
            guard let arr = tv.array else { throw OpenAIError.badParam("tools", "'tools' must be an array") }
            for (i, t) in arr.enumerated() {
                guard t["type"]?.string == "function", let fn = t["function"], let name = fn["name"]?.string, !name.isEmpty else {
                    throw OpenAIError.badParam("tools[\(i)]", "each tool must be {\"type\": \"function\", \"function\": {\"name\": …}}")
                }
            }
            if !arr.isEmpty { tools = arr }
        }
        if let tc = r.present("tool_choice") {
            if let s = tc.string {
                switch s {
                case "none": tools = nil
                case "auto": break
                case "required": break  // the template already asks for a call; no forcing
                default: throw OpenAIError.badParam("tool_choice", "'tool_choice' must be none, auto, required or a function")
                }
            } else if let name = tc["function"]?["name"]?.string {
                guard tools?.contains(where: { $0["function"]?["name"]?.string == name }) == true else {
                    throw OpenAIError.badParam("tool_choice", "tool_choice names '\(name)', which is not among the tools")
                }
                prefill = "<tool_call>\n{\"name\": \(JSONValue.string(name).serialized()), \"arguments\": "
                forcedTool = name
            } else {
                throw OpenAIError.badParam("tool_choice", "'tool_choice' must be a string or {\"type\": \"function\", \"function\": {\"name\": …}}")
            }
        }
        if tools != nil && !supportsTools {
            throw OpenAIError.badParam("tools", "this model's chat template does not support tools")
        }
        let templateWritesToolCalls = engine.chatTemplateSource?.contains("<tool_call>") ?? false
        if !templateWritesToolCalls { prefill = "" }
        // A forced tool: the call is generated under its parameters schema (this takes the
        // place of any response_format: the answer is the call).
        if let name = forcedTool, let tool = tools?.first(where: { $0["function"]?["name"]?.string == name }) {
            grammar = try OpenAIServer.forcedToolGrammar(name: name, parameters: tool["function"]?["parameters"],
                                                         prefixed: !prefill.isEmpty, closing: "\n" + ToolCallParser.close)
        }

        if let direct = knowledge?.directAnswer {
            return cannedChatReply(direct, knowledge: knowledge!, stream: c.stream, includeUsage: c.includeUsage)
        }

        var prompt: String
        do {
            if let template {
                prompt = try template.render(messages: messages, tools: tools, addGenerationPrompt: true,
                                             bosToken: engine.bosToken, eosToken: engine.eosToken)
            } else {
                prompt = try engine.renderChat(messages, tools: tools)
            }
        } catch {
            throw OpenAIError(400, "the chat template could not render these messages: \(error)", param: "messages")
        }
        let startInThinking = splitsReasoning && prompt.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("<think>")
        prompt += prefill
        let ids = try tokenize(prompt)
        var options = c.options
        options.maxTokens = min(options.maxTokens, contextSize - ids.count)
        options.grammar = grammar
        let job = GenerationJob(prompt: ids, options: options, topLogprobs: topLogprobs)
        try scheduler.submit(job)

        let id = OpenAIServer.newID("chatcmpl-")
        let created = Int(Date().timeIntervalSince1970)
        let model = modelID
        let withTools = tools != nil
        let toolNames = Set((tools ?? []).compactMap { $0["function"]?["name"]?.string })
        let splits = splitsReasoning
        func chunk(_ delta: [(String, JSONValue)], finish: JSONValue = .null, logprobs: JSONValue = .null,
                   extra: [(String, JSONValue)] = []) -> String {
            var o: [(String, JSONValue)] = [("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
                                            ("model", .string(model)), ("system_fingerprint", .string("tiefsee")),
                                            ("choices", .array([.object([("index", .int(0)), ("delta", .object(delta)),
                                                                         ("logprobs", logprobs), ("finish_reason", finish)])]))]
            if c.includeUsage { o.append(("usage", .null)) }
            return OpenAIServer.sse(.object(o + extra))
        }
        func toolCallsJSON(_ calls: [ParsedToolCall], streaming: Bool) -> JSONValue {
            .array(calls.enumerated().map { i, call in
                var o: [(String, JSONValue)] = []
                if streaming { o.append(("index", .int(i))) }
                o += [("id", .string(OpenAIServer.newID("call_"))), ("type", .string("function")),
                      ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments))]))]
                return .object(o)
            })
        }

        if !c.stream {
            guard let (text, lps, sum) = collect(job, req) else { return OpenAIError(499, "client closed").response }
            if let e = sum.error { throw OpenAIError(500, "generation failed: \(e)", type: "server_error") }
            var reasoning: String? = nil
            var content = text
            if splits {
                var sp = ReasoningSplitter(startInThinking: startInThinking)
                _ = sp.feed(text); _ = sp.flush()
                reasoning = sp.reasoning
                content = sp.content
            }
            var calls: [ParsedToolCall] = []
            if withTools {
                let (found, outside) = ToolCallParser.parse(prefill + content, toolNames: toolNames)
                if !found.isEmpty { calls = found; content = outside.trimmingCharacters(in: .whitespacesAndNewlines) }
            }
            if knowledge != nil { content = normalizeCitationMarkers(content) }
            var msg: [(String, JSONValue)] = [("role", .string("assistant")),
                                              ("content", calls.isEmpty || !content.isEmpty ? .string(content) : .null)]
            if let reasoning { msg.append(("reasoning_content", .string(reasoning))) }
            if !calls.isEmpty { msg.append(("tool_calls", toolCallsJSON(calls, streaming: false))) }
            msg.append(("refusal", .null))
            let finish: JSONValue = calls.isEmpty ? OpenAIServer.finishReason(sum.finishReason) : .string("tool_calls")
            var body: [(String, JSONValue)] = [
                ("id", .string(id)), ("object", .string("chat.completion")), ("created", .int(created)), ("model", .string(model)),
                ("system_fingerprint", .string("tiefsee")),
                ("choices", .array([.object([("index", .int(0)), ("message", .object(msg)),
                                             ("logprobs", topLogprobs == nil ? .null : OpenAIServer.chatLogprobs(lps)),
                                             ("finish_reason", finish)])])),
                ("usage", OpenAIServer.usage(sum)),
            ]
            if let knowledge { body.append(("sources", OpenAIServer.sourcesJSON(knowledge.sources, answer: content))) }
            return .json(200, .object(body))
        }

        // Streaming.
        var splitter = splits ? ReasoningSplitter(startInThinking: startInThinking) : nil
        var toolParser = withTools ? ToolCallParser(toolNames: toolNames) : nil
        if !prefill.isEmpty { _ = toolParser?.feed(prefill) }
        var sentRole = false
        var ended = false
        var heldLogprobs: [TokenLogprob] = []
        let wantLogprobs = topLogprobs != nil
        var streamedContent = ""
        func emitContent(_ s: String, _ out: inout String) {
            let text = toolParser.map { _ in toolParser!.feed(s) } ?? s
            if text.isEmpty { return }
            streamedContent += text
            out += chunk([("content", .string(text))], logprobs: wantLogprobs ? OpenAIServer.chatLogprobs(heldLogprobs) : .null)
            heldLogprobs = []
        }
        func emit(_ parts: [ReasoningSplitter.Part], _ out: inout String) {
            for p in parts {
                switch p {
                case .reasoning(let s): out += chunk([("reasoning_content", .string(s))])
                case .content(let s): emitContent(s, &out)
                }
            }
        }
        let stream = HTTPStream(keepAlive: ": keep-alive\n\n", next: {
            if ended { return nil }
            var out = ""
            if !sentRole { out += chunk([("role", .string("assistant")), ("content", .string(""))]); sentRole = true }
            for e in job.next(timeout: 0.01) {
                switch e {
                case .text(let s, let l):
                    heldLogprobs += l
                    if splitter != nil { emit(splitter!.feed(s), &out) } else { emitContent(s, &out) }
                case .done(let sum):
                    if let e = sum.error {
                        out += OpenAIServer.sse(OpenAIError(500, "generation failed: \(e)", type: "server_error").json)
                    }
                    if splitter != nil { emit(splitter!.flush(), &out) }
                    var finish = OpenAIServer.finishReason(sum.finishReason)
                    if toolParser != nil {
                        let rest = toolParser!.finish()
                        let calls = toolParser!.calls
                        if !rest.isEmpty && !(calls.count > 0 && rest.allSatisfy(\.isWhitespace)) {
                            out += chunk([("content", .string(rest))])
                        }
                        if !calls.isEmpty {
                            out += chunk([("tool_calls", toolCallsJSON(calls, streaming: true))])
                            finish = .string("tool_calls")
                        }
                    }
                    if !heldLogprobs.isEmpty && wantLogprobs {
                        out += chunk([], logprobs: OpenAIServer.chatLogprobs(heldLogprobs)); heldLogprobs = []
                    }
                    let sources: [(String, JSONValue)] = knowledge.map {
                        [("sources", OpenAIServer.sourcesJSON($0.sources, answer: streamedContent))]
                    } ?? []
                    out += chunk([], finish: finish, extra: sources)
                    if c.includeUsage {
                        out += OpenAIServer.sse(.object([
                            ("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(created)),
                            ("model", .string(model)), ("system_fingerprint", .string("tiefsee")), ("choices", .array([])),
                            ("usage", OpenAIServer.usage(sum)),
                        ]))
                    }
                    out += "data: [DONE]\n\n"
                    ended = true
                }
            }
            return Array(out.utf8)
        }, onCancel: { job.cancel() })
        return HTTPResponse(status: 200, headers: OpenAIServer.sseHeaders, body: .stream(stream))
    }

    /// The `sources` field of a knowledge-grounded reply: every retrieved passage in prompt order
    /// (`index` is the `[n]` the answer cites), with whether the answer cites it.
    static func sourcesJSON(_ hits: [KnowledgeHit], answer: String) -> JSONValue {
        let cited = Set(citedSources(in: answer, count: hits.count))
        return .array(hits.enumerated().map { i, h in
            .object([("index", .int(i + 1)), ("file", .string(URL(fileURLWithPath: h.path).lastPathComponent)),
                     ("path", .string(h.path)), ("heading", .string(h.headingPath)), ("page", h.page.map { .int($0) } ?? .null),
                     ("citation", .string(h.citation)), ("score", .double(h.score)), ("similarity", .double(Double(h.similarity))),
                     ("cited", .bool(cited.contains(i + 1)))])
        })
    }

    /// A chat reply that did not need the model (knowledge base: nothing relevant found).
    func cannedChatReply(_ text: String, knowledge: KnowledgeContext, stream: Bool, includeUsage: Bool) -> HTTPResponse {
        let id = OpenAIServer.newID("chatcmpl-")
        let created = Int(Date().timeIntervalSince1970)
        let usage: JSONValue = .object([("prompt_tokens", .int(0)), ("completion_tokens", .int(0)), ("total_tokens", .int(0))])
        let sources = OpenAIServer.sourcesJSON(knowledge.sources, answer: text)
        let head: [(String, JSONValue)] = [("id", .string(id)), ("created", .int(created)), ("model", .string(modelID)),
                                           ("system_fingerprint", .string("tiefsee"))]
        if !stream {
            let msg: JSONValue = .object([("role", .string("assistant")), ("content", .string(text)), ("refusal", .null)])
            return .json(200, .object([("object", .string("chat.completion"))] + head + [
                ("choices", .array([.object([("index", .int(0)), ("message", msg), ("logprobs", .null), ("finish_reason", .string("stop"))])])),
                ("usage", usage), ("sources", sources),
            ]))
        }
        func chunk(_ delta: [(String, JSONValue)], _ finish: JSONValue, _ extra: [(String, JSONValue)] = []) -> String {
            var o: [(String, JSONValue)] = [("object", .string("chat.completion.chunk"))] + head + [
                ("choices", .array([.object([("index", .int(0)), ("delta", .object(delta)), ("logprobs", .null), ("finish_reason", finish)])]))]
            if includeUsage { o.append(("usage", .null)) }
            return OpenAIServer.sse(.object(o + extra))
        }
        var out = chunk([("role", .string("assistant")), ("content", .string(""))], .null)
        out += chunk([("content", .string(text))], .null)
        out += chunk([], .string("stop"), [("sources", sources)])
        if includeUsage {
            out += OpenAIServer.sse(.object([("object", .string("chat.completion.chunk"))] + head + [("choices", .array([])), ("usage", usage)]))
        }
        out += "data: [DONE]\n\n"
        var sent = false
        let body = HTTPStream(keepAlive: ": keep-alive\n\n", next: {
            if sent { return nil }
            sent = true
            return Array(out.utf8)
        }, onCancel: {})
        return HTTPResponse(status: 200, headers: OpenAIServer.sseHeaders, body: .stream(body))
    }

    static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool"]

    func readMessages(_ r: RequestReader) throws -> [JSONValue] {
        guard let mv = r.present("messages") else { throw OpenAIError.badParam("messages", "'messages' is required") }
        guard let arr = mv.array else { throw OpenAIError.badParam("messages", "'messages' must be an array") }
        guard !arr.isEmpty else { throw OpenAIError.badParam("messages", "'messages' must contain at least one message") }
        var out: [JSONValue] = []
        for (i, m) in arr.enumerated() {
            let p = "messages[\(i)]"
            guard case .object(let kv) = m else { throw OpenAIError.badParam(p, "\(p) must be an object") }
            guard let role = m["role"]?.string else { throw OpenAIError.badParam("\(p).role", "\(p).role must be a string") }
            guard OpenAIServer.roles.contains(role) else {
                throw OpenAIError.badParam("\(p).role", "\(p).role must be one of system, developer, user, assistant, tool; got '\(role)'")
            }
            var fields: [(String, JSONValue)] = [("role", .string(role == "developer" ? "system" : role))]
            let content = m["content"] ?? .null
            var text: String? = nil
            switch content {
            case .string(let s): text = s
            case .null:
                guard role == "assistant" else { throw OpenAIError.badParam("\(p).content", "\(p).content is required") }
            case .array(let parts):
                var s = ""
                for part in parts {
                    guard part["type"]?.string == "text", let t = part["text"]?.string else {
                        throw OpenAIError.badParam("\(p).content", "only text content parts are supported")
                    }
                    s += t
                }
                text = s
            default:
                throw OpenAIError.badParam("\(p).content", "\(p).content must be a string or an array of text parts")
            }
            fields.append(("content", text.map { .string($0) } ?? .null))
            for (k, v) in kv {
                switch k {
                case "role", "content": continue
                case "name", "tool_call_id":
                    guard v.string != nil else { throw OpenAIError.badParam("\(p).\(k)", "\(p).\(k) must be a string") }
                    fields.append((k, v))
                case "reasoning_content", "refusal":
                    if !v.isNull { guard v.string != nil else { throw OpenAIError.badParam("\(p).\(k)", "\(p).\(k) must be a string") } }
                    fields.append((k, v))
                case "tool_calls":
                    guard role == "assistant", let calls = v.array else {
                        throw OpenAIError.badParam("\(p).tool_calls", "\(p).tool_calls must be an array on an assistant message")
                    }
                    // Templates expect arguments as an object; OpenAI sends a JSON string.
                    let fixed: [JSONValue] = try calls.map { call in
                        guard let fn = call["function"], let name = fn["name"]?.string else {
                            throw OpenAIError.badParam("\(p).tool_calls", "each tool call needs function.name")
                        }
                        var args = fn["arguments"] ?? .object([])
                        if let s = args.string, let parsed = try? JSONValue.parse(s, maxDepth: 64) { args = parsed }
                        return .object([("id", call["id"] ?? .string("")), ("type", .string("function")),
                                        ("function", .object([("name", .string(name)), ("arguments", args)]))])
                    }
                    fields.append(("tool_calls", .array(fixed)))
                default:
                    throw OpenAIError.badParam("\(p).\(k)", "Unrecognized field in \(p): \(k)")
                }
            }
            out.append(.object(fields))
        }
        return out
    }

    // MARK: completions

    static let completionFields: Set<String> = [
        "model", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p", "seed", "stop",
        "presence_penalty", "frequency_penalty", "logprobs", "echo", "n", "best_of", "user", "logit_bias", "suffix",
        "grammar", "response_format",
    ]

    func completions(_ req: HTTPRequest) throws -> HTTPResponse {
        let r = try RequestReader(req.body, allowed: OpenAIServer.completionFields)
        let c = try readCommon(r, maxTokensDefault: 16)
        if let b = try r.int("best_of", 1...20), b != 1 { throw OpenAIError.badParam("best_of", "only best_of=1 is supported") }
        if let s = try r.string("suffix"), !s.isEmpty { throw OpenAIError.badParam("suffix", "suffix is not supported") }
        let echo = try r.bool("echo") ?? false
        let topLogprobs = try r.int("logprobs", 0...5)
        guard let pv = r.present("prompt") else { throw OpenAIError.badParam("prompt", "'prompt' is required") }
        var ids: [Int]
        var promptText: String
        let vocab = engine.model.outputHead.outFeatures
        func fromTokens(_ a: [JSONValue]) throws -> [Int] {
            try a.map { v in
                guard let i = v.int, i >= 0, i < vocab else { throw OpenAIError.badParam("prompt", "token ids must be integers in 0..<\(vocab)") }
                return i
            }
        }
        switch pv {
        case .string(let s):
            promptText = s
            ids = engine.encodePrompt(s)
        case .array(let a) where a.count == 1 && a[0].string != nil:
            promptText = a[0].string!
            ids = engine.encodePrompt(promptText)
        case .array(let a) where !a.isEmpty && a.allSatisfy({ $0.int != nil }):
            ids = try fromTokens(a)
            promptText = engine.tokenizer.decode(ids)
        case .array(let a) where a.count == 1 && a[0].array != nil:
            ids = try fromTokens(a[0].array!)
            promptText = engine.tokenizer.decode(ids)
        default:
            throw OpenAIError.badParam("prompt", "'prompt' must be a string, a one-element array of strings, or an array of token ids")
        }
        guard !ids.isEmpty else { throw OpenAIError.badParam("prompt", "the prompt is empty") }
        try checkLength(ids.count)
        var options = c.options
        options.maxTokens = min(options.maxTokens, contextSize - ids.count)
        options.grammar = try readOutputGrammar(r)
        let job = GenerationJob(prompt: ids, options: options, topLogprobs: topLogprobs)
        try scheduler.submit(job)
        let id = OpenAIServer.newID("cmpl-")
        let created = Int(Date().timeIntervalSince1970)
        let model = modelID
        func logprobsJSON(_ lps: [TokenLogprob], offset: Int) -> JSONValue {
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
        func body(_ text: String, _ lps: JSONValue, _ finish: JSONValue, usage: JSONValue?) -> JSONValue {
            var o: [(String, JSONValue)] = [("id", .string(id)), ("object", .string("text_completion")), ("created", .int(created)),
                                            ("model", .string(model)), ("system_fingerprint", .string("tiefsee")),
                                            ("choices", .array([.object([("text", .string(text)), ("index", .int(0)),
                                                                         ("logprobs", lps), ("finish_reason", finish)])]))]
            if let usage { o.append(("usage", usage)) }
            return .object(o)
        }
        if !c.stream {
            guard let (text, lps, sum) = collect(job, req) else { return OpenAIError(499, "client closed").response }
            if let e = sum.error { throw OpenAIError(500, "generation failed: \(e)", type: "server_error") }
            let prefix = echo ? promptText : ""
            return .json(200, body(prefix + text, topLogprobs == nil ? .null : logprobsJSON(lps, offset: prefix.count),
                                   OpenAIServer.finishReason(sum.finishReason), usage: OpenAIServer.usage(sum)))
        }
        var ended = false
        var sentEcho = !echo
        var offset = echo ? promptText.count : 0
        let usageNull: JSONValue? = c.includeUsage ? .null : nil
        let stream = HTTPStream(keepAlive: ": keep-alive\n\n", next: {
            if ended { return nil }
            var out = ""
            if !sentEcho { out += OpenAIServer.sse(body(promptText, .null, .null, usage: usageNull)); sentEcho = true }
            for e in job.next(timeout: 0.01) {
                switch e {
                case .text(let s, let l):
                    out += OpenAIServer.sse(body(s, topLogprobs == nil ? .null : logprobsJSON(l, offset: offset), .null, usage: usageNull))
                    offset += s.count
                case .done(let sum):
                    if let e = sum.error { out += OpenAIServer.sse(OpenAIError(500, "generation failed: \(e)", type: "server_error").json) }
                    out += OpenAIServer.sse(body("", .null, OpenAIServer.finishReason(sum.finishReason), usage: usageNull))
                    if c.includeUsage {
                        out += OpenAIServer.sse(.object([("id", .string(id)), ("object", .string("text_completion")),
                                                         ("created", .int(created)), ("model", .string(model)),
                                                         ("choices", .array([])), ("usage", OpenAIServer.usage(sum))]))
                    }
                    out += "data: [DONE]\n\n"
                    ended = true
                }
            }
            return Array(out.utf8)
        }, onCancel: { job.cancel() })
        return HTTPResponse(status: 200, headers: OpenAIServer.sseHeaders, body: .stream(stream))
    }
}
