import Foundation
import Tiefsee

/// A chat request as every chat API reduces to it — `/v1/chat/completions` directly,
/// `/v1/messages` and `/v1/responses` after translation: OpenAI-shaped messages and tools plus
/// the generation settings, each field checked once by `OpenAIServer.readChat`.
struct ChatRequest {
    var common: OpenAIServer.Common
    var messages: [JSONValue]
    var tools: [JSONValue]? = nil
    /// `tool_choice` naming one tool: the reply is a call of it.
    var forcedTool: String? = nil
    /// From response_format / grammar (a forced tool replaces it).
    var grammar: Grammar? = nil
    /// nil: no log-probabilities; otherwise the number of alternatives per token.
    var topLogprobs: Int? = nil
    /// The `knowledge` field or a MODEL@kb:NAME alias.
    var knowledge: JSONValue? = nil
    /// chat_template_kwargs (e.g. enable_thinking), passed to the template.
    var templateArguments: [(String, JSONValue)] = []
    /// OpenAI `reasoning_effort` (DeepSeek-V4's encoder; templates see it as a variable).
    var reasoningEffort: String? = nil
}

/// What the model was asked and how to read what it writes.
struct ChatPlan {
    let job: GenerationJob
    /// Text the prompt already ends with that belongs to the answer (the opening of a forced
    /// tool call): the tool-call parser reads it before the generated text.
    let prefill: String
    let startInThinking: Bool
    let splitsReasoning: Bool
    /// The tools' names when tools were offered (nil: no tool-call parsing).
    let toolNames: Set<String>?
    let knowledge: KnowledgeContext?
    /// How the model writes tool calls.
    var toolFormat: ToolCallFormat = .hermes
}

/// The model's text split the way replies need it: reasoning, content and tool calls. `whole`
/// reads a finished text; `feed` / `finish` read it as it streams (content passes through at
/// once, a tool-call block is held until it closes).
struct ChatOutput {
    enum Piece { case reasoning(String), content(String) }
    private var splitter: ReasoningSplitter?
    private var tools: ToolCallParser?
    private(set) var content = ""

    init(_ plan: ChatPlan) {
        splitter = plan.splitsReasoning ? ReasoningSplitter(startInThinking: plan.startInThinking) : nil
        tools = plan.toolNames.map { ToolCallParser(toolNames: $0, format: plan.toolFormat) }
        if !plan.prefill.isEmpty { _ = tools?.feed(plan.prefill) }
    }

    /// A finished generation: (reasoning, content, tool calls).
    static func whole(_ text: String, _ plan: ChatPlan) -> (String?, String, [ParsedToolCall]) {
        var reasoning: String? = nil
        var content = text
        if plan.splitsReasoning {
            var sp = ReasoningSplitter(startInThinking: plan.startInThinking)
            _ = sp.feed(text); _ = sp.flush()
            reasoning = sp.reasoning
            content = sp.content
        }
        var calls: [ParsedToolCall] = []
        if let names = plan.toolNames {
            let (found, outside) = ToolCallParser.parse(plan.prefill + content, toolNames: names, format: plan.toolFormat)
            if !found.isEmpty { calls = found; content = outside.trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        return (reasoning, content, calls)
    }

    mutating func feed(_ text: String) -> [Piece] {
        guard splitter != nil else { return contentPieces(text) }
        return route(splitter!.feed(text))
    }

    /// The end of the stream: the last pieces and the tool calls found.
    mutating func finish() -> ([Piece], [ParsedToolCall]) {
        var out: [Piece] = splitter != nil ? route(splitter!.flush()) : []
        guard tools != nil else { return (out, []) }
        let rest = tools!.finish()
        let calls = tools!.calls
        if !rest.isEmpty && !(!calls.isEmpty && rest.allSatisfy(\.isWhitespace)) {
            content += rest
            out.append(.content(rest))
        }
        return (out, calls)
    }

    private mutating func route(_ parts: [ReasoningSplitter.Part]) -> [Piece] {
        var out: [Piece] = []
        for p in parts {
            switch p {
            case .reasoning(let s): out.append(.reasoning(s))
            case .content(let s): out += contentPieces(s)
            }
        }
        return out
    }

    private mutating func contentPieces(_ s: String) -> [Piece] {
        let text = tools != nil ? tools!.feed(s) : s
        if text.isEmpty { return [] }
        content += text
        return [.content(text)]
    }
}

extension OpenAIServer {
    /// Waits for a job's events. A client that goes away cancels the job, which then ends with
    /// a `.cancelled` summary (so this always returns).
    func collect(_ job: GenerationJob, _ req: HTTPRequest) -> (String, [TokenLogprob], JobSummary) {
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

    /// A server-sent-event stream fed by a job: `write` turns each event into bytes to send and
    /// returns true after the last one.
    func eventStream(_ job: GenerationJob, headers: [(String, String)] = OpenAIServer.sseHeaders,
                     start: @escaping () -> String, write: @escaping (JobEvent) -> (String, Bool)) -> HTTPResponse {
        var started = false, ended = false
        let stream = HTTPStream(keepAlive: ": keep-alive\n\n", next: {
            if ended { return nil }
            var out = ""
            if !started { out += start(); started = true }
            for e in job.next(timeout: 0.01) where !ended {
                let (text, last) = write(e)
                out += text
                ended = last
            }
            return Array(out.utf8)
        }, onCancel: { job.cancel() })
        return HTTPResponse(status: 200, headers: headers, body: .stream(stream))
    }
}
