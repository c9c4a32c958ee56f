import Foundation
import Tiefsee

/// How a model writes tool calls, from its chat template or prompt encoder.
public enum ToolCallFormat: String, Sendable {
    /// `<tool_call>{"name": …, "arguments": …}</tool_call>` (Hermes, Qwen2.5/3).
    case hermes
    /// DeepSeek V3 / R1 / V3.1: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>…<｜tool▁call▁end｜>…
    /// <｜tool▁calls▁end｜>`; inside a call V3 and R1 write `function<｜tool▁sep｜>NAME\n```json\n
    /// ARGS\n```` and V3.1 writes `NAME<｜tool▁sep｜>ARGS`.
    case deepseek
    /// DeepSeek V3.2 / V4 DSML: `<｜DSML｜function_calls>` (V3.2) or `<｜DSML｜tool_calls>` (V4)
    /// around `<｜DSML｜invoke name="…">` elements with `<｜DSML｜parameter name="…"
    /// string="true|false">VALUE</｜DSML｜parameter>` children.
    case dsml

    public static func detect(templateSource: String?, encoding: DeepSeekEncoding?) -> ToolCallFormat {
        if encoding != nil { return .dsml }
        guard let src = templateSource else { return .hermes }
        if src.contains("｜DSML｜") { return .dsml }
        if src.contains("<｜tool▁call▁begin｜>") || src.contains("<｜tool▁calls▁begin｜>") { return .deepseek }
        return .hermes
    }
}

extension Engine {
    /// How the model writes tool calls.
    public var toolCallFormat: ToolCallFormat { .detect(templateSource: chatTemplateSource, encoding: deepSeekEncoding) }
}

/// Finds DeepSeek-format tool calls in generated text (whole or streamed). A call block that
/// does not parse completely (truncated, garbled, arguments that are not a JSON object) is
/// given back as plain content, never half-used.
struct DeepSeekToolCallParser {
    let format: ToolCallFormat
    private var pending = ""   // whitespace and a possible start of a block, not yet emitted
    private var held = ""      // from the block opener on
    private var capturing = false
    private var gap = ""       // whitespace before the block: content again if the block fails
    private(set) var calls: [ParsedToolCall] = []

    init(format: ToolCallFormat) { self.format = format }

    static let callsBegin = "<｜tool▁calls▁begin｜>", callsEnd = "<｜tool▁calls▁end｜>"
    static let callBegin = "<｜tool▁call▁begin｜>", callEnd = "<｜tool▁call▁end｜>", sep = "<｜tool▁sep｜>"
    static let dsml = "｜DSML｜"

    /// Text that starts a call block: V3 family calls begin with `<｜tool▁call` (either the
    /// calls or the single-call marker), DSML blocks with `<｜DSML｜`.
    var opener: String { format == .dsml ? "<" + Self.dsml : "<｜tool▁call" }

    mutating func feed(_ text: String) -> String {
        if capturing { held += text; return "" }
        pending += text
        if let r = pending.range(of: opener) {
            let before = String(pending[..<r.lowerBound])
            held = String(pending[r.lowerBound...])
            pending = ""
            capturing = true
            // Whitespace right before a block separates it from the content; it is not content.
            let content = before.trimmingTrailingWhitespace()
            gap = String(before.dropFirst(content.count))
            return content
        }
        // Keep a tail that could still become the opener, and the whitespace before it.
        var keep = 0
        for len in stride(from: min(opener.count - 1, pending.count), to: 0, by: -1) where pending.hasSuffix(String(opener.prefix(len))) {
            keep = len; break
        }
        var end = pending.index(pending.endIndex, offsetBy: -keep)
        while end > pending.startIndex, pending[pending.index(before: end)].isWhitespace { end = pending.index(before: end) }
        let out = String(pending[..<end])
        pending = String(pending[end...])
        return out
    }

    /// Ends the stream: the content still to emit; `calls` holds what was found.
    mutating func finish() -> String {
        let rest = pending
        pending = ""
        guard capturing else { return rest }
        let (found, outside) = Self.parse(held, format: format)
        calls = found
        if found.isEmpty { return rest + gap + outside }
        return outside
    }

    /// Every call in `text` and the content outside the call block. When the block does not
    /// parse, no calls and the whole text as content.
    static func parse(_ text: String, format: ToolCallFormat) -> ([ParsedToolCall], String) {
        let open = format == .dsml ? "<" + dsml : "<｜tool▁call"
        guard let r = text.range(of: open) else { return ([], text) }
        let before = String(text[..<r.lowerBound])
        let block = text[r.lowerBound...]
        let parsed = format == .dsml ? parseDSML(block) : parseV3(block)
        guard let (calls, after) = parsed, !calls.isEmpty else { return ([], text) }
        let content = (before.trimmingTrailingWhitespace() + after).trimmingCharacters(in: .whitespacesAndNewlines)
        return (calls, content)
    }

    // MARK: V3 / R1 / V3.1

    /// Calls between `<｜tool▁call▁begin｜>` and `<｜tool▁call▁end｜>`, optionally inside the
    /// calls markers; returns the calls and any text after the block.
    static func parseV3(_ block: Substring) -> ([ParsedToolCall], String)? {
        var rest = block
        if rest.hasPrefix(callsBegin) { rest = rest.dropFirst(callsBegin.count) }
        var calls: [ParsedToolCall] = []
        while true {
            rest = rest.drop(while: \.isWhitespace)
            if rest.hasPrefix(callsEnd) { rest = rest.dropFirst(callsEnd.count); break }
            if rest.isEmpty { break }  // complete calls, end marker not written
            guard rest.hasPrefix(callBegin), let end = rest.range(of: callEnd) else { return nil }
            guard let call = parseV3Call(rest[rest.index(rest.startIndex, offsetBy: callBegin.count)..<end.lowerBound]) else { return nil }
            calls.append(call)
            rest = rest[end.upperBound...]
        }
        return (calls, String(rest))
    }

    /// `function<｜tool▁sep｜>NAME\n```json\nARGS\n```` (V3, R1) or `NAME<｜tool▁sep｜>ARGS` (V3.1).
    static func parseV3Call(_ body: Substring) -> ParsedToolCall? {
        guard let s = body.range(of: sep) else { return nil }
        let left = body[..<s.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        let right = body[s.upperBound...]
        if let nl = right.firstIndex(of: "\n"), right[right.index(after: nl)...].hasPrefix("```") {
            let name = right[..<nl].trimmingCharacters(in: .whitespacesAndNewlines)
            var code = right[right.index(after: nl)...].dropFirst(3)
            code = code.drop(while: { $0 != "\n" })  // the fence's language tag
            let text = code.trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.hasSuffix("```") else { return nil }
            return call(name: name, arguments: String(text.dropLast(3)))
        }
        return call(name: left, arguments: String(right))
    }

    static func call(name: String, arguments: String) -> ParsedToolCall? {
        let args = arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, !name.contains("<｜"), (try? JSONValue.parse(args, maxDepth: 64))?.object != nil else { return nil }
        return ParsedToolCall(name: name, arguments: args)
    }

    // MARK: DSML (V3.2, V4)

    static func parseDSML(_ block: Substring) -> ([ParsedToolCall], String)? {
        let tag: String
        if block.hasPrefix("<\(dsml)function_calls>") { tag = "function_calls" } else if block.hasPrefix("<\(dsml)tool_calls>") { tag = "tool_calls" } else { return nil }
        var rest = block.dropFirst("<\(dsml)\(tag)>".count)
        var calls: [ParsedToolCall] = []
        while true {
            rest = rest.drop(while: \.isWhitespace)
            if rest.hasPrefix("</\(dsml)\(tag)>") { rest = rest.dropFirst("</\(dsml)\(tag)>".count); break }
            if rest.isEmpty && !calls.isEmpty { break }  // complete invokes, closing tag not written
            guard let (call, after) = parseInvoke(rest) else { return nil }
            calls.append(call)
            rest = after
        }
        return (calls, String(rest))
    }

    /// `<｜DSML｜invoke name="N">` parameters `</｜DSML｜invoke>`. String parameters become JSON
    /// strings; the others are JSON already (as the encoder wrote them) and are kept verbatim.
    static func parseInvoke(_ text: Substring) -> (ParsedToolCall, Substring)? {
        let head = "<\(dsml)invoke name=\""
        guard text.hasPrefix(head), let q = text.dropFirst(head.count).range(of: "\">") else { return nil }
        let name = String(text.dropFirst(head.count)[..<q.lowerBound])
        guard !name.isEmpty, !name.contains("<") else { return nil }
        var rest = text[q.upperBound...]
        var seen = Set<String>()
        var fields: [String] = []
        while true {
            rest = rest.drop(while: \.isWhitespace)
            if rest.hasPrefix("</\(dsml)invoke>") { rest = rest.dropFirst("</\(dsml)invoke>".count); break }
            guard let (key, value, after) = parseParameter(rest), seen.insert(key).inserted else { return nil }
            fields.append(JSONValue.string(key).serialized(asciiOnly: false) + ": " + value)
            rest = after
        }
        return (ParsedToolCall(name: name, arguments: "{" + fields.joined(separator: ", ") + "}"), rest)
    }

    static func parseParameter(_ text: Substring) -> (String, String, Substring)? {
        let head = "<\(dsml)parameter name=\"", close = "</\(dsml)parameter>"
        guard text.hasPrefix(head) else { return nil }
        let afterHead = text.dropFirst(head.count)
        guard let q = afterHead.range(of: "\" string=\"") else { return nil }
        let key = String(afterHead[..<q.lowerBound])
        let afterKey = afterHead[q.upperBound...]
        let isString: Bool
        if afterKey.hasPrefix("true\">") { isString = true } else if afterKey.hasPrefix("false\">") { isString = false } else { return nil }
        let valueStart = afterKey.dropFirst(isString ? 6 : 7)
        guard !key.isEmpty, !key.contains("\""), let c = valueStart.range(of: close) else { return nil }
        let raw = String(valueStart[..<c.lowerBound])
        let value: String
        if isString {
            value = JSONValue.string(raw).serialized(asciiOnly: false)
        } else {
            let t = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            // A non-string value that is not JSON (a model slip) is passed on as a string.
            value = (try? JSONValue.parse(t, maxDepth: 64)) != nil ? t : JSONValue.string(raw).serialized(asciiOnly: false)
        }
        return (key, value, valueStart[c.upperBound...])
    }
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        String(reversed().drop(while: \.isWhitespace).reversed())
    }
}
