import Foundation

public enum FinishReason: String, Sendable {
    /// An end-of-generation token or a stop string.
    case stop
    /// max_tokens reached, or the context is full.
    case length
    /// The caller asked to stop (Ctrl-C, a client that went away).
    case cancelled
}

public struct GenerationOptions: Sendable {
    public var maxTokens: Int = 512
    public var sampling = SamplingParameters()
    public var stop: [String] = []
    /// Keep going past end-of-generation tokens (benchmarks).
    public var ignoreEOS = false
    /// The prompt ends inside an R1-style thought (templates that end with `<think>\n`).
    public var startsInThinking = false
    /// Only text of this grammar may be generated (GBNF, JSON schemas, forced tool calls);
    /// generation ends when the grammar's sentence is complete.
    public var grammar: Grammar? = nil
    /// Speculation for greedy decoding: prompt lookup (PromptLookup.swift), or the session's
    /// draft model (DraftModel.swift) or MTP layer (MTPDrafting.swift) when it has one. The
    /// same text, fewer weight reads.
    public var promptLookup = true
    public init() {}
}

public struct GenerationResult: Sendable {
    public init() {}
    public var text = ""
    /// `text` split at `<think>…</think>`: the model's reasoning and its answer.
    public var reasoning = ""
    public var content = ""
    public var tokens: [Int] = []
    public var finishReason: FinishReason = .stop
    public var promptTokens = 0
    /// Prompt tokens actually computed (the rest came from the cache).
    public var promptTokensEvaluated = 0
    public var promptSeconds = 0.0
    public var generationSeconds = 0.0
    /// Under a grammar: steps whose first draw the grammar refused (the allowed set was computed).
    public var grammarMaskedSteps = 0
    /// Speculation: tokens proposed, accepted, and the batched steps that checked them.
    public var draftedTokens = 0
    public var acceptedDraftTokens = 0
    public var verifySteps = 0
    public var generatedTokensPerSecond: Double { generationSeconds > 0 ? Double(max(tokens.count - 1, 0)) / generationSeconds : 0 }
    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokensEvaluated) / promptSeconds : 0 }
}

public struct PromptTooLongError: Error, CustomStringConvertible {
    public let promptTokens: Int
    public let contextSize: Int
    public var description: String {
        "prompt is too long: \(promptTokens) tokens, but the context holds \(contextSize) (use --ctx to enlarge it, or shorten the prompt)"
    }
}

/// One conversation's state: a KV cache and the tokens it holds. A new prompt that starts with
/// what the cache already holds only computes the new part (chat turns, shared system prompts).
public final class Session {
    public let engine: Engine
    public let cache: KVCache
    public private(set) var tokens: [Int] = []

    /// `--draft`: proposes tokens for greedy requests instead of prompt lookup.
    public let draftModel: DraftModel?
    /// The draft model's cache, kept across turns like the target's.
    private var draftState: DraftState?

    /// `--mtp`: the model's multi-token-prediction layer proposes instead (MTPDrafting.swift).
    public let mtpDraft: MTPDraft?
    private var mtpState: MTPState?

    public init(engine: Engine, contextSize: Int, draft: DraftModel? = nil, mtp: MTPDraft? = nil) {
        self.engine = engine
        draftModel = draft
        mtpDraft = mtp
        cache = engine.model.makeCache(capacity: contextSize)
        // Attached from the start: the MTP rows need the hidden state of every position computed.
        mtpState = mtp?.makeState(for: cache)
    }

    /// Greedy decoding without a grammar can take drafts (cut back when rejected: only caches
    /// that can rewind take them). Sampled requests are not drafted: their text would need
    /// speculative sampling's acceptance rule, which is not implemented.
    private func makeDrafter(_ options: GenerationOptions, constrained: Bool) -> (any Drafter)? {
        guard options.promptLookup, options.sampling.temperature <= 0, !constrained, cache.takesDrafts else { return nil }
        if let m = mtpDraft, let s = mtpState { return m.drafter(s) }
        guard let d = draftModel else { return PromptLookup() }
        if draftState == nil { draftState = d.makeState(contextSize: contextSize) }
        return d.drafter(draftState!)
    }

    public var contextSize: Int { cache.capacity }

    public func reset() { cache.truncate(to: 0); tokens = [] }

    /// Generates after `prompt`. `onText` receives streamed text (never half a UTF-8 character,
    /// never part of a stop string) and returns false to stop.
    public func generate(prompt: [Int], options: GenerationOptions,
                         onText: (String) -> Bool = { _ in true }) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw PromptTooLongError(promptTokens: 0, contextSize: contextSize) }
        guard prompt.count < contextSize else { throw PromptTooLongError(promptTokens: prompt.count, contextSize: contextSize) }
        let model = engine.model
        let vocab = model.outputHead.outFeatures
        var result = GenerationResult()
        result.promptTokens = prompt.count
        // Reuse the cached prefix; always recompute at least the last prompt token for its logits.
        var common = 0
        while common < min(tokens.count, prompt.count) && tokens[common] == prompt[common] { common += 1 }
        if let s = mtpState {
            let drafting = options.promptLookup && options.sampling.temperature <= 0 && options.grammar == nil && cache.takesDrafts
            s.prepare(drafting: drafting)
            if drafting { common = s.reusableMainPrefix(prompt, common) }
        }
        common = cache.reusablePrefix(min(common, prompt.count - 1))
        cache.truncate(to: common)
        tokens = Array(prompt[..<common])
        let t0 = Date()
        var logits = try model.forward(Array(prompt[common...]), cache: cache)
        tokens = prompt
        result.promptTokensEvaluated = prompt.count - common
        result.promptSeconds = Date().timeIntervalSince(t0)

        var sampler = Sampler(options.sampling)
        var detok = StreamingDetokenizer(tokenizer: engine.tokenizer, skipSpecial: true)
        var stops = StopStringMatcher(options.stop)
        let eog = engine.tokenizer.eogIDs
        let t1 = Date()
        result.finishReason = .length
        var history = prompt
        let constraint = options.grammar.map { GrammarConstraint(grammar: $0, trie: TokenTrie.shared(for: engine.tokenizer, outputs: vocab)) }
        var lookup = makeDrafter(options, constrained: constraint != nil)

        /// Picks the token after `row`; nil when it ends generation.
        func pick(_ row: UnsafeMutablePointer<Float>) -> Int? {
            let next: Int
            if let constraint {
                guard let t = constraint.sample(&sampler, row, count: vocab, history: history) else { result.finishReason = .stop; return nil }
                next = t
                constraint.accept(next)
            } else {
                next = sampler.sample(row, count: vocab, history: history)
            }
            if eog.contains(next) && !options.ignoreEOS { result.finishReason = .stop; return nil }
            return next
        }
        /// Takes `next` into the answer; false when generation ends with it.
        func take(_ next: Int) -> Bool {
            result.tokens.append(next)
            history.append(next)
            let piece = stops.feed(detok.push(next))
            if !piece.isEmpty {
                result.text += piece
                if !onText(piece) { result.finishReason = .cancelled; return false }
            }
            if stops.stopped || constraint?.mustEnd == true { result.finishReason = .stop; return false }
            return result.tokens.count < options.maxTokens
        }

        var row = logits.p
        var known: Int? = nil   // a token already taken whose row is not computed yet
        loop: while result.tokens.count < options.maxTokens {
            let next: Int
            if let k = known { next = k; known = nil } else {
                guard let n = pick(row), take(n) else { break }
                next = n
            }
            // A full context ends generation with `length`; it never aborts.
            if cache.length >= cache.capacity { result.finishReason = .length; break }
            // (a draft is at most what the cache can take back after the step: 1 + draft tokens)
            let room = min(options.maxTokens - result.tokens.count, cache.capacity - cache.length - 1, cache.takeBackLimit - 1)
            let draft = try lookup?.draft(history, limit: room) ?? []
            let base = cache.length
            logits = try model.forward([next] + draft, cache: cache, lastK: 1 + draft.count)
            tokens.append(next)
            row = logits.p
            guard !draft.isEmpty else { continue }
            // Keep the draft's prefix that greedy decoding itself picks, row by row; the first
            // token it disagrees on is the model's own, taken next without another step.
            var good = 0
            var ended = false
            while good < draft.count {
                guard let t = pick(logits.p + good * vocab) else { ended = true; break }
                if t != draft[good] {
                    if take(t) { known = t } else { ended = true }
                    break
                }
                good += 1
                if !take(t) { ended = true; break }
            }
            lookup!.record(drafted: draft.count, accepted: good)
            cache.truncate(to: base + 1 + good)
            tokens += draft[..<good]
            if ended { break }
            row = logits.p + good * vocab
        }
        if result.finishReason != .cancelled {
            let tail = stops.feed(detok.finish()) + stops.flush()
            if !tail.isEmpty { result.text += tail; _ = onText(tail) }
        }
        result.generationSeconds = Date().timeIntervalSince(t1)
        result.grammarMaskedSteps = constraint?.masked ?? 0
        if let lookup { result.draftedTokens = lookup.drafted; result.acceptedDraftTokens = lookup.accepted; result.verifySteps = lookup.verifySteps }
        var split = ReasoningSplitter(startInThinking: options.startsInThinking)
        _ = split.feed(result.text)
        _ = split.flush()
        result.reasoning = split.reasoning
        result.content = split.content
        return result
    }
}
