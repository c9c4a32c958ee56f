import Foundation
import Tiefsee
import TiefseeKnowledge

/// `POST /v1/chat/completions`: read and check the request (`readChat`), turn it into a prompt
/// and a job (`planChat`), and write the reply whole or streamed (`writeChatReply`). The
/// Anthropic and Responses endpoints translate their requests into this shape and reuse the
/// first two steps.
extension OpenAIServer {
    static let chatFields: Set<String> = [
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "seed", "stop", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "response_format", "tools",
        "tool_choice", "n", "user", "logit_bias", "parallel_tool_calls", "metadata", "store", "service_tier", "knowledge",
        "grammar", "chat_template_kwargs", "reasoning_effort", "prompt_lookup",
    ]

    func chatCompletions(_ req: HTTPRequest) throws -> HTTPResponse {
        var allowed = OpenAIServer.chatFields
        if hooks.knowledge == nil { allowed.remove("knowledge") }
        let q = try readChat(try RequestReader(req.body, allowed: allowed))
        switch try planChat(q, access: OpenAIServer.knowledgeAccess(req, config)) {
        case .direct(let text, let knowledge):
            return cannedChatReply(text, knowledge: knowledge, stream: q.common.stream, includeUsage: q.common.includeUsage)
        case .generate(let plan):
            return writeChatReply(plan, q, req)
        }
    }

    // MARK: reading

    /// Every field of a chat request, checked.
    func readChat(_ r: RequestReader) throws -> ChatRequest {
        let c = try readCommon(r, maxTokensDefault: nil, allowKBAlias: true)
        var q = ChatRequest(common: c, messages: try readMessages(r))
        if c.kbAlias != nil && r.present("knowledge") != nil {
            throw OpenAIError.badParam("knowledge", "give the knowledge base either as 'knowledge' or as a MODEL@kb:NAME model alias, not both")
        }
        q.knowledge = r.present("knowledge") ?? c.kbAlias.map { JSONValue.string($0) }
        if try r.bool("logprobs") == true { q.topLogprobs = try r.int("top_logprobs", 0...20) ?? 0 }
        else if r.present("top_logprobs") != nil { throw OpenAIError.badParam("top_logprobs", "top_logprobs requires logprobs: true") }
        q.grammar = try readOutputGrammar(r)
        (q.tools, q.forcedTool) = try readTools(r)
        if let kw = r.present("chat_template_kwargs") {
            guard let o = kw.object else { throw OpenAIError.badParam("chat_template_kwargs", "'chat_template_kwargs' must be an object") }
            q.templateArguments = o
        }
        q.reasoningEffort = try ChatPromptOptions.readEffort(r)
        return q
    }

    /// `tools` and `tool_choice`: the tools offered (nil for none) and the one forced, if any.
    func readTools(_ r: RequestReader) throws -> ([JSONValue]?, String?) {
        var tools: [JSONValue]? = nil
        if let tv = r.present("tools") {
            guard let arr = tv.array else { throw OpenAIError.badParam("tools", "'tools' must be an array") }
            for (i, t) in arr.enumerated() {
                guard t["type"]?.string == "function", let fn = t["function"], let name = fn["name"]?.string, !name.isEmpty else {
                    throw OpenAIError.badParam("tools[\(i)]", "each tool must be {\"type\": \"function\", \"function\": {\"name\": …}}")
                }
            }
            if !arr.isEmpty { tools = arr }
        }
        var forced: String? = nil
        if let tc = r.present("tool_choice") {
            if let s = tc.string {
                switch s {
                case "none": tools = nil
                case "auto", "required": break  // the template already asks for a call
                default: throw OpenAIError.badParam("tool_choice", "'tool_choice' must be none, auto, required or a function")
                }
            } else if let name = tc["function"]?["name"]?.string {
                guard tools?.contains(where: { $0["function"]?["name"]?.string == name }) == true else {
                    throw OpenAIError.badParam("tool_choice", "tool_choice names '\(name)', which is not among the tools")
                }
                forced = name
            } else {
                throw OpenAIError.badParam("tool_choice", "'tool_choice' must be a string or {\"type\": \"function\", \"function\": {\"name\": …}}")
            }
        }
        if tools != nil && !supportsTools {
            throw OpenAIError.badParam("tools", "this model's chat template does not support tools")
        }
        return (tools, forced)
    }

    // MARK: planning

    enum ChatOutcome {
        case generate(ChatPlan)
        /// Answered without the model (a knowledge base found nothing relevant).
        case direct(String, KnowledgeContext)
    }

    /// Knowledge retrieval (from the bases `access` allows), the rendered prompt, and the job
    /// submitted to the scheduler.
    func planChat(_ q: ChatRequest, access: KnowledgeAccess) throws -> ChatOutcome {
        var messages = q.messages
        var knowledge: KnowledgeContext? = nil
        if let spec = q.knowledge {
            guard let f = hooks.knowledge else {
                throw OpenAIError(400, "knowledge bases are not available on this server (start it with --embedding-model, or fetch the default embedding model)",
                                  param: "model", code: "knowledge_unavailable")
            }
            let ctx = try f(spec, messages, access)
            if let direct = ctx.directAnswer { return .direct(direct, ctx) }
            knowledge = ctx
            messages = ctx.messages
        }
        // A forced tool: the prompt opens the call (Hermes-style templates) and the call is
        // generated under the tool's parameters schema; this takes the place of response_format.
        var grammar = q.grammar
        var prefill = ""
        if let name = q.forcedTool, let tool = q.tools?.first(where: { $0["function"]?["name"]?.string == name }) {
            let templateWritesToolCalls = engine.chatTemplateSource?.contains(ToolCallParser.open) ?? false
            if toolCallFormat != .hermes || templateWritesToolCalls { prefill = forcedToolCallPrefix(name) }
            grammar = try forcedToolCallGrammar(name: name, parameters: tool["function"]?["parameters"], prefixed: !prefill.isEmpty)
        }
        var prompt = try renderPrompt(messages, tools: q.tools, templateArguments: q.templateArguments, reasoningEffort: q.reasoningEffort)
        let startInThinking = splitsReasoning && prompt.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("<think>")
        if startInThinking && q.forcedTool != nil { prefill = ""; grammar = nil }  // a forced call cannot come before the reasoning
        prompt += prefill
        let ids = try tokenize(prompt)
        var options = q.common.options
        options.maxTokens = min(options.maxTokens, contextSize - ids.count)
        options.grammar = grammar
        let job = GenerationJob(prompt: ids, options: options, topLogprobs: q.topLogprobs)
        try scheduler.submit(job)
        let names = q.tools.map { Set($0.compactMap { $0["function"]?["name"]?.string }) }
        return .generate(ChatPlan(job: job, prefill: prefill, startInThinking: startInThinking, splitsReasoning: splitsReasoning,
                                  toolNames: names, knowledge: knowledge, toolFormat: toolCallFormat))
    }

    /// The chat template, or the DeepSeek V3.2/V4 encoder (ChatPrompt.swift), with the server's
    /// default template arguments (`--think`) under the request's.
    func renderPrompt(_ messages: [JSONValue], tools: [JSONValue]?, templateArguments: [(String, JSONValue)],
                      reasoningEffort: String? = nil) throws -> String {
        do {
            let options = ChatPromptOptions(defaults: config.chatTemplateKwargs, request: templateArguments, reasoningEffort: reasoningEffort)
            return try renderChatPrompt(messages, tools: tools, options: options)
        } catch {
            throw OpenAIError(400, "the chat template could not render these messages: \(error)", param: "messages")
        }
    }

    // MARK: replies

    /// The fields every chat.completion(.chunk) object starts with.
    struct ChatEnvelope {
        let id = OpenAIServer.newID("chatcmpl-")
        let created = Int(Date().timeIntervalSince1970)
        let model: String
        let includeUsage: Bool

        func object(_ kind: String, choices: [JSONValue], extra: [(String, JSONValue)] = []) -> JSONValue {
            .object([("id", .string(id)), ("object", .string(kind)), ("created", .int(created)), ("model", .string(model)),
                     ("system_fingerprint", .string("tiefsee")), ("choices", .array(choices))] + extra)
        }

        func chunk(_ delta: [(String, JSONValue)], finish: JSONValue = .null, logprobs: JSONValue = .null,
                   extra: [(String, JSONValue)] = []) -> String {
            let choice: JSONValue = .object([("index", .int(0)), ("delta", .object(delta)), ("logprobs", logprobs), ("finish_reason", finish)])
            return OpenAIServer.sse(object("chat.completion.chunk", choices: [choice], extra: (includeUsage ? [("usage", .null)] : []) + extra))
        }

        func usageChunk(_ usage: JSONValue) -> String {
            OpenAIServer.sse(object("chat.completion.chunk", choices: [], extra: [("usage", usage)]))
        }
    }

    static func toolCallsJSON(_ calls: [ParsedToolCall], streaming: Bool) -> JSONValue {
        .array(calls.enumerated().map { i, call in
            var o: [(String, JSONValue)] = streaming ? [("index", .int(i))] : []
            o += [("id", .string(OpenAIServer.newID("call_"))), ("type", .string("function")),
                  ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments))]))]
            return .object(o)
        })
    }

    func writeChatReply(_ plan: ChatPlan, _ q: ChatRequest, _ req: HTTPRequest) -> HTTPResponse {
        let env = ChatEnvelope(model: modelID, includeUsage: q.common.includeUsage)
        if !q.common.stream { return wholeChatReply(plan, q, env, req) }
        var output = ChatOutput(plan)
        var held: [TokenLogprob] = []
        let wantLogprobs = q.topLogprobs != nil
        func emit(_ pieces: [ChatOutput.Piece]) -> String {
            pieces.map { p -> String in
                switch p {
                case .reasoning(let s): return env.chunk([("reasoning_content", .string(s))])
                case .content(let s):
                    defer { held = [] }
                    return env.chunk([("content", .string(s))], logprobs: wantLogprobs ? OpenAIServer.chatLogprobs(held) : .null)
                }
            }.joined()
        }
        return eventStream(plan.job, start: { env.chunk([("role", .string("assistant")), ("content", .string(""))]) }) { e in
            switch e {
            case .text(let s, let l):
                held += l
                return (emit(output.feed(s)), false)
            case .done(let sum):
                var out = sum.error.map { OpenAIServer.sse(OpenAIError(500, "generation failed: \($0)", type: "server_error").json) } ?? ""
                let (pieces, calls) = output.finish()
                out += emit(pieces)
                var finish = OpenAIServer.finishReason(sum.finishReason)
                if !calls.isEmpty {
                    out += env.chunk([("tool_calls", OpenAIServer.toolCallsJSON(calls, streaming: true))])
                    finish = .string("tool_calls")
                }
                if !held.isEmpty && wantLogprobs { out += env.chunk([], logprobs: OpenAIServer.chatLogprobs(held)); held = [] }
                let sources = plan.knowledge.map { [("sources", OpenAIServer.sourcesJSON($0.sources, answer: output.content))] } ?? []
                out += env.chunk([], finish: finish, extra: sources)
                if q.common.includeUsage { out += env.usageChunk(OpenAIServer.usage(sum)) }
                return (out + "data: [DONE]\n\n", true)
            }
        }
    }

    func wholeChatReply(_ plan: ChatPlan, _ q: ChatRequest, _ env: ChatEnvelope, _ req: HTTPRequest) -> HTTPResponse {
        let (text, lps, sum) = collect(plan.job, req)
        if let e = sum.error { return OpenAIError(500, "generation failed: \(e)", type: "server_error").response }
        var (reasoning, content, calls) = ChatOutput.whole(text, plan)
        if plan.knowledge != nil { content = normalizeCitationMarkers(content) }
        var msg: [(String, JSONValue)] = [("role", .string("assistant")),
                                          ("content", calls.isEmpty || !content.isEmpty ? .string(content) : .null)]
        if let reasoning { msg.append(("reasoning_content", .string(reasoning))) }
        if !calls.isEmpty { msg.append(("tool_calls", OpenAIServer.toolCallsJSON(calls, streaming: false))) }
        msg.append(("refusal", .null))
        let finish: JSONValue = calls.isEmpty ? OpenAIServer.finishReason(sum.finishReason) : .string("tool_calls")
        let choice: JSONValue = .object([("index", .int(0)), ("message", .object(msg)),
                                         ("logprobs", q.topLogprobs == nil ? .null : OpenAIServer.chatLogprobs(lps)), ("finish_reason", finish)])
        var extra: [(String, JSONValue)] = [("usage", OpenAIServer.usage(sum))]
        if let k = plan.knowledge { extra.append(("sources", OpenAIServer.sourcesJSON(k.sources, answer: content))) }
        return .json(200, env.object("chat.completion", choices: [choice], extra: extra))
    }

    /// The `sources` field of a knowledge-grounded reply: every retrieved passage in prompt order
    /// (`index` is the `[n]` the answer cites), with whether the answer cites it and the passage
    /// itself (the chat page opens it from the citation).
    static func sourcesJSON(_ hits: [KnowledgeHit], answer: String) -> JSONValue {
        let cited = Set(citedSources(in: answer, count: hits.count))
        return .array(hits.enumerated().map { i, h in
            .object([("index", .int(i + 1)), ("file", .string(URL(fileURLWithPath: h.path).lastPathComponent)),
                     ("path", .string(h.path)), ("heading", .string(h.headingPath)), ("page", h.page.map { .int($0) } ?? .null),
                     ("citation", .string(h.citation)), ("score", .double(h.score)), ("similarity", .double(Double(h.similarity))),
                     ("cited", .bool(cited.contains(i + 1))), ("text", .string(h.text))])
        })
    }

    /// A chat reply that did not need the model (knowledge base: nothing relevant found).
    func cannedChatReply(_ text: String, knowledge: KnowledgeContext, stream: Bool, includeUsage: Bool) -> HTTPResponse {
        let env = ChatEnvelope(model: modelID, includeUsage: includeUsage)
        let usage: JSONValue = .object([("prompt_tokens", .int(0)), ("completion_tokens", .int(0)), ("total_tokens", .int(0))])
        let sources = OpenAIServer.sourcesJSON(knowledge.sources, answer: text)
        if !stream {
            let msg: JSONValue = .object([("role", .string("assistant")), ("content", .string(text)), ("refusal", .null)])
            let choice: JSONValue = .object([("index", .int(0)), ("message", msg), ("logprobs", .null), ("finish_reason", .string("stop"))])
            return .json(200, env.object("chat.completion", choices: [choice], extra: [("usage", usage), ("sources", sources)]))
        }
        var out = env.chunk([("role", .string("assistant")), ("content", .string(""))])
        out += env.chunk([("content", .string(text))])
        out += env.chunk([], finish: .string("stop"), extra: [("sources", sources)])
        if includeUsage { out += env.usageChunk(usage) }
        out += "data: [DONE]\n\n"
        var sent = false
        let body = HTTPStream(keepAlive: ": keep-alive\n\n", next: {
            if sent { return nil }
            sent = true
            return Array(out.utf8)
        }, onCancel: {})
        return HTTPResponse(status: 200, headers: OpenAIServer.sseHeaders, body: .stream(body))
    }

    // MARK: messages

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
                        if !keepsArgumentText, let s = args.string, let parsed = try? JSONValue.parse(s, maxDepth: 64) { args = parsed }
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
}
