import Foundation
import Tiefsee

/// The request fields that shape a chat prompt beyond messages and tools: `chat_template_kwargs`
/// (template variables, e.g. `{"thinking": true}` for DeepSeek-V3.1, `{"enable_thinking":
/// false}` for Qwen3; the DeepSeek V3.2/V4 encoders read `thinking`, `enable_thinking` and
/// `drop_thinking`) and `reasoning_effort`.
struct ChatPromptOptions {
    var kwargs: [String: JSONValue] = [:]
    var reasoningEffort: String? = nil

    static let efforts: Set<String> = ["none", "minimal", "low", "medium", "high", "xhigh", "max"]

    init(kwargs: [String: JSONValue] = [:], reasoningEffort: String? = nil) {
        self.kwargs = kwargs
        self.reasoningEffort = reasoningEffort
    }

    /// The server's defaults under a request's `chat_template_kwargs`; a request's thinking
    /// switch (under either name) replaces both names of the default's. `reasoning_effort` is
    /// also given to templates as a variable (gpt-oss style templates read it).
    init(defaults: [String: JSONValue], request: [(String, JSONValue)], reasoningEffort: String?) {
        kwargs = defaults
        if request.contains(where: { ["thinking", "enable_thinking"].contains($0.0) }) {
            kwargs["thinking"] = nil
            kwargs["enable_thinking"] = nil
        }
        for (k, v) in request { kwargs[k] = v }
        self.reasoningEffort = reasoningEffort
        if let e = reasoningEffort, kwargs["reasoning_effort"] == nil { kwargs["reasoning_effort"] = .string(e) }
    }

    static func readEffort(_ r: RequestReader) throws -> String? {
        guard let e = try r.string("reasoning_effort") else { return nil }
        guard efforts.contains(e) else {
            throw OpenAIError.badParam("reasoning_effort", "'reasoning_effort' must be one of \(efforts.sorted().joined(separator: ", "))")
        }
        return e
    }
}

/// DeepSeek V3 / R1 / V3.1 templates render tool calls and results but not the tool list: the
/// model cards ask for the tools to be described in the system prompt. This writes that
/// description (V3.1 card's layout) for templates that never read `tools`.
enum DeepSeekToolPrompt {
    static func needed(templateSource: String) -> Bool {
        ToolCallFormat.detect(templateSource: templateSource, encoding: nil) == .deepseek && !templateSource.contains("tools")
    }

    /// The messages with the tool description appended to the first system message (or put
    /// in a new one in front).
    static func inject(_ tools: [JSONValue], into messages: [JSONValue], templateSource: String) -> [JSONValue] {
        let text = describe(tools, v31: isV31(templateSource))
        var out = messages
        if let first = out.first, first["role"]?.string == "system" {
            let sys = first["content"]?.string ?? ""
            out[0] = Py.setting(first, "content", .string(sys.isEmpty ? text : sys + "\n\n" + text))
        } else {
            out.insert(.object([("role", .string("system")), ("content", .string(text))]), at: 0)
        }
        return out
    }

    /// Assistant turns with tool calls, as the V3-family templates can render them:
    /// - `content: null` (what OpenAI clients send) becomes "": the templates test
    ///   `content is none`, but transformers 5 drops None-valued keys first, so the test fails
    ///   and `undefined + text` raises; "" renders what the `is none` branch writes;
    /// - with `argumentText`, arguments given as an object (Anthropic/Responses requests) become
    ///   JSON text, as the templates concatenate them.
    static func preparingCalls(_ messages: [JSONValue], argumentText: Bool) -> [JSONValue] {
        messages.map { m in
            guard m["role"]?.string == "assistant", let calls = m["tool_calls"]?.array else { return m }
            var out = m
            if m["content"] == nil || m["content"]!.isNull { out = Py.setting(out, "content", .string("")) }
            if argumentText {
                out = Py.setting(out, "tool_calls", .array(calls.map { c in
                    guard let fn = c["function"], let args = fn["arguments"], args.string == nil else { return c }
                    return Py.setting(c, "function", Py.setting(fn, "arguments", .string(Py.json(args))))
                }))
            }
            return out
        }
    }

    /// V3.1 writes `NAME<｜tool▁sep｜>ARGS`; V3 and R1 `function<｜tool▁sep｜>NAME` + a JSON fence.
    static func isV31(_ source: String) -> Bool { !source.contains("```json") }

    static func describe(_ tools: [JSONValue], v31: Bool) -> String {
        var s = "## Tools\nYou have access to the following tools:\n"
        for t in tools {
            let fn = t["function"] ?? t
            s += "\n### \(fn["name"]?.string ?? "")\nDescription: \(fn["description"]?.string ?? "")\n\nParameters: \(Py.json(fn["parameters"] ?? .object([])))\n"
        }
        let call = v31 ? "<｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments<｜tool▁call▁end｜>"
                       : "<｜tool▁call▁begin｜>function<｜tool▁sep｜>tool_call_name\n```json\ntool_call_arguments\n```<｜tool▁call▁end｜>"
        s += "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n<｜tool▁calls▁begin｜>\(call){{additional_tool_calls}}<｜tool▁calls▁end｜>\n\n"
        s += "Where:\n\n- `tool_call_name` must be an exact match to one of the available tools\n"
        s += "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n"
        s += "- For multiple tool calls, chain them directly without separators or spaces\n"
        return s
    }
}

extension ChatTemplate {
    /// Whether the template concatenates a call's `arguments` as text (DeepSeek V3 / R1 /
    /// V3.1: `+ tool['function']['arguments'] +`), so the OpenAI JSON string must stay a string
    /// rather than be decoded into an object (which `tojson`-style templates want).
    public static func wantsArgumentText(_ source: String) -> Bool {
        source.range(of: #"\['arguments'\]\s*(\+|\}\})"#, options: .regularExpression) != nil
    }
}

extension OpenAIServer {
    /// The start of a call to `name` in the model's format, put after the prompt when
    /// `tool_choice` names a function: the model writes the arguments and the end markers.
    /// The grammar a forced call is generated under: its parameters schema, then the format's
    /// end markers. nil for DSML, whose parameters are not one JSON object.
    func forcedToolCallGrammar(name: String, parameters: JSONValue?, prefixed: Bool) throws -> Grammar? {
        switch toolCallFormat {
        case .hermes:
            return try OpenAIServer.forcedToolGrammar(name: name, parameters: parameters, prefixed: prefixed, closing: "\n" + ToolCallParser.close)
        case .deepseek:
            let end = "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
            let closing = DeepSeekToolPrompt.isV31(engine.chatTemplateSource ?? "") ? end : "\n```" + end
            do {
                return try JSONSchemaGrammar.grammar(for: parameters ?? .object([("type", .string("object"))]), after: closing)
            } catch {
                throw OpenAIError.badParam("tools", "the parameters schema of tool '\(name)' cannot be enforced: \(error)")
            }
        case .dsml:
            return nil
        }
    }

    func forcedToolCallPrefix(_ name: String) -> String {
        switch toolCallFormat {
        case .hermes:
            return "<tool_call>\n{\"name\": \(JSONValue.string(name).serialized()), \"arguments\": "
        case .deepseek:
            let v31 = DeepSeekToolPrompt.isV31(engine.chatTemplateSource ?? "")
            return "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>" + (v31 ? "\(name)<｜tool▁sep｜>" : "function<｜tool▁sep｜>\(name)\n```json\n")
        case .dsml:
            let v32 = engine.deepSeekEncoding == .v32 || (engine.deepSeekEncoding == nil && (engine.chatTemplateSource ?? "").contains("function_calls"))
            let block = v32 ? "function_calls" : "tool_calls"
            return "\n\n<｜DSML｜\(block)>\n<｜DSML｜invoke name=\"\(name)\">\n"
        }
    }

    /// The prompt for a chat request: the DeepSeek V3.2/V4 encoder, else the chat template
    /// (with `chat_template_kwargs` as variables and, for DeepSeek V3-family templates, the
    /// tool description in the system prompt), else a plain transcript.
    func renderChatPrompt(_ messages: [JSONValue], tools: [JSONValue]?, options: ChatPromptOptions) throws -> String {
        if let enc = engine.deepSeekEncoding {
            return try enc.render(messages: messages, tools: tools,
                                  options: DeepSeekEncodingOptions(kwargs: options.kwargs, reasoningEffort: options.reasoningEffort))
        }
        guard let template else { return try engine.renderChat(messages, tools: tools, extra: options.kwargs) }
        var msgs = messages
        if toolCallFormat == .deepseek { msgs = DeepSeekToolPrompt.preparingCalls(msgs, argumentText: keepsArgumentText) }
        if let tools, DeepSeekToolPrompt.needed(templateSource: template.source) {
            msgs = DeepSeekToolPrompt.inject(tools, into: msgs, templateSource: template.source)
        }
        return try template.render(messages: msgs, tools: tools, addGenerationPrompt: true,
                                   bosToken: engine.bosToken, eosToken: engine.eosToken, extra: options.kwargs)
    }
}
