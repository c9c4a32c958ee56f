import Foundation
import TiefseeFormats

/// A parsed Jinja template (the subset of Jinja2 that chat templates use, with the
/// environment transformers uses: trim_blocks, lstrip_blocks, sandboxed, loop controls).
public struct JinjaTemplate: Sendable {
    let body: [Stmt]

    public init(source: String) throws {
        body = try withLargeStack {
            var lexer = TemplateLexer(source)
            var parser = TemplateParser(tokens: try lexer.tokenize())
            return try parser.parseTemplate()
        }
    }

    /// Renders with the given variables (JSON values become Python-like dicts/lists/strings).
    public func render(_ variables: [String: JSONValue]) throws -> String {
        try render(values: variables.mapValues { Value(json: $0) })
    }

    func render(values: [String: Value]) throws -> String {
        let body = self.body
        return try withLargeStack { try Interpreter(globals: values).render(body) }
    }
}

private final class StackJob<T>: @unchecked Sendable {
    let work: () throws -> T
    var result: Result<T, Error>? = nil
    let done = DispatchSemaphore(value: 0)
    init(_ work: @escaping () throws -> T) { self.work = work }
}

/// Parsing and rendering recurse with the template's nesting (bounded: 100 nested
/// expressions/statements, 64 macro calls). Unoptimised builds use large frames, so the work
/// runs on a thread with a 16 MiB stack rather than on a caller's possibly small one.
func withLargeStack<T>(_ work: @escaping () throws -> T) throws -> T {
    let job = StackJob(work)
    let thread = Thread {
        job.result = Result { try job.work() }
        job.done.signal()
    }
    thread.stackSize = 16 << 20
    thread.start()
    job.done.wait()
    return try job.result!.get()
}

/// A model's chat template, rendered the way transformers' `apply_chat_template(...,
/// tokenize=False)` renders it.
public struct ChatTemplate: Sendable {
    public let source: String
    let template: JinjaTemplate

    public init(source: String) throws {
        self.source = source
        template = try JinjaTemplate(source: source)
    }

    /// Renders a conversation. The context mirrors transformers 5.x: `messages` (keys whose
    /// value is null dropped; `reasoning_content`/`thinking`/`reasoning` aliased to each
    /// other), `tools` (none when nil), `documents` (none), `add_generation_prompt`,
    /// `bos_token`, `eos_token`, then `extra` (which overrides any of those, like kwargs do).
    public func render(
        messages: [JSONValue], tools: [JSONValue]? = nil, addGenerationPrompt: Bool,
        bosToken: String = "", eosToken: String = "", extra: [String: JSONValue] = [:]
    ) throws -> String {
        var ctx: [String: Value] = [:]
        ctx["bos_token"] = .string(bosToken)
        ctx["eos_token"] = .string(eosToken)
        for (k, v) in extra { ctx[k] = Value(json: v) }
        ctx["messages"] = .list(messages.map { ChatTemplate.normalize(message: $0) })
        ctx["tools"] = tools.map { Value(json: .array($0)) } ?? Value.none
        ctx["documents"] = Value.none
        ctx["add_generation_prompt"] = .bool(addGenerationPrompt)
        return try template.render(values: ctx)
    }

    static let reasoningFields = ["reasoning_content", "thinking", "reasoning"]

    /// transformers' `_normalize_chat_messages` + `_alias_reasoning_fields`.
    static func normalize(message: JSONValue) -> Value {
        guard case .object(let kv) = message else { return Value(json: message) }
        var pairs = kv.filter { !$0.1.isNull }
        if let r = reasoningFields.lazy.compactMap({ f in pairs.first(where: { $0.0 == f })?.1 }).first {
            // {"thinking": r, **message, "reasoning_content": r}
            var out: [(String, JSONValue)] = [("thinking", r)]
            for (k, v) in pairs {
                if let i = out.firstIndex(where: { $0.0 == k }) { out[i].1 = v } else { out.append((k, v)) }
            }
            if let i = out.firstIndex(where: { $0.0 == "reasoning_content" }) { out[i].1 = r } else { out.append(("reasoning_content", r)) }
            pairs = out
        }
        return Value(json: .object(pairs))
    }

    /// True when the rendered prompt already begins with the BOS token (e.g. DeepSeek and
    /// Llama templates write `bos_token` themselves), so the tokenizer must not add another.
    public static func rendersBOS(_ prompt: String, bosToken: String) -> Bool {
        !bosToken.isEmpty && prompt.utf8.starts(with: bosToken.utf8)
    }

    /// Whether the template text refers to `bos_token` at all.
    public var mentionsBOSToken: Bool { source.contains("bos_token") }
}

extension ChatTemplate {
    /// The template stored in a GGUF file's `tokenizer.chat_template`, or nil when it has none.
    public init?(gguf: GGUFFile) throws {
        guard let src = gguf["tokenizer.chat_template"]?.string else { return nil }
        try self.init(source: src)
    }

    /// The BOS/EOS token strings named by a GGUF file's tokenizer metadata ("" when absent),
    /// i.e. the `bos_token`/`eos_token` a template should see.
    public static func specialTokens(gguf: GGUFFile) -> (bos: String, eos: String) {
        guard let tokens = gguf["tokenizer.ggml.tokens"]?.array else { return ("", "") }
        func token(_ key: String) -> String {
            guard let id = gguf[key]?.int, tokens.indices.contains(id) else { return "" }
            return tokens[id].string ?? ""
        }
        return (token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"))
    }
}
