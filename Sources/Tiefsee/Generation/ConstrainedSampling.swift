import Foundation

/// The vocabulary as the grammar sees it: each token's bytes (empty for special tokens, which
/// a grammar never produces) in a byte trie, so the tokens a grammar state allows are found by
/// one walk that shares the work of common prefixes instead of one check per token.
public final class TokenTrie: @unchecked Sendable {
    public let vocab: Int
    public let eog: Set<Int>
    let bytes: [[UInt8]]
    // Nodes: the byte on the edge into the node, first child, next sibling, first token ending here.
    private var edge: [UInt8] = [0]
    private var firstChild: [Int32] = [-1]
    private var nextSibling: [Int32] = [-1]
    private var firstToken: [Int32] = [-1]
    /// Next token with the same bytes (a vocabulary may spell one string twice).
    private var nextToken: [Int32]

    /// `bytes[id]` is token id's text (empty: never allowed); `eog` ends generation.
    public init(bytes: [[UInt8]], eog: Set<Int>) {
        self.bytes = bytes
        self.eog = eog
        vocab = bytes.count
        nextToken = [Int32](repeating: -1, count: bytes.count)
        let order = (0..<bytes.count).filter { !bytes[$0].isEmpty }.sorted { bytes[$0].lexicographicallyPrecedes(bytes[$1]) }
        // Sorted order builds the trie as one walk: pop back to the common prefix, add the rest.
        var path: [Int32] = [0]          // path[d] = node after d bytes of the previous token
        var lastChild: [Int32] = [-1]
        var prev: [UInt8] = []
        for id in order {
            let b = bytes[id]
            var common = 0
            while common < min(prev.count, b.count) && prev[common] == b[common] { common += 1 }
            path.removeLast(path.count - 1 - common)
            for d in common..<b.count {
                let parent = Int(path[d])
                let n = Int32(edge.count)
                edge.append(b[d]); firstChild.append(-1); nextSibling.append(-1); firstToken.append(-1); lastChild.append(-1)
                if lastChild[parent] < 0 { firstChild[parent] = n } else { nextSibling[Int(lastChild[parent])] = n }
                lastChild[parent] = n
                path.append(n)
            }
            let end = Int(path[b.count])
            nextToken[id] = firstToken[end]
            firstToken[end] = Int32(id)
            prev = b
        }
    }

    public convenience init(tokenizer: Tokenizer, outputs: Int) {
        let bytes = (0..<outputs).map { id -> [UInt8] in
            id < tokenizer.vocabSize && !tokenizer.isSpecial(id) ? Array(tokenizer.tokenBytes(id)) : []
        }
        self.init(bytes: bytes, eog: tokenizer.eogIDs)
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var shared: [ObjectIdentifier: TokenTrie] = [:]

    /// One trie per tokenizer, built on first use (about a second for a 150k vocabulary).
    public static func shared(for tokenizer: Tokenizer, outputs: Int) -> TokenTrie {
        lock.lock(); defer { lock.unlock() }
        if let t = shared[ObjectIdentifier(tokenizer)], t.vocab == outputs { return t }
        let t = TokenTrie(tokenizer: tokenizer, outputs: outputs)
        shared[ObjectIdentifier(tokenizer)] = t
        return t
    }

    public var nodeCount: Int { edge.count }

    /// Sets the bit of every token whose bytes can follow `state` (not the end-of-generation ids).
    func allowedTokens(_ matcher: GrammarMatcher, from state: GrammarState, into mask: inout [UInt64]) {
        func visit(_ node: Int32, _ s: GrammarState) {
            var c = firstChild[Int(node)]
            while c >= 0 {
                if let n = matcher.step(s, edge[Int(c)]) {
                    var t = firstToken[Int(c)]
                    while t >= 0 { mask[Int(t) >> 6] |= 1 << UInt64(Int(t) & 63); t = nextToken[Int(t)] }
                    visit(c, n)
                }
                c = nextSibling[Int(c)]
            }
        }
        visit(0, state)
    }
}

/// Sampling under a grammar, for one generation. The unconstrained sampler draws first; when the
/// grammar allows its token that token is taken — for a random draw that is exactly a draw from
/// the distribution renormalised over the allowed tokens (rejection sampling), and it is the
/// common case, so most steps cost one token check. Otherwise the allowed set is computed (a trie
/// walk, cached per grammar state), every other logit is set to -inf, and the sampler draws again.
public final class GrammarConstraint {
    public let matcher: GrammarMatcher
    let trie: TokenTrie
    private var maskCache: [GrammarState: [UInt64]] = [:]
    private var cacheEpoch = 0
    private var scratch: [Float] = []
    /// Counters for the benchmark: steps, and steps that needed the allowed set.
    public private(set) var steps = 0
    public private(set) var masked = 0

    public init(grammar: Grammar, trie: TokenTrie) {
        matcher = GrammarMatcher(grammar)
        self.trie = trie
    }

    /// Whether `token` may come next (an end-of-generation token only where the grammar may end).
    public func allows(_ token: Int) -> Bool {
        guard token >= 0 && token < trie.vocab else { return false }
        if trie.eog.contains(token) { return matcher.canEnd }
        let b = trie.bytes[token]
        return !b.isEmpty && matcher.allows(bytes: b)
    }

    /// The allowed tokens as a bit set over the vocabulary.
    public func allowedMask() -> [UInt64] {
        if matcher.epoch != cacheEpoch { maskCache = [:]; cacheEpoch = matcher.epoch }
        if let m = maskCache[matcher.state] { return m }
        var mask = [UInt64](repeating: 0, count: (trie.vocab + 63) / 64)
        trie.allowedTokens(matcher, from: matcher.state, into: &mask)
        if matcher.canEnd { for t in trie.eog where t < trie.vocab { mask[t >> 6] |= 1 << UInt64(t & 63) } }
        if maskCache.count >= 256 { maskCache = [:] }
        maskCache[matcher.state] = mask
        return mask
    }

    /// Draws the next token from `logits` (modified in place). Returns nil when the grammar
    /// allows no token at all (the text so far cannot be continued or ended).
    public func sample(_ sampler: inout Sampler, _ logits: UnsafeMutablePointer<Float>, count n: Int, history: [Int]) -> Int? {
        steps += 1
        if scratch.count != n { scratch = [Float](repeating: 0, count: n) }
        let first = scratch.withUnsafeMutableBufferPointer { s -> Int in
            s.baseAddress!.update(from: logits, count: n)
            return sampler.sample(s.baseAddress!, count: n, history: history)
        }
        if allows(first) { return first }
        masked += 1
        let mask = allowedMask()
        var any = -1
        for i in 0..<n {
            if i < trie.vocab && mask[i >> 6] & (1 << UInt64(i & 63)) != 0 { if any < 0 || logits[i] > logits[any] { any = i } }
            else { logits[i] = -.infinity }
        }
        guard any >= 0 else { return nil }
        let t = sampler.sample(logits, count: n, history: history)
        // A draw can only land on a -inf logit through rounding; take the best allowed token then.
        return allows(t) ? t : any
    }

    /// Moves the grammar past `token`'s bytes.
    public func accept(_ token: Int) {
        guard token >= 0 && token < trie.vocab, !trie.eog.contains(token) else { return }
        matcher.accept(bytes: trie.bytes[token])
    }

    /// The text is complete and nothing may follow: generation should end.
    public var mustEnd: Bool { matcher.mustEnd }
}
