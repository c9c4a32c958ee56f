import Foundation
import TiefseeFormats

/// DeepSeek-V4's prompt format (the model repository's `encoding/encoding_dsv4.py`,
/// `encode_messages`), byte for byte. Differences from V3.2 worth knowing:
/// - tool results are not a role of their own: consecutive `tool` messages merge into a user
///   turn as `<tool_result>…</tool_result>` blocks (ordered like the calls they answer);
/// - tool calls are `<｜DSML｜tool_calls>` blocks;
/// - the `<｜Assistant｜><think>` / `</think>` switch is written after the last message of a
///   user turn, and with tools present earlier reasoning is kept (it is dropped otherwise);
/// - `latest_reminder` messages, quick-instruction `task`s and `reasoning_effort: "max"`.
struct DeepSeekV4Encoder {
    let thinking: Bool
    let dropThinking: Bool
    let reasoningEffort: String?

    static let latestReminder = "<｜latest_reminder｜>"
    static let taskTokens: [String: String] = [
        "action": "<｜action｜>", "query": "<｜query｜>", "authority": "<｜authority｜>",
        "domain": "<｜domain｜>", "title": "<｜title｜>", "read_url": "<｜read_url｜>",
    ]

    static let effortMax = """
        Reasoning Effort: Absolute maximum with no shortcuts permitted.
        You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.
        Explicitly write out your entire deliberation process, documenting every intermediate step, considered alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.


        """

    static let toolsTemplate = """
        ## Tools

        You have access to a set of tools to help answer the user's question. You can invoke tools by writing a "<{dsml}tool_calls>" block like the following:

        <{dsml}tool_calls>
        <{dsml}invoke name="$TOOL_NAME">
        <{dsml}parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</{dsml}parameter>
        ...
        </{dsml}invoke>
        <{dsml}invoke name="$TOOL_NAME2">
        ...
        </{dsml}invoke>
        </{dsml}tool_calls>

        String parameters should be specified as is and set `string="true"`. For all other types (numbers, booleans, arrays, objects), pass the value in JSON format and set `string="false"`.

        If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside <think>...</think> BEFORE any tool calls or final response.

        Otherwise, output directly after </think> with tool calls or final response.

        ### Available Tool Schemas

        {schemas}

        You MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.

        """

    static func tools(_ tools: JSONValue?) throws -> String {
        toolsTemplate.replacingOccurrences(of: "{dsml}", with: DSToken.dsml)
            .replacingOccurrences(of: "{schemas}", with: try DSML.toolSchemas(tools))
    }

    func encode(_ messages: [JSONValue]) throws -> String {
        guard reasoningEffort == nil || ["max", "high"].contains(reasoningEffort!) else {
            throw DeepSeekEncodingError("Invalid reasoning effort: \(reasoningEffort!)")
        }
        var full = Self.sortToolResultsByCallOrder(Self.mergeToolMessages(messages))
        // With tools in the conversation, earlier reasoning stays (the agent loop needs it).
        let drop = dropThinking && !full.contains(where: { Py.truthy($0["tools"]) })
        if thinking && drop { full = Self.dropThinkingMessages(full) }
        var prompt = DSToken.bos
        for index in full.indices { prompt += try render(index, full, drop: drop) }
        return prompt
    }

    // MARK: preprocessing

    /// `merge_tool_messages`: every user message becomes `content_blocks` (a text block), and
    /// tool results join the user turn before them as `tool_result` blocks (or start one).
    static func mergeToolMessages(_ messages: [JSONValue]) -> [JSONValue] {
        var merged: [JSONValue] = []
        func lastIsOpenUser(_ needNoTask: Bool) -> Bool {
            guard let last = merged.last, last["role"]?.string == "user", last["content_blocks"] != nil else { return false }
            return !needNoTask || Py.isNone(last["task"])
        }
        func appendBlock(_ block: JSONValue) {
            let last = merged.removeLast()
            merged.append(Py.setting(last, "content_blocks", .array((last["content_blocks"]?.array ?? []) + [block])))
        }
        for msg in messages {
            switch msg["role"]?.string {
            case "tool":
                let block: JSONValue = .object([("type", .string("tool_result")), ("tool_use_id", msg["tool_call_id"] ?? .string("")),
                                                ("content", msg["content"] ?? .string(""))])
                if lastIsOpenUser(false) { appendBlock(block) } else {
                    merged.append(.object([("role", .string("user")), ("content_blocks", .array([block]))]))
                }
            case "user":
                let text = msg["content"] ?? .string("")
                let block: JSONValue = .object([("type", .string("text")), ("text", text)])
                if lastIsOpenUser(true) { appendBlock(block); continue }
                var m: [(String, JSONValue)] = [("role", .string("user")), ("content", text), ("content_blocks", .array([block]))]
                for key in ["task", "wo_eos", "mask"] { if let v = msg[key] { m.append((key, v)) } }
                merged.append(.object(m))
            default:
                merged.append(msg)
            }
        }
        return merged
    }

    /// `sort_tool_results_by_call_order`: tool results in a user turn are put in the order of
    /// the calls (by id) of the latest assistant turn with calls; unknown ids count as 0.
    static func sortToolResultsByCallOrder(_ messages: [JSONValue]) -> [JSONValue] {
        var order: [String: Int] = [:]
        return messages.map { msg in
            let role = msg["role"]?.string
            if role == "assistant", Py.truthy(msg["tool_calls"]) {
                order = [:]
                for (i, tc) in (msg["tool_calls"]?.array ?? []).enumerated() {
                    let id = Py.truthy(tc["id"]) ? tc["id"] : tc["function"]?["id"]
                    if Py.truthy(id), let s = id?.string { order[s] = i }
                }
                return msg
            }
            guard role == "user", let blocks = msg["content_blocks"]?.array, !blocks.isEmpty else { return msg }
            let results = blocks.filter { $0["type"]?.string == "tool_result" }
            guard results.count > 1, !order.isEmpty else { return msg }
            let key = { (b: JSONValue) in order[b["tool_use_id"]?.string ?? ""] ?? 0 }
            // Stable, like Python's sorted().
            var sorted = results.enumerated().sorted { (key($0.1), $0.0) < (key($1.1), $1.0) }.map(\.1).makeIterator()
            return Py.setting(msg, "content_blocks", .array(blocks.map { $0["type"]?.string == "tool_result" ? sorted.next()! : $0 }))
        }
    }

    /// `_drop_thinking_messages`: before the last user message, assistant turns lose their
    /// reasoning and messages of roles outside user/system/tool/latest_reminder are left out.
    static func dropThinkingMessages(_ messages: [JSONValue]) -> [JSONValue] {
        let last = DSML.lastUserIndex(messages)
        let keep: Set<String> = ["user", "system", "tool", "latest_reminder", "direct_search_results"]
        var out: [JSONValue] = []
        for (i, m) in messages.enumerated() {
            let role = m["role"]?.string ?? ""
            if keep.contains(role) || i >= last { out.append(m) } else if role == "assistant" { out.append(Py.removing(m, ["reasoning_content"])) }
        }
        return out
    }

    // MARK: rendering

    func render(_ index: Int, _ messages: [JSONValue], drop: Bool) throws -> String {
        let msg = messages[index]
        let lastUser = DSML.lastUserIndex(messages)
        var prompt = index == 0 && thinking && reasoningEffort == "max" ? Self.effortMax : ""
        switch msg["role"]?.string {
        case "system":
            prompt += Py.orEmpty(msg["content"]) + (try toolsAndFormat(msg))
        case "developer":
            guard Py.truthy(msg["content"]), let text = msg["content"]?.string else {
                throw DeepSeekEncodingError("Invalid message for role `developer`: content must be a non-empty string")
            }
            prompt += DSToken.user + text + (try toolsAndFormat(msg))
        case "user":
            prompt += DSToken.user + (try userText(msg))
        case "latest_reminder":
            prompt += Self.latestReminder + Py.str(msg["content"])
        case "tool":
            throw DeepSeekEncodingError("deepseek_v4 merges tool messages into user turns")
        case "assistant":
            prompt += try assistantText(index, messages, lastUser: lastUser, drop: drop)
        default:
            throw DeepSeekEncodingError("Unknown role: \(Py.str(msg["role"]))")
        }
        return prompt + (try transition(index, messages, lastUser: lastUser, drop: drop))
    }

    private func toolsAndFormat(_ msg: JSONValue) throws -> String {
        var s = ""
        if Py.truthy(msg["tools"]) { s += "\n\n" + (try Self.tools(msg["tools"])) }
        if Py.truthy(msg["response_format"]) { s += "\n\n" + DSToken.responseFormat + Py.json(msg["response_format"]!) }
        return s
    }

    /// A user turn's blocks joined by blank lines: text as is, tool results wrapped.
    private func userText(_ msg: JSONValue) throws -> String {
        guard let blocks = msg["content_blocks"]?.array, !blocks.isEmpty else { return Py.orEmpty(msg["content"]) }
        return try blocks.map { b -> String in
            switch b["type"]?.string {
            case "text":
                guard let s = (b["text"] ?? .string("")).string else { throw DeepSeekEncodingError("user content must be a string") }
                return s
            case "tool_result":
                var c = b["content"] ?? .string("")
                if let parts = c.array {
                    c = .string(parts.map { p in p["type"]?.string == "text" ? Py.str(p["text"] ?? .string("")) : "[Unsupported \(Py.str(p["type"]))]" }
                        .joined(separator: "\n\n"))
                }
                return "<tool_result>" + Py.str(c) + "</tool_result>"
            default:
                return "[Unsupported \(Py.str(b["type"]))]"
            }
        }.joined(separator: "\n\n")
    }

    private func assistantText(_ index: Int, _ messages: [JSONValue], lastUser: Int, drop: Bool) throws -> String {
        let msg = messages[index]
        let calls = Py.truthy(msg["tool_calls"]) ? try DSML.block(msg["tool_calls"], name: "tool_calls", lenient: true) : ""
        // The answer to a quick-instruction task has no reasoning part.
        let afterTask = index >= 1 && !Py.isNone(messages[index - 1]["task"])
        var thinkingPart = ""
        if thinking && !afterTask && (!drop || index > lastUser) {
            thinkingPart = Py.orEmpty(msg["reasoning_content"]) + DSToken.thinkEnd
        }
        let eos = Py.truthy(msg["wo_eos"]) ? "" : DSToken.eos
        return thinkingPart + Py.orEmpty(msg["content"]) + calls + eos
    }

    /// What follows a message when the next one is the assistant's (or there is none): the
    /// task token, or `<｜Assistant｜>` and the thinking switch after a user turn.
    private func transition(_ index: Int, _ messages: [JSONValue], lastUser: Int, drop: Bool) throws -> String {
        if index + 1 < messages.count, !["assistant", "latest_reminder"].contains(messages[index + 1]["role"]?.string ?? "") { return "" }
        let msg = messages[index]
        if let task = msg["task"], !task.isNull {
            guard let name = task.string, let token = Self.taskTokens[name] else { throw DeepSeekEncodingError("Invalid task: '\(Py.str(task))'") }
            if name != "action" { return token }
            return DSToken.assistant + (thinking ? DSToken.thinkStart : DSToken.thinkEnd) + token
        }
        guard ["user", "developer"].contains(msg["role"]?.string ?? "") else { return "" }
        let open = thinking && (!drop || index >= lastUser)
        return DSToken.assistant + (open ? DSToken.thinkStart : DSToken.thinkEnd)
    }
}
