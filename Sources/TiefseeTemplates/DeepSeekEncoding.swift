import Foundation
import TiefseeFormats

/// DeepSeek-V3.2 and V4 ship no Jinja chat template: their prompts come from a Python encoder
/// in the model repository (`encoding/encoding_dsv32.py`, `encoding/encoding_dsv4.py`). The two
/// Swift encoders (DeepSeekV32Encoding.swift, DeepSeekV4Encoding.swift) reproduce those
/// encoders byte for byte; this file holds what they share (Python value semantics, DSML
/// arguments) and the request-level glue (tools, thinking switch, reasoning effort).
public enum DeepSeekEncoding: String, Sendable, CaseIterable {
    case v32 = "deepseek-v3.2"
    case v4 = "deepseek-v4"

    /// The encoder a model needs, from its architecture: GGUF `general.architecture`
    /// (`deepseek32`, `deepseek4`), or config.json `architectures[0]` / `model_type`
    /// (`DeepseekV32ForCausalLM`, `deepseek_v32`, ...). nil: the model uses its chat template.
    public static func forArchitecture(_ name: String) -> DeepSeekEncoding? {
        switch name.lowercased() {
        case "deepseek32", "deepseek_v32", "deepseekv32forcausallm": return .v32
        case "deepseek4", "deepseek_v4", "deepseekv4forcausallm": return .v4
        default: return nil
        }
    }

    /// Renders an OpenAI-style conversation. `tools` go to the first system message (one is
    /// put in front when there is none), as the encoders expect them on a message.
    public func render(messages: [JSONValue], tools: [JSONValue]? = nil, options: DeepSeekEncodingOptions) throws -> String {
        var msgs = messages
        if let tools, !tools.isEmpty {
            if let first = msgs.first, first["role"]?.string == "system" {
                msgs[0] = Py.setting(first, "tools", .array(tools))
            } else {
                msgs.insert(.object([("role", .string("system")), ("tools", .array(tools))]), at: 0)
            }
        }
        switch self {
        case .v32: return try DeepSeekV32Encoder(thinking: options.thinking, dropThinking: options.dropThinking).encode(msgs)
        case .v4:
            return try DeepSeekV4Encoder(thinking: options.thinking, dropThinking: options.dropThinking,
                                         reasoningEffort: options.reasoningEffort).encode(msgs)
        }
    }
}

/// The switches of the DeepSeek encoders, read from a request's `chat_template_kwargs`
/// (`thinking` / `enable_thinking`, `drop_thinking`) and `reasoning_effort`.
public struct DeepSeekEncodingOptions: Sendable, Equatable {
    /// thinking_mode "thinking" (the prompt ends in `<think>`) or "chat" (`</think>`).
    public var thinking = false
    /// Leave out the reasoning of assistant turns before the last user message.
    public var dropThinking = true
    /// V4 only: nil, "high" or "max" (the only value that changes the prompt).
    public var reasoningEffort: String? = nil

    public init(thinking: Bool = false, dropThinking: Bool = true, reasoningEffort: String? = nil) {
        self.thinking = thinking
        self.dropThinking = dropThinking
        self.reasoningEffort = reasoningEffort
    }

    /// `thinking` or `enable_thinking` (either true turns thinking on), `drop_thinking`; an
    /// OpenAI `reasoning_effort`: "none" turns thinking off, "max"/"xhigh" is "max", any
    /// other level "high".
    public init(kwargs: [String: JSONValue], reasoningEffort effort: String? = nil) {
        thinking = (kwargs["thinking"].map { Py.truthy($0) } ?? false) || (kwargs["enable_thinking"].map { Py.truthy($0) } ?? false)
        dropThinking = kwargs["drop_thinking"].map { Py.truthy($0) } ?? true
        switch effort {
        case nil: reasoningEffort = nil
        case "none": reasoningEffort = nil; thinking = false
        case "max", "xhigh": reasoningEffort = "max"
        default: reasoningEffort = "high"
        }
    }
}

/// A conversation the encoder cannot render (the Python encoder raises for it too).
public struct DeepSeekEncodingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The special tokens and DSML markup both encoders write.
enum DSToken {
    static let bos = "<｜begin▁of▁sentence｜>"
    static let eos = "<｜end▁of▁sentence｜>"
    static let user = "<｜User｜>"
    static let assistant = "<｜Assistant｜>"
    static let thinkStart = "<think>"
    static let thinkEnd = "</think>"
    static let dsml = "｜DSML｜"
    static let responseFormat = "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
}

/// The encoders are written against Python dicts; these helpers give JSON values the same
/// meaning (`d.get(k)` is nil for a missing key, `.null` for None; `str(x)`; truthiness;
/// `json.dumps(x, ensure_ascii=False)`).
package enum Py {
    static func str(_ v: JSONValue?) -> String { Value(json: v ?? .null).str }
    static func truthy(_ v: JSONValue?) -> Bool { v.map { Value(json: $0).truthy } ?? false }
    package static func json(_ v: JSONValue) -> String { v.serialized(asciiOnly: false, separators: (", ", ": ")) }
    /// `x or ""` formatted with str().
    static func orEmpty(_ v: JSONValue?) -> String { truthy(v) ? str(v) : "" }
    /// `d.get(k) is None`.
    static func isNone(_ v: JSONValue?) -> Bool { v == nil || v!.isNull }

    package static func setting(_ dict: JSONValue, _ key: String, _ value: JSONValue) -> JSONValue {
        var pairs = dict.object ?? []
        if let i = pairs.firstIndex(where: { $0.0 == key }) { pairs[i].1 = value } else { pairs.append((key, value)) }
        return .object(pairs)
    }

    static func removing(_ dict: JSONValue, _ keys: Set<String>) -> JSONValue {
        .object((dict.object ?? []).filter { !keys.contains($0.0) })
    }

    /// `len(x)` for the values the encoders take lengths of.
    static func count(_ v: JSONValue?) -> Int {
        switch v {
        case .some(.array(let a)): return a.count
        case .some(.object(let o)): return o.count
        case .some(.string(let s)): return s.unicodeScalars.count
        default: return 0
        }
    }
}

/// Pieces the V3.2 and V4 encoders render identically.
enum DSML {
    /// `[tool["function"] for tool in tools]`, each as one JSON line.
    static func toolSchemas(_ tools: JSONValue?) throws -> String {
        guard let list = tools?.array else { throw DeepSeekEncodingError("tools must be a list") }
        return try list.map { t -> String in
            guard let fn = t["function"] else { throw DeepSeekEncodingError("KeyError: 'function' in tool \(Py.json(t))") }
            return Py.json(fn)
        }.joined(separator: "\n")
    }

    /// One `(name, arguments)` per OpenAI tool call (`tool_calls_from_openai_format`).
    static func calls(_ toolCalls: JSONValue?) throws -> [(name: JSONValue?, arguments: JSONValue?)] {
        guard let list = toolCalls?.array else { throw DeepSeekEncodingError("tool_calls must be a list") }
        return try list.map { tc in
            guard let fn = tc["function"], fn.object != nil else { throw DeepSeekEncodingError("KeyError: 'function' in tool call") }
            guard let name = fn["name"] else { throw DeepSeekEncodingError("KeyError: 'name' in tool call") }
            guard let args = fn["arguments"] else { throw DeepSeekEncodingError("KeyError: 'arguments' in tool call") }
            return (name, args)
        }
    }

    /// The arguments object of a call: the OpenAI JSON text decoded (`json.loads`), or an
    /// object as given (the Python encoders want the text; an object is taken to mean the same
    /// call). Text that does not decode raises in V3.2 and becomes `{"arguments": text}` in V4
    /// (`lenient`); JSON that is not an object raises in both.
    static func argumentPairs(_ raw: JSONValue?, lenient: Bool) throws -> [(String, JSONValue)] {
        if case .some(.object(let o)) = raw { return o }
        if case .some(.string(let s)) = raw, let v = try? JSONValue.parse(s, maxDepth: 256) {
            guard let o = v.object else { throw DeepSeekEncodingError("tool call arguments are not a JSON object: \(s)") }
            return o
        }
        guard lenient else { throw DeepSeekEncodingError("tool call arguments are not valid JSON: \(Py.str(raw))") }
        return [("arguments", raw ?? .null)]
    }

    /// `<｜DSML｜parameter name="k" string="true|false">v</｜DSML｜parameter>` lines: strings as
    /// they are, everything else as JSON.
    static func parameters(_ pairs: [(String, JSONValue)]) -> String {
        pairs.map { k, v in
            let isString = v.string != nil
            let text = v.string ?? Py.json(v)
            return "<\(DSToken.dsml)parameter name=\"\(k)\" string=\"\(isString ? "true" : "false")\">\(text)</\(DSToken.dsml)parameter>"
        }.joined(separator: "\n")
    }

    /// `<｜DSML｜BLOCK>\n<invoke…>…\n</｜DSML｜BLOCK>` after two newlines, as both encoders
    /// append to an assistant turn.
    static func block(_ toolCalls: JSONValue?, name block: String, lenient: Bool) throws -> String {
        let invokes = try calls(toolCalls).map { c in
            "<\(DSToken.dsml)invoke name=\"\(Py.str(c.name))\">\n\(parameters(try argumentPairs(c.arguments, lenient: lenient)))\n</\(DSToken.dsml)invoke>"
        }
        return "\n\n<\(DSToken.dsml)\(block)>\n" + invokes.joined(separator: "\n") + "\n</\(DSToken.dsml)\(block)>"
    }

    /// Index of the last user or developer message, -1 when there is none.
    static func lastUserIndex(_ messages: [JSONValue]) -> Int {
        messages.lastIndex(where: { ["user", "developer"].contains($0["role"]?.string ?? "") }) ?? -1
    }
}
