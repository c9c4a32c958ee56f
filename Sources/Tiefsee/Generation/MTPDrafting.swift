import Foundation

/// `--mtp`: the model's own multi-token-prediction layer (Models/MultiTokenPrediction.swift)
/// drafts. After the model has computed position i and picked t_{i+1}, the MTP block reads h_i
/// and t_{i+1} and proposes t_{i+2}; the model checks it in the step it takes anyway (the batched
/// verification of Drafting.swift), so the text is plain greedy decoding's. A proposal costs one
/// block and one head, not a second model, and needs no second tokenizer or cache of 61 layers.
public final class MTPDraft: @unchecked Sendable {
    public let model: TransformerModel
    public let mtp: any MTPLayer
    /// Most tokens proposed per check: 1 is what the layer was trained for (t_{i+2}); more chain
    /// the block on its own output in place of the model's hidden state (as vLLM does), each
    /// only while the previous proposal's probability is at least `minConfidence`.
    public let maxDraft: Int
    public let minConfidence: Float
    /// Try prompt lookup first and ask the MTP layer only when it has nothing (LookupThenModel):
    /// a quoted passage drafts many tokens per check, the MTP layer one.
    public let promptLookupFirst: Bool

    public init(model: TransformerModel, maxDraft: Int = 1, minConfidence: Float = 0.3, promptLookupFirst: Bool = true) throws {
        guard let mtp = model.mtp else {
            throw ModelLoadError.unsupported("--mtp: the model has no multi-token-prediction layer"
                                             + (model.mtpUnavailable.map { " (\($0))" } ?? " (num_nextn_predict_layers is 0)"))
        }
        guard model.makeCache(capacity: 1).takesDrafts else {
            throw ModelLoadError.unsupported("--mtp: the model's cache cannot take back positions, so it cannot undo rejected proposals")
        }
        self.model = model
        self.mtp = mtp
        self.maxDraft = max(1, maxDraft)
        self.minConfidence = minConfidence
        self.promptLookupFirst = promptLookupFirst
    }

    /// The MTP state of one conversation or server slot, attached to its main cache (whose
    /// forward passes then record their hidden states for the MTP rows).
    public func makeState(for cache: KVCache) -> MTPState {
        let tap = HiddenStateTap(width: mtp.hiddenWidth)
        cache.hiddenTap = tap
        return MTPState(cache: mtp.makeCache(capacity: cache.capacity), tap: tap)
    }

    public func drafter(_ state: MTPState) -> any Drafter {
        let m = MTPDrafter(draft: self, state: state)
        return promptLookupFirst ? LookupThenModel(model: m) : m
    }
}

/// The MTP block's cache and the history its rows were computed from: row i holds h_i and
/// t_{i+1}, so `tokens` (history[0...rows]) tells which rows a new history can keep. The main
/// model's hidden rows wait in `tap` until a proposal consumes them.
public final class MTPState {
    let cache: KVCache
    let tap: HiddenStateTap
    var tokens: [Int] = []
    init(cache: KVCache, tap: HiddenStateTap) { self.cache = cache; self.tap = tap }

    /// MTP rows still valid for `history`: row i needs history[0...i+1] unchanged (and a cache
    /// that can be cut back to them: DeepSeek-V4's takes back only its newest positions, else
    /// the rows are recomputed from the start).
    func validRows(_ history: [Int]) -> Int {
        var common = 0
        let n = min(tokens.count, history.count)
        while common < n && tokens[common] == history[common] { common += 1 }
        let v = max(0, min(tokens.count - 1, common - 1))
        return cache.canTruncate(to: v) ? v : 0
    }

    /// The main cache's rows were replaced from elsewhere (a --cache-ram restore): the hidden
    /// states waiting in the tap belong to what it held before.
    public func forgetHiddenStates() { tap.drop(below: Int.max) }

    /// Before a request: whether it will be drafted. One that will not (sampled, constrained)
    /// records no hidden states, and the ones waiting are dropped (the positions it computes
    /// would make them stale); a later drafted request recomputes from where the MTP rows end
    /// (`reusableMainPrefix`).
    public func prepare(drafting: Bool) {
        if !drafting && tap.recording { forgetHiddenStates() }
        tap.recording = drafting
    }

    /// How much of the main cache a new prompt may reuse: the MTP rows it needs from `validRows`
    /// on read the hidden states of those positions, and the ones already consumed (a prompt
    /// that rewrites part of the last answer) or never seen (a cache restored by --cache-ram)
    /// are gone, so the model recomputes from the first position missing one.
    public func reusableMainPrefix(_ prompt: [Int], _ common: Int) -> Int {
        var p = validRows(prompt)
        while p < common && tap.row(p) != nil { p += 1 }
        return min(common, p)
    }
}

/// Proposals from the MTP layer for one history at a time (see MTPDraft).
public struct MTPDrafter: Drafter {
    let draft: MTPDraft
    let state: MTPState
    private var counters = DraftCounters()
    public var drafted: Int { counters.drafted }
    public var accepted: Int { counters.accepted }
    public var verifySteps: Int { counters.verifySteps }

    init(draft: MTPDraft, state: MTPState) { self.draft = draft; self.state = state }

    /// The model has computed positions 0..<n-1 of `history` (n tokens; the last is the one
    /// just picked): MTP rows up to n-2 are brought in (the ones not yet computed, from the
    /// tapped hidden states), and the last row's prediction is the proposal.
    public mutating func draft(_ history: [Int], limit: Int) throws -> [Int] {
        let n = history.count, H = draft.mtp.hiddenWidth
        guard n >= 2, limit > 0, n - 1 + draft.maxDraft <= state.cache.capacity else { return [] }
        let valid = state.validRows(history)
        state.cache.truncate(to: valid)
        state.tokens = Array(history[..<(valid + 1)])
        // h_valid ... h_{n-2}: all computed by the model and not consumed yet, or no proposal
        // (a cache restored from elsewhere has no hidden states; the next prompt recomputes them).
        let hidden = FloatBuffer(count: (n - 1 - valid) * H, zeroed: false)
        for (r, p) in (valid..<n - 1).enumerated() {
            guard let row = state.tap.row(p) else { return [] }
            (hidden.p + r * H).update(from: row, count: H)
        }
        var (logits, out) = try draft.mtp.forward(tokens: Array(history[(valid + 1)...]), hidden: hidden.p, cache: state.cache)
        state.tokens = history
        state.tap.drop(below: n - 1)
        let V = min(draft.mtp.head.outFeatures, draft.model.embedding.shape[0])
        var proposal: [Int] = []
        let cap = min(limit, draft.maxDraft)
        while true {
            let (token, p) = ModelDrafter.top(logits.p, V)
            proposal.append(token)
            if proposal.count == cap || p < draft.minConfidence { break }
            // Chained: the block's own output stands in for the model's h at the next position.
            let last = out.p + (out.count / H - 1) * H
            (logits, out) = try draft.mtp.forward(tokens: [token], hidden: last, cache: state.cache)
        }
        return proposal
    }

    public mutating func record(drafted d: Int, accepted a: Int) { counters.add(drafted: d, accepted: a) }
}
