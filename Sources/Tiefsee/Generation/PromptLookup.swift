/// Prompt-lookup decoding (n-gram speculation): when the last few tokens also occur earlier in
/// the prompt or the answer, the tokens that followed them there are proposed as the next ones
/// and the model checks them all in one batched step — the weights are read once for up to
/// `maxDraft + 1` tokens instead of once per token. It pays where answers quote their context:
/// RAG passages, code being edited, a document being summarised.
///
/// Only greedy decoding is sped up (the check keeps the draft's longest prefix that the
/// model's own argmax agrees with, then the model's token after it), so the text is the one
/// plain greedy decoding writes. Drafting backs off after misses: a rejected draft costs a
/// batched step that produced one token.
public struct PromptLookup: Sendable {
    /// Longest and shortest suffix looked up; longer matches are tried first (more reliable).
    public var maxNgram = 4
    public var minNgram = 2
    public var maxDraft = 10
    /// Steps to wait after a draft of which nothing was accepted (doubles on repeated misses).
    private var cooldown = 0
    private var backoff = 1
    public private(set) var drafted = 0
    public private(set) var accepted = 0
    public private(set) var verifySteps = 0

    public init() {}

    /// Tokens that followed the most recent earlier occurrence of the longest suffix of
    /// `history` (between minNgram and maxNgram tokens long), at most `limit` of them.
    public mutating func draft(_ history: [Int], limit: Int) -> [Int] {
        if cooldown > 0 { cooldown -= 1; return [] }
        let n = history.count
        let cap = min(limit, maxDraft)
        guard cap > 0 else { return [] }
        for k in stride(from: min(maxNgram, n - 1), through: minNgram, by: -1) {
            // The most recent earlier start j with history[j..<j+k] == the last k tokens.
            var j = n - k - 1
            while j >= 0 {
                if history[j + k - 1] == history[n - 1] && history[j..<(j + k)].elementsEqual(history[(n - k)...]) {
                    let from = j + k
                    let end = min(from + cap, n)
                    if end > from { return Array(history[from..<end]) }
                }
                j -= 1
            }
        }
        return []
    }

    /// What the model did with a draft: `good` of `count` tokens accepted.
    public mutating func record(drafted count: Int, accepted good: Int) {
        drafted += count; accepted += good; verifySteps += 1
        if good == 0 { cooldown = backoff; backoff = min(backoff * 2, 16) } else { backoff = 1 }
    }

}
