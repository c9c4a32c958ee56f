import Foundation
import Tiefsee

/// KV states kept in RAM beyond the slots (`serve --cache-ram MiB`), as llama.cpp's server does
/// with its prompt cache: when a slot is about to be reused for a different prompt, the
/// positions it would forget are saved here, and a later request whose prompt starts with a
/// saved state copies it into its slot instead of reading those tokens again. A second
/// conversation with the same long system prompt or the same knowledge-base passages thus
/// starts at the first token that differs, even after other requests used every slot.
///
/// The saved values are the cache's own f32 values, so a restored prefix gives exactly the
/// logits the slot-prefix reuse gives. Least recently used states go first when the budget
/// is full; a state that another saved state extends is dropped (the longer one covers it).
public final class PromptCache: @unchecked Sendable {
    struct Entry {
        let tokens: [Int]
        let state: KVCache.Snapshot
        var lastUse: UInt64
    }

    public let budgetBytes: Int
    /// States shorter than this are not worth a copy (reading them again is fast).
    public let minTokens: Int
    private var entries: [Entry] = []
    private var clock: UInt64 = 0
    private let lock = NSLock()

    public init(budgetBytes: Int, minTokens: Int = 32) {
        self.budgetBytes = budgetBytes
        self.minTokens = minTokens
    }

    public var bytes: Int { lock.lock(); defer { lock.unlock() }; return entries.reduce(0) { $0 + $1.state.bytes } }
    public var count: Int { lock.lock(); defer { lock.unlock() }; return entries.count }

    /// Saves the first `tokens.count` positions of `cache` (which holds exactly those tokens).
    /// Returns false when the state is too short or larger than the whole budget.
    @discardableResult
    public func save(tokens: [Int], from cache: KVCache) -> Bool {
        guard tokens.count >= minTokens, tokens.count <= cache.length else { return false }
        let need = cache.snapshotBytes(count: tokens.count)
        guard need <= budgetBytes else { return false }
        lock.lock(); defer { lock.unlock() }
        // Already covered by a saved state that starts with these tokens: just touch it.
        clock += 1
        if let i = entries.firstIndex(where: { $0.tokens.count >= tokens.count && $0.tokens.starts(with: tokens) }) {
            entries[i].lastUse = clock
            return true
        }
        entries.removeAll { tokens.starts(with: $0.tokens) }
        var used = entries.reduce(0) { $0 + $1.state.bytes }
        while used + need > budgetBytes, let oldest = entries.indices.min(by: { entries[$0].lastUse < entries[$1].lastUse }) {
            used -= entries[oldest].state.bytes
            entries.remove(at: oldest)
        }
        entries.append(Entry(tokens: tokens, state: cache.snapshot(count: tokens.count), lastUse: clock))
        return true
    }

    /// The saved state sharing the longest prefix with `prompt`, at most `limit` tokens of it,
    /// copied into `cache` (positions 0 ..< n). Returns the tokens restored, or nil when no saved
    /// state shares more than `atLeast` tokens.
    public func restore(prompt: [Int], limit: Int, atLeast: Int, into cache: KVCache) -> [Int]? {
        lock.lock(); defer { lock.unlock() }
        var best = -1, bestCommon = atLeast
        for (i, e) in entries.enumerated() {
            let n = min(e.tokens.count, limit)
            var c = 0
            while c < n && e.tokens[c] == prompt[c] { c += 1 }
            if c > bestCommon { bestCommon = c; best = i }
        }
        guard best >= 0 else { return nil }
        clock += 1
        entries[best].lastUse = clock
        cache.restore(entries[best].state, count: bestCommon)
        return Array(entries[best].tokens.prefix(bestCommon))
    }
}
