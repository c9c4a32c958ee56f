import Foundation
import Tiefsee

/// `POST /v1/responses`, OpenAI's Responses API, stateless: nothing is stored, so
/// `previous_response_id` is refused and clients send the whole conversation as `input` items
/// (messages, function_call, function_call_output, reasoning). The request becomes a chat
/// request for the shared planner; the reply lists output items (reasoning, message,
/// function_call), whole or as the `response.*` event stream.
extension OpenAIServer {
    static let responsesFields: Set<String> = [
        "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "stream", "tools", "tool_choice",
        "text", "reasoning", "store", "metadata", "parallel_tool_calls", "truncation", "user", "include", "previous_response_id",
        "service_tier", "stream_options", "prompt_cache_key", "safety_identifier", "background", "max_tool_calls", "top_logprobs",
    ]

    func responses(_ req: HTTPRequest) throws -> HTTPResponse {
        let r = try RequestReader(req.body, allowed: OpenAIServer.responsesFields)
        if r.present("previous_response_id") != nil {
            throw OpenAIError.badParam("previous_response_id", "this server is stateless: send the conversation in 'input' instead of previous_response_id")
        }
        if try r.bool("background") == true { throw OpenAIError.badParam("background", "background responses are not supported") }
        let q = try readChat(try RequestReader(json: try OpenAIServer.chatBody(fromResponses: r), allowed: OpenAIServer.chatFields))
        let echo = ResponseEcho(r, model: modelID)
        switch try planChat(q, access: OpenAIServer.knowledgeAccess(req, config)) {
        case .direct(let text, _):
            return .json(200, echo.response(status: "completed", output: [ResponseEcho.message(text, id: OpenAIServer.newID("msg_"))],
                                            usage: OpenAIServer.responseUsage(0, 0), incomplete: nil))
        case .generate(let plan):
            return q.common.stream ? streamedResponse(plan, echo) : wholeResponse(plan, echo, req)
        }
    }

    // MARK: request translation

    static func chatBody(fromResponses r: RequestReader) throws -> JSONValue {
        var out: [(String, JSONValue)] = []
        for k in ["model", "stream", "temperature", "top_p", "parallel_tool_calls", "user", "metadata"] { if let v = r.present(k) { out.append((k, v)) } }
        if let m = r.present("max_output_tokens") { out.append(("max_tokens", m)) }
        var messages: [JSONValue] = []
        if let ins = r.present("instructions") {
            guard let s = ins.string else { throw OpenAIError.badParam("instructions", "instructions must be a string") }
            messages.append(.object([("role", .string("system")), ("content", .string(s))]))
        }
        guard let input = r.present("input") else { throw OpenAIError.badParam("input", "'input' is required") }
        if let s = input.string { messages.append(.object([("role", .string("user")), ("content", .string(s))])) }
        else if let items = input.array { messages += try chatMessages(fromItems: items) }
        else { throw OpenAIError.badParam("input", "'input' must be a string or a list of items") }
        out.append(("messages", .array(messages)))
        if let tools = r.present("tools") {
            guard let arr = tools.array else { throw OpenAIError.badParam("tools", "'tools' must be an array") }
            out.append(("tools", .array(try arr.enumerated().map { i, t in
                guard t["type"]?.string == "function", let name = t["name"]?.string else {
                    throw OpenAIError.badParam("tools[\(i)]", "only function tools ({\"type\": \"function\", \"name\": …}) are supported")
                }
                var fn: [(String, JSONValue)] = [("name", .string(name))]
                if let d = t["description"] { fn.append(("description", d)) }
                if let p = t["parameters"] { fn.append(("parameters", p)) }
                return .object([("type", .string("function")), ("function", .object(fn))])
            })))
        }
        if let tc = r.present("tool_choice") {
            if tc.string != nil { out.append(("tool_choice", tc)) }
            else if tc["type"]?.string == "function", let name = tc["name"]?.string {
                out.append(("tool_choice", .object([("type", .string("function")), ("function", .object([("name", .string(name))]))])))
            } else { throw OpenAIError.badParam("tool_choice", "tool_choice must be auto, none, required or {\"type\": \"function\", \"name\": …}") }
        }
        if let format = r.present("text")?["format"] {
            switch format["type"]?.string {
            case "text"?: break
            case "json_object"?: out.append(("response_format", .object([("type", .string("json_object"))])))
            case "json_schema"?:
                guard let schema = format["schema"] else { throw OpenAIError.badParam("text.format", "json_schema format needs a schema") }
                out.append(("response_format", .object([("type", .string("json_schema")),
                                                        ("json_schema", .object([("name", format["name"] ?? .string("output")), ("schema", schema)]))])))
            default: throw OpenAIError.badParam("text.format", "text.format.type must be text, json_object or json_schema")
            }
        }
        if let effort = r.present("reasoning")?["effort"]?.string {
            let on = JSONValue.bool(effort != "none" && effort != "minimal")
            out.append(("chat_template_kwargs", .object([("reasoning_effort", .string(effort)), ("enable_thinking", on), ("thinking", on)])))
        }
        return .object(out)
    }

    /// Input items as chat messages: consecutive function calls join one assistant message, and
    /// a reasoning item goes with the assistant message after it.
    static func chatMessages(fromItems items: [JSONValue]) throws -> [JSONValue] {
        var out: [JSONValue] = []
        var reasoning: String? = nil
        func appendCall(_ call: JSONValue) {
            if case .object(var last)? = out.last, last.first(where: { $0.0 == "role" })?.1.string == "assistant" {
                if let i = last.firstIndex(where: { $0.0 == "tool_calls" }) { last[i].1 = .array((last[i].1.array ?? []) + [call]) }
                else { last.append(("tool_calls", .array([call]))) }
                out[out.count - 1] = .object(last)
            } else {
                var m: [(String, JSONValue)] = [("role", .string("assistant")), ("content", .null), ("tool_calls", .array([call]))]
                if let r = reasoning { m.append(("reasoning_content", .string(r))); reasoning = nil }
                out.append(.object(m))
            }
        }
        for (i, item) in items.enumerated() {
            let at = "input[\(i)]"
            switch item["type"]?.string ?? (item["role"] != nil ? "message" : nil) {
            case "message"?:
                guard let role = item["role"]?.string, ["user", "system", "developer", "assistant"].contains(role) else {
                    throw OpenAIError.badParam("\(at).role", "\(at).role must be user, system, developer or assistant")
                }
                var m: [(String, JSONValue)] = [("role", .string(role)), ("content", .string(try itemText(item["content"], at)))]
                if role == "assistant", let r = reasoning { m.append(("reasoning_content", .string(r))); reasoning = nil }
                out.append(.object(m))
            case "function_call"?:
                guard let id = item["call_id"]?.string, let name = item["name"]?.string else { throw OpenAIError.badParam(at, "\(at) needs call_id and name") }
                appendCall(.object([("id", .string(id)), ("type", .string("function")),
                                    ("function", .object([("name", .string(name)), ("arguments", item["arguments"] ?? .string("{}"))]))]))
            case "function_call_output"?:
                guard let id = item["call_id"]?.string else { throw OpenAIError.badParam(at, "\(at).call_id is required") }
                let output = item["output"]?.string ?? item["output"]?.serialized() ?? ""
                out.append(.object([("role", .string("tool")), ("tool_call_id", .string(id)), ("content", .string(output))]))
            case "reasoning"?:
                let parts = (item["content"]?.array ?? []) + (item["summary"]?.array ?? [])
                reasoning = parts.compactMap { $0["text"]?.string }.joined(separator: "\n")
            case let t:
                throw OpenAIError.badParam(at, "\(at): input item type '\(t ?? "none")' is not supported")
            }
        }
        return out
    }

    static func itemText(_ content: JSONValue?, _ at: String) throws -> String {
        guard let content else { throw OpenAIError.badParam("\(at).content", "\(at).content is required") }
        if let s = content.string { return s }
        guard let parts = content.array else { throw OpenAIError.badParam("\(at).content", "\(at).content must be a string or a list of parts") }
        return try parts.map { p in
            guard ["input_text", "output_text", "text"].contains(p["type"]?.string ?? ""), let t = p["text"]?.string else {
                throw OpenAIError.badParam("\(at).content", "only text parts are supported (got \(p["type"]?.string ?? "none"))")
            }
            return t
        }.joined()
    }

    // MARK: replies

    static func responseUsage(_ input: Int, _ output: Int) -> JSONValue {
        .object([("input_tokens", .int(input)), ("input_tokens_details", .object([("cached_tokens", .int(0))])),
                 ("output_tokens", .int(output)), ("output_tokens_details", .object([("reasoning_tokens", .int(0))])),
                 ("total_tokens", .int(input + output))])
    }

    func outputItems(reasoning: String?, content: String, calls: [ParsedToolCall]) -> [JSONValue] {
        var items: [JSONValue] = []
        if let r = reasoning, !r.isEmpty { items.append(ResponseEcho.reasoning(r, id: OpenAIServer.newID("rs_"))) }
        if !content.isEmpty || calls.isEmpty { items.append(ResponseEcho.message(content, id: OpenAIServer.newID("msg_"))) }
        items += calls.map { ResponseEcho.functionCall($0, id: OpenAIServer.newID("fc_"), callID: OpenAIServer.newID("call_")) }
        return items
    }

    func wholeResponse(_ plan: ChatPlan, _ echo: ResponseEcho, _ req: HTTPRequest) -> HTTPResponse {
        let (text, _, sum) = collect(plan.job, req)
        if let e = sum.error { return OpenAIError(500, "generation failed: \(e)", type: "server_error").response }
        let (reasoning, content, calls) = ChatOutput.whole(text, plan)
        let incomplete = sum.finishReason == .length && calls.isEmpty
        return .json(200, echo.response(status: incomplete ? "incomplete" : "completed",
                                        output: outputItems(reasoning: reasoning, content: content, calls: calls),
                                        usage: OpenAIServer.responseUsage(sum.promptTokens, sum.completionTokens), incomplete: incomplete))
    }

    func streamedResponse(_ plan: ChatPlan, _ echo: ResponseEcho) -> HTTPResponse {
        var output = ChatOutput(plan)
        let w = ResponseEventWriter(echo)
        return eventStream(plan.job, start: w.start) { e in
            switch e {
            case .text(let s, _): return (w.emit(output.feed(s)), false)
            case .done(let sum):
                let (pieces, calls) = output.finish()
                return (w.finish(pieces, calls, sum), true)
            }
        }
    }
}

/// The Responses API's event sequence for one streamed answer: output items (reasoning, message,
/// function calls) are opened, filled by deltas and closed in order, every event numbered.
final class ResponseEventWriter {
    let echo: ResponseEcho
    private var seq = 0
    private var items: [JSONValue] = []
    private var open: (kind: String, id: String, text: String)? = nil

    init(_ echo: ResponseEcho) { self.echo = echo }

    func event(_ type: String, _ fields: [(String, JSONValue)]) -> String {
        defer { seq += 1 }
        return OpenAIServer.event(type, .object([("type", .string(type)), ("sequence_number", .int(seq))] + fields))
    }

    func start() -> String {
        let r = echo.response(status: "in_progress", output: [], usage: .null, incomplete: nil)
        return event("response.created", [("response", r)]) + event("response.in_progress", [("response", r)])
    }

    /// The done events of the open item (reasoning or message), if any.
    func closeItem() -> String {
        guard let o = open else { return "" }
        open = nil
        let idx: JSONValue = .int(items.count)
        let item = o.kind == "reasoning" ? ResponseEcho.reasoning(o.text, id: o.id) : ResponseEcho.message(o.text, id: o.id)
        var out = ""
        if o.kind == "reasoning" {
            out += event("response.reasoning_text.done", [("item_id", .string(o.id)), ("output_index", idx), ("content_index", .int(0)), ("text", .string(o.text))])
        } else {
            out += event("response.output_text.done", [("item_id", .string(o.id)), ("output_index", idx), ("content_index", .int(0)),
                                                      ("text", .string(o.text)), ("logprobs", .array([]))])
            out += event("response.content_part.done", [("item_id", .string(o.id)), ("output_index", idx), ("content_index", .int(0)),
                                                        ("part", ResponseEcho.textPart(o.text))])
        }
        out += event("response.output_item.done", [("output_index", idx), ("item", item)])
        items.append(item)
        return out
    }

    /// A delta of `kind`; an item of another kind is closed and a new one opened first.
    func piece(_ kind: String, _ s: String) -> String {
        var out = ""
        if open?.kind != kind {
            out += closeItem()
            let id = OpenAIServer.newID(kind == "reasoning" ? "rs_" : "msg_")
            open = (kind, id, "")
            let idx: JSONValue = .int(items.count)
            let empty = kind == "reasoning" ? ResponseEcho.reasoning(nil, id: id) : ResponseEcho.message(nil, id: id)
            out += event("response.output_item.added", [("output_index", idx), ("item", empty)])
            if kind == "message" {
                out += event("response.content_part.added", [("item_id", .string(id)), ("output_index", idx), ("content_index", .int(0)),
                                                             ("part", ResponseEcho.textPart(""))])
            }
        }
        open!.text += s
        let name = kind == "reasoning" ? "response.reasoning_text.delta" : "response.output_text.delta"
        var fields: [(String, JSONValue)] = [("item_id", .string(open!.id)), ("output_index", .int(items.count)),
                                             ("content_index", .int(0)), ("delta", .string(s))]
        if kind == "message" { fields.append(("logprobs", .array([]))) }
        return out + event(name, fields)
    }

    func emit(_ pieces: [ChatOutput.Piece]) -> String {
        pieces.map { p in
            switch p {
            case .reasoning(let s): return piece("reasoning", s)
            case .content(let s): return piece("message", s)
            }
        }.joined()
    }

    /// A function call item, added, its arguments in one delta, done.
    func functionCall(_ call: ParsedToolCall) -> String {
        let id = OpenAIServer.newID("fc_"), callID = OpenAIServer.newID("call_")
        let idx: JSONValue = .int(items.count)
        let added = ResponseEcho.functionCall(ParsedToolCall(name: call.name, arguments: ""), id: id, callID: callID, status: "in_progress")
        var out = event("response.output_item.added", [("output_index", idx), ("item", added)])
        out += event("response.function_call_arguments.delta", [("item_id", .string(id)), ("output_index", idx), ("delta", .string(call.arguments))])
        out += event("response.function_call_arguments.done", [("item_id", .string(id)), ("output_index", idx), ("arguments", .string(call.arguments))])
        let item = ResponseEcho.functionCall(call, id: id, callID: callID)
        out += event("response.output_item.done", [("output_index", idx), ("item", item)])
        items.append(item)
        return out
    }

    /// The last pieces, the calls, and response.completed (or .incomplete at the length limit).
    func finish(_ pieces: [ChatOutput.Piece], _ calls: [ParsedToolCall], _ sum: JobSummary) -> String {
        var out = emit(pieces)
        if calls.isEmpty && open == nil && items.isEmpty { out += piece("message", "") }
        out += closeItem()
        for call in calls { out += functionCall(call) }
        let incomplete = sum.finishReason == .length && calls.isEmpty
        let final = echo.response(status: incomplete ? "incomplete" : "completed", output: items,
                                  usage: OpenAIServer.responseUsage(sum.promptTokens, sum.completionTokens), incomplete: incomplete)
        return out + event(incomplete ? "response.incomplete" : "response.completed", [("response", final)])
    }
}

/// The request fields a Response object repeats, and its output item shapes.
struct ResponseEcho {
    let id = OpenAIServer.newID("resp_")
    let created = Int(Date().timeIntervalSince1970)
    let model: String
    let fields: [(String, JSONValue)]

    init(_ r: RequestReader, model: String) {
        self.model = model
        fields = [
            ("instructions", r.present("instructions") ?? .null), ("max_output_tokens", r.present("max_output_tokens") ?? .null),
            ("parallel_tool_calls", r.present("parallel_tool_calls") ?? .bool(true)), ("previous_response_id", .null),
            ("reasoning", .object([("effort", r.present("reasoning")?["effort"] ?? .null), ("summary", .null)])),
            ("store", .bool(false)), ("temperature", r.present("temperature") ?? .double(1)),
            ("text", r.present("text") ?? .object([("format", .object([("type", .string("text"))]))])),
            ("tool_choice", r.present("tool_choice") ?? .string("auto")), ("tools", r.present("tools") ?? .array([])),
            ("top_p", r.present("top_p") ?? .double(1)), ("truncation", .string("disabled")),
            ("metadata", r.present("metadata") ?? .object([])), ("user", r.present("user") ?? .null),
        ]
    }

    func response(status: String, output: [JSONValue], usage: JSONValue, incomplete: Bool?) -> JSONValue {
        .object([("id", .string(id)), ("object", .string("response")), ("created_at", .int(created)), ("status", .string(status)),
                 ("error", .null),
                 ("incomplete_details", incomplete == true ? .object([("reason", .string("max_output_tokens"))]) : .null),
                 ("model", .string(model)), ("output", .array(output)), ("usage", usage)] + fields)
    }

    static func textPart(_ text: String) -> JSONValue {
        .object([("type", .string("output_text")), ("text", .string(text)), ("annotations", .array([])), ("logprobs", .array([]))])
    }

    /// A message item; nil text: the item as first announced in a stream (no content yet).
    static func message(_ text: String?, id: String) -> JSONValue {
        .object([("type", .string("message")), ("id", .string(id)), ("status", .string(text == nil ? "in_progress" : "completed")),
                 ("role", .string("assistant")), ("content", .array(text.map { [textPart($0)] } ?? []))])
    }

    static func reasoning(_ text: String?, id: String) -> JSONValue {
        .object([("type", .string("reasoning")), ("id", .string(id)), ("summary", .array([])),
                 ("content", .array(text.map { [.object([("type", .string("reasoning_text")), ("text", .string($0))])] } ?? []))])
    }

    static func functionCall(_ call: ParsedToolCall, id: String, callID: String, status: String = "completed") -> JSONValue {
        .object([("type", .string("function_call")), ("id", .string(id)), ("call_id", .string(callID)), ("name", .string(call.name)),
                 ("arguments", .string(call.arguments)), ("status", .string(status))])
    }
}
