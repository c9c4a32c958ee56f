import Foundation
import TiefseeFormats

/// DeepSeek-V3.2's prompt format (the model repository's `encoding/encoding_dsv32.py`,
/// `encode_messages`), byte for byte:
///
///     BOS system [+ "## Tools" block] <｜User｜>u<｜Assistant｜></think>answer<｜end▁of▁sentence｜>
///     <｜User｜>u2<｜Assistant｜><think>          (thinking mode, last user turn)
///
/// Tool calls are DSML `<｜DSML｜function_calls>` blocks; tool results follow the assistant
/// turn inside `<function_results><result>…</result></function_results>`. Reasoning is
/// written only for assistant turns after the last user message (the turn being continued).
struct DeepSeekV32Encoder {
    let thinking: Bool
    let dropThinking: Bool

    static let toolsTemplate = """
        ## Tools

        You have access to a set of tools you can use to answer the user's question.
        You can invoke functions by writing a "<{dsml}function_calls>" block like the following as part of your reply to the user:
        <{dsml}function_calls>
        <{dsml}invoke name="$FUNCTION_NAME">
        <{dsml}parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</{dsml}parameter>
        ...
        </{dsml}invoke>
        <{dsml}invoke name="$FUNCTION_NAME2">
        ...
        </{dsml}invoke>
        </{dsml}function_calls>

        String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. The "string" attribute should be set to "true" for string type parameters and "false" for other types (numbers, booleans, arrays, objects).

        If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:

        <{dsml}function_calls>
        ...
        </{dsml}function_calls>

        <function_results>
        ...
        </function_results>

        <think>...thinking about results</think>

        Here are the functions available in JSONSchema format:
        <functions>
        {schemas}
        </functions>

        """

    static func tools(_ tools: JSONValue?) throws -> String {
        toolsTemplate.replacingOccurrences(of: "{dsml}", with: DSToken.dsml)
            .replacingOccurrences(of: "{schemas}", with: try DSML.toolSchemas(tools))
    }

    func encode(_ messages: [JSONValue]) throws -> String {
        var full = messages
        if thinking && dropThinking { full = Self.dropThinkingMessages(full) }
        var prompt = DSToken.bos
        for index in 0..<messages.count {
            guard index < full.count else { throw DeepSeekEncodingError("message index \(index) out of range") }
            prompt += try render(index, full)
        }
        return prompt
    }

    /// `drop_thinking_messages`: before the last user message, assistant turns lose their
    /// reasoning and messages of other roles than user/system/tool/assistant are left out.
    static func dropThinkingMessages(_ messages: [JSONValue]) -> [JSONValue] {
        let last = DSML.lastUserIndex(messages)
        var out: [JSONValue] = []
        for (i, m) in messages.enumerated() {
            let role = m["role"]?.string ?? ""
            if ["user", "system", "tool"].contains(role) || i >= last {
                out.append(m)
            } else if role == "assistant" {
                out.append(Py.removing(m, ["reasoning_content"]))
            }
        }
        return out
    }

    /// After a user/developer turn: `<think>` opens the reply being generated, `</think>`
    /// closes the (empty) reasoning of an earlier turn or of chat mode.
    private func thinkingSwitch(_ open: Bool) -> String { open && thinking ? DSToken.thinkStart : DSToken.thinkEnd }

    func render(_ index: Int, _ messages: [JSONValue]) throws -> String {
        let msg = messages[index]
        let lastUser = DSML.lastUserIndex(messages)
        let role = msg["role"]
        let content = msg["content"]
        switch role?.string {
        case "system":
            var p = Py.orEmpty(content)
            if Py.truthy(msg["tools"]) { p += "\n\n" + (try Self.tools(msg["tools"])) }
            if Py.truthy(msg["response_format"]) { p += "\n\n" + DSToken.responseFormat + Py.json(msg["response_format"]!) }
            return p
        case "developer":
            guard Py.truthy(content) else { throw DeepSeekEncodingError("Invalid message for role `developer`: no content") }
            var body = ""
            if Py.truthy(msg["tools"]) { body += "\n\n" + (try Self.tools(msg["tools"])) }
            if Py.truthy(msg["response_format"]) { body += "\n\n" + DSToken.responseFormat + Py.json(msg["response_format"]!) }
            body += "\n\n# The user's message is: " + Py.str(content)
            return DSToken.user + body + DSToken.assistant + thinkingSwitch(index == lastUser)
        case "user":
            return DSToken.user + Py.str(content) + DSToken.assistant + thinkingSwitch(index == lastUser)
        case "tool":
            return try renderToolResult(index, messages, lastUser: lastUser)
        case "assistant":
            return try renderAssistant(index, msg, lastUser: lastUser)
        default:
            throw DeepSeekEncodingError("Unknown role: \(Py.str(role))")
        }
    }

    /// A tool result: the n-th result after an assistant turn answers its n-th call; the first
    /// opens `<function_results>`, the last closes it and switches thinking.
    private func renderToolResult(_ index: Int, _ messages: [JSONValue], lastUser: Int) throws -> String {
        // Python indexing: messages[-1] is the last message (the encoder relies on it when a
        // tool result comes first).
        func at(_ i: Int) -> JSONValue { messages[i >= 0 ? i : messages.count + i] }
        var prev = index - 1
        var assistant = at(prev)
        while prev >= 0 && assistant["role"]?.string == "tool" {
            prev -= 1
            assistant = at(prev)
        }
        guard index == 0 || (prev >= 0 && assistant["role"]?.string == "assistant") else {
            throw DeepSeekEncodingError("Invalid messages at \(index): a tool result must follow an assistant turn")
        }
        let order = index - prev
        let calls = assistant["tool_calls"]
        guard Py.truthy(calls), Py.count(calls) >= order else { throw DeepSeekEncodingError("No tool calls but found tool output") }
        var p = order == 1 ? "\n\n<function_results>" : ""
        p += "\n<result>" + Py.str(messages[index]["content"]) + "</result>"
        if order == Py.count(calls) {
            p += "\n</function_results>\n\n" + thinkingSwitch(index >= lastUser)
        }
        return p
    }

    private func renderAssistant(_ index: Int, _ msg: JSONValue, lastUser: Int) throws -> String {
        let hasCalls = Py.truthy(msg["tool_calls"])
        let calls = hasCalls ? try DSML.block(msg["tool_calls"], name: "function_calls", lenient: false) : ""
        let reasoning = msg["reasoning_content"]
        var thinkingPart = ""
        if thinking && index > lastUser {
            guard Py.truthy(reasoning) || hasCalls else {
                throw DeepSeekEncodingError("ThinkingMode: thinking, invalid message without reasoning_content/tool_calls after last user message")
            }
            thinkingPart = Py.orEmpty(reasoning) + DSToken.thinkEnd
        }
        return thinkingPart + Py.orEmpty(msg["content"]) + calls + DSToken.eos
    }
}
