import Foundation

public struct DraftVocabularyMismatch: Error, CustomStringConvertible {
    public let reason: String
    public var description: String {
        "--draft: the draft model's vocabulary differs from the target's (\(reason)); a draft model must use the same tokenizer"
    }
}

/// `--draft MODEL`: a smaller model with the target's vocabulary proposes the next tokens
/// greedily, and the target checks them in one batched forward (Drafting.swift). On a
/// memory-bound CPU the target's step costs about the same for 1 row as for 9, so each
/// accepted token saves most of a target step, paid for by one small-model step per proposal.
public final class DraftModel: @unchecked Sendable {
    public let engine: Engine
    /// Most tokens proposed per check (`--draft-max`).
    public let maxDraft: Int
    /// Proposing stops once the draft's own probability of its next token falls below this:
    /// the draft knows when it is guessing, and a guess the target rejects costs a draft step.
    public let minConfidence: Float
    /// Try prompt lookup first and ask the draft model only when it has nothing (LookupThenModel).
    public let promptLookupFirst: Bool
    /// Draft tokens at or past this id (padding rows of a larger output head) are never proposed.
    let vocabularySize: Int

    /// Checks that `engine` tokenizes exactly as `target` does: the same token strings, in order.
    public init(engine: Engine, target: Engine, maxDraft: Int = 8, minConfidence: Float = 0.3, promptLookupFirst: Bool = true) throws {
        try DraftModel.checkVocabulary(draft: engine.tokenizer.tokens, target: target.tokenizer.tokens)
        guard engine.model.makeCache(capacity: 1).canRewind else {
            throw ModelLoadError.unsupported("--draft: the draft model's cache cannot rewind, so it cannot take back rejected proposals")
        }
        self.engine = engine
        self.maxDraft = max(1, maxDraft)
        self.minConfidence = minConfidence
        self.promptLookupFirst = promptLookupFirst
        vocabularySize = min(target.tokenizer.vocabSize, target.model.embedding.shape[0], engine.model.outputHead.outFeatures)
    }

    /// The same token strings under the same ids: a draft token id means what it means to the target.
    static func checkVocabulary(draft d: [String], target t: [String]) throws {
        guard d.count == t.count else { throw DraftVocabularyMismatch(reason: "\(d.count) tokens vs \(t.count)") }
        if let i = d.indices.first(where: { d[$0] != t[$0] }) {
            throw DraftVocabularyMismatch(reason: "token \(i) is '\(d[i])' in the draft, '\(t[i])' in the target")
        }
    }

    /// A drafter over `state` (one per conversation or server slot, so the draft model's
    /// cache keeps what it has already read).
    public func drafter(_ state: DraftState) -> any Drafter {
        let m = ModelDrafter(model: self, state: state)
        return promptLookupFirst ? LookupThenModel(model: m) : m
    }

    public func makeState(contextSize: Int) -> DraftState {
        DraftState(cache: engine.model.makeCache(capacity: contextSize))
    }
}

/// The draft model's KV cache and the tokens it holds. It is brought in line with the target's
/// history at each proposal (the common prefix is kept, the rest recomputed), so rejected
/// proposals need no bookkeeping of their own.
public final class DraftState {
    let cache: KVCache
    var tokens: [Int] = []
    init(cache: KVCache) { self.cache = cache }
}

/// Greedy proposals from a draft model, with the proposal length adapting to what the
/// target accepts: longer after a fully accepted draft, halved after a rejected one.
public struct ModelDrafter: Drafter {
    let model: DraftModel
    let state: DraftState
    private var length: Int
    private var counters = DraftCounters()
    public var drafted: Int { counters.drafted }
    public var accepted: Int { counters.accepted }
    public var verifySteps: Int { counters.verifySteps }

    init(model: DraftModel, state: DraftState) {
        self.model = model; self.state = state
        length = model.maxDraft
    }

    public mutating func draft(_ history: [Int], limit: Int) throws -> [Int] {
        let cap = min(limit, length)
        guard cap > 0, history.count + cap <= state.cache.capacity else { return [] }
        let vocab = model.engine.model.outputHead.outFeatures
        var logits = try catchUp(history)
        var out: [Int] = []
        while true {
            let (token, p) = ModelDrafter.top(logits.p, vocab)
            guard token < model.vocabularySize else { break }
            out.append(token)
            // The first proposal is always checked (a two-row check costs little more than
            // the one-row step it replaces); later ones only while the draft is confident.
            if out.count == cap || p < model.minConfidence { break }
            logits = try model.engine.model.forward([token], cache: state.cache)
            state.tokens.append(token)
        }
        return out
    }

    public mutating func record(drafted d: Int, accepted a: Int) {
        counters.add(drafted: d, accepted: a)
        if a == d { length = min(length + 1, model.maxDraft) } else if a == 0 { length = max(1, length / 2) }
    }

    /// Feeds the draft model what `history` holds beyond its cache's common prefix (at least
    /// the last token, for its logits).
    private func catchUp(_ history: [Int]) throws -> FloatBuffer {
        var common = 0
        let n = min(state.tokens.count, history.count - 1)
        while common < n && state.tokens[common] == history[common] { common += 1 }
        common = state.cache.reusablePrefix(common)
        state.cache.truncate(to: common)
        state.tokens = Array(history[..<common])
        let logits = try model.engine.model.forward(Array(history[common...]), cache: state.cache)
        state.tokens = history
        return logits
    }

    /// The argmax and its softmax probability.
    static func top(_ row: UnsafePointer<Float>, _ n: Int) -> (Int, Float) {
        let best = Sampler.argmax(row, n)
        let m = row[best]
        var sum: Float = 0
        for i in 0..<n { sum += expf(row[i] - m) }
        return (best, 1 / sum)
    }
}
