import Foundation
import Tiefsee

/// A function call the model asked for (OpenAI `tool_calls[i]`).
public struct ParsedToolCall: Sendable, Equatable {
    public var name: String
    /// The arguments as a JSON text (OpenAI sends them as a string).
    public var arguments: String
}

/// Finds tool calls in generated text. Hermes/Qwen2.5-style templates make the model write
/// `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`; the text outside the blocks is
/// the message content. Streaming: `feed` passes content through and holds back everything
/// from an opening tag on; `finish` parses what was held. Small models sometimes answer with a
/// bare (or ```json-fenced) `{"name": …, "arguments": …}` naming one of the tools instead: a
/// reply that starts like that is held too, and is a call if the whole reply is one.
public struct ToolCallParser {
    public static let open = "<tool_call>", close = "</tool_call>"
    private var held = ""
    private var capturing = false
    private var pending = ""  // possible start of an opening tag
    private var emittedAny = false
    let toolNames: Set<String>
    public private(set) var calls: [ParsedToolCall] = []
    /// DeepSeek formats are parsed by DeepSeekToolCallParser (DeepSeekToolCalls.swift).
    private var deepseek: DeepSeekToolCallParser?

    public init(toolNames: Set<String> = [], format: ToolCallFormat = .hermes) {
        self.toolNames = toolNames
        deepseek = format == .hermes ? nil : DeepSeekToolCallParser(format: format)
    }

    public mutating func feed(_ text: String) -> String {
        if deepseek != nil { return deepseek!.feed(text) }
        if capturing { held += text; return "" }
        pending += text
        if !emittedAny {
            let t = pending.drop(while: \.isWhitespace)
            if t.isEmpty { return "" }
            if t.hasPrefix("{") || t.hasPrefix("```") || "```".hasPrefix(t) {
                held = pending; pending = ""; capturing = true
                return ""
            }
        }
        if let r = pending.range(of: ToolCallParser.open) {
            let before = String(pending[..<r.lowerBound])
            held = String(pending[r.lowerBound...])
            pending = ""
            capturing = true
            return before
        }
        var keep = 0
        let tag = ToolCallParser.open
        for len in stride(from: min(tag.count - 1, pending.count), to: 0, by: -1) where pending.hasSuffix(String(tag.prefix(len))) {
            keep = len; break
        }
        let end = pending.index(pending.endIndex, offsetBy: -keep)
        let out = String(pending[..<end])
        pending = String(pending[end...])
        if !out.isEmpty { emittedAny = true }
        return out
    }

    /// Ends the stream: returns the remaining content (text after the last block, or a held
    /// block that did not parse) and fills `calls`.
    public mutating func finish() -> String {
        if deepseek != nil {
            let rest = deepseek!.finish()
            calls = deepseek!.calls
            return rest
        }
        var rest = pending
        pending = ""
        guard capturing else { return rest }
        let (found, leftover) = ToolCallParser.parse(held, toolNames: toolNames)
        calls = found
        rest += leftover
        return rest
    }

    /// Parses every block in `text`; returns the calls and the text outside them.
    public static func parse(_ text: String, toolNames: Set<String> = [], format: ToolCallFormat = .hermes) -> ([ParsedToolCall], String) {
        if format != .hermes { return DeepSeekToolCallParser.parse(text, format: format) }
        if !text.contains(open), let call = bareCall(text, toolNames: toolNames) { return ([call], "") }
        var calls = [ParsedToolCall]()
        var outside = ""
        var rest = Substring(text)
        while let r = rest.range(of: open) {
            outside += rest[..<r.lowerBound]
            let after = rest[r.upperBound...]
            let body: Substring
            if let c = after.range(of: close) {
                body = after[..<c.lowerBound]
                rest = after[c.upperBound...]
            } else {
                body = after
                rest = ""
            }
            if let call = parseCall(String(body)) {
                calls.append(call)
            } else {
                outside += open + body
            }
        }
        outside += rest
        return (calls, outside)
    }

    /// The whole text is one JSON object (optionally in a ```json fence) naming a known tool.
    static func bareCall(_ text: String, toolNames: Set<String>) -> ParsedToolCall? {
        var t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.hasPrefix("```") {
            guard let nl = t.firstIndex(of: "\n"), t.hasSuffix("```"), t.count >= 6 else { return nil }
            t = String(t[t.index(after: nl)..<t.index(t.endIndex, offsetBy: -3)])
        }
        guard let call = parseCall(t), toolNames.contains(call.name) else { return nil }
        return call
    }

    static func parseCall(_ body: String) -> ParsedToolCall? {
        let t = body.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = try? JSONValue.parse(t, maxDepth: 64), let name = v["name"]?.string, !name.isEmpty else { return nil }
        let args: String
        switch v["arguments"] ?? v["parameters"] {
        case .some(.string(let s)): args = s
        case .some(let a): args = a.serialized()
        case .none: args = "{}"
        }
        return ParsedToolCall(name: name, arguments: args)
    }
}
