import Foundation

/// Byte-level BPE tokenizer (GPT-2 family: Qwen2, Llama-3, DeepSeek-V3/R1, GPT-2), loaded from
/// GGUF metadata or an HF `tokenizer.json`.
///
/// Encoding: added tokens are cut out first (leftmost, longest match), the text between them is
/// normalised (NFC when the tokenizer says so), pre-tokenized into pieces, and each piece is
/// BPE-merged over its UTF-8 bytes. `encode` adds no BOS unless asked (like HF
/// `add_special_tokens=False`).
public final class Tokenizer: @unchecked Sendable {
    public enum Normalization: Sendable { case none, nfc, nfkc }

    public struct AddedToken: Sendable, Equatable {
        public let id: Int
        public let content: String
        /// Control / special token (`special: true` in tokenizer.json, token type 3 in GGUF).
        /// Only special tokens are affected by `parseSpecial: false` and `skipSpecial: true`.
        public let special: Bool
        public let lstrip: Bool
        public let rstrip: Bool
    }

    /// Raw vocabulary strings (byte-level spelling for regular tokens), indexed by id.
    public let tokens: [String]
    public var vocabSize: Int { tokens.count }
    public let bosID: Int?
    public let eosID: Int?
    /// End-of-turn token (`<|im_end|>`, `<|eot_id|>`, …) when the tokenizer has one.
    public let eotID: Int?
    public let padID: Int?
    /// Every id that ends generation: eos, eot and the known end tokens present as special tokens.
    public let eogIDs: Set<Int>
    /// Added tokens (special and not), in id order.
    public let addedTokens: [AddedToken]
    /// Ids of special (control) tokens.
    public let specialTokens: Set<Int>
    /// Whether the tokenizer's post-processor / `add_bos_token` puts BOS in front of a prompt.
    public let addsBOS: Bool
    public let normalization: Normalization
    public let preTokenizer: [PreTokenizerStep]
    /// HF ByteLevel `add_prefix_space`: a space is put in front of text that does not start with one.
    public let addPrefixSpace: Bool
    /// Where it was loaded from (for messages).
    public let source: String

    // Encoding state.
    private var bpe: BPEModel
    private let addedByFirstByte: [[Int]]     // first UTF-8 byte → indices into addedTokens, longest first
    private let addedBytes: [[UInt8]]
    private var cache = ByteKeyMap(capacity: 1 << 14)
    private var cacheIDs: [Int32] = []         // cache values index pairs (start, count) here
    private var scratch = ScalarText()
    private var pieceEnds: [Int32] = []
    private var pieceOut: [Int32] = []
    private let lock = NSLock()

    // Decoding: bytes of each token.
    private let tokenBytesArena: [UInt8]
    private let tokenBytesStart: [Int32]     // count + 1 entries

    // MARK: construction

    struct Spec {
        var tokens: [String]
        var merges: [(String, String)]
        var added: [AddedToken]
        var bos: Int?, eos: Int?, eot: Int?, pad: Int?
        var addsBOS: Bool
        var normalization: Normalization
        var pre: [PreTokenizerStep]
        var addPrefixSpace: Bool
        var ignoreMerges: Bool
        var source: String
        /// Explicit merge ranks, one per `merges` entry (tiktoken: the merged token's rank, so every
        /// split of one token shares it); nil: a merge's rank is its position in the list.
        var mergeRanks: [Int]? = nil
    }

    init(_ spec: Spec) throws {
        tokens = spec.tokens
        source = spec.source
        normalization = spec.normalization
        preTokenizer = spec.pre
        addPrefixSpace = spec.addPrefixSpace
        addsBOS = spec.addsBOS && spec.bos != nil
        let n = tokens.count
        func valid(_ i: Int?) -> Int? { i.flatMap { $0 >= 0 && $0 < n ? $0 : nil } }
        bosID = valid(spec.bos)
        eosID = valid(spec.eos)
        padID = valid(spec.pad)

        let added = spec.added.filter { $0.id >= 0 && $0.id < n && !$0.content.isEmpty }.sorted { $0.id < $1.id }
        addedTokens = added
        specialTokens = Set(added.filter { $0.special }.map { $0.id })
        let addedIDs = Set(added.map { $0.id })

        // Regular vocabulary: byte-level strings → raw bytes.
        var vocab = ByteKeyMap(capacity: n)
        var bytesArena = [UInt8]()
        var bytesStart = [Int32]()
        bytesArena.reserveCapacity(n * 6)
        bytesStart.reserveCapacity(n + 1)
        var byteIDs = [Int32](repeating: -1, count: 256)
        for (id, t) in tokens.enumerated() {
            bytesStart.append(Int32(bytesArena.count))
            if addedIDs.contains(id) {
                bytesArena.append(contentsOf: Array(t.utf8))
                continue
            }
            if let raw = ByteLevel.decode(t), !raw.isEmpty {
                bytesArena.append(contentsOf: raw)
                if vocab.find(raw) == nil { vocab.set(raw, Int32(id)) }
                if raw.count == 1 && byteIDs[Int(raw[0])] < 0 { byteIDs[Int(raw[0])] = Int32(id) }
            } else {
                // Not byte-level text (e.g. an unused "[PAD…]" placeholder written as plain text).
                bytesArena.append(contentsOf: Array(t.utf8))
            }
        }
        bytesStart.append(Int32(bytesArena.count))
        tokenBytesArena = bytesArena
        tokenBytesStart = bytesStart

        var mergeMap = [UInt64: UInt64](minimumCapacity: spec.merges.count)
        var tokenIndex = [String: Int32](minimumCapacity: n)
        for (i, t) in tokens.enumerated() where !addedIDs.contains(i) { if tokenIndex[t] == nil { tokenIndex[t] = Int32(i) } }
        for (i, (a, b)) in spec.merges.enumerated() {
            let rank = spec.mergeRanks?[i] ?? i
            guard let ia = tokenIndex[a], let ib = tokenIndex[b], let im = tokenIndex[a + b] else { continue }
            let key = UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))
            if mergeMap[key] == nil { mergeMap[key] = UInt64(rank) << 32 | UInt64(UInt32(im)) }
        }
        bpe = BPEModel(vocab: vocab, byteIDs: byteIDs, merges: mergeMap, ignoreMerges: spec.ignoreMerges)

        var byFirst = [[Int]](repeating: [], count: 256)
        let ab = added.map { Array($0.content.utf8) }
        for (k, b) in ab.enumerated() { byFirst[Int(b[0])].append(k) }
        for i in 0..<256 { byFirst[i].sort { ab[$0].count > ab[$1].count } }
        addedBytes = ab
        addedByFirstByte = byFirst

        // End-of-generation ids.
        let contentToID = Dictionary(added.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
        let eotNames = ["<|im_end|>", "<|eot_id|>", "<|end_of_turn|>", "<end_of_turn>", "<|end|>", "<|eom_id|>",
                        "<｜end▁of▁sentence｜>", "<|endoftext|>", "<|end_of_text|>", "</s>", "<|return|>"]
        var eot = valid(spec.eot)
        if eot == nil {
            for name in ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"] {
                if let id = contentToID[name] { eot = id; break }
            }
        }
        eotID = eot
        var eog = Set<Int>()
        if let e = eosID { eog.insert(e) }
        if let e = eot { eog.insert(e) }
        let specials = Set(added.filter { $0.special }.map { $0.id })
        for name in eotNames { if let id = contentToID[name], specials.contains(id) { eog.insert(id) } }
        eogIDs = eog
    }

    // MARK: encoding

    /// Token ids of `text`.
    /// - parseSpecial: match special (control) tokens written in the text, e.g. `<|im_start|>`;
    ///   when false they are encoded as plain text. Non-special added tokens are always matched.
    /// - addBOS: apply the tokenizer's BOS policy (`addsBOS`): put BOS in front, unless the
    ///   text already begins with it (so a rendered chat template that writes the BOS text does
    ///   not get a second one). Does nothing for tokenizers that add no BOS (Qwen2, DeepSeek-V3).
    public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool = false) -> [Int] {
        var ids = [Int32]()
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        lock.lock()
        var t = text
        t.withUTF8 { buf in encodeBytes(buf, parseSpecial: parseSpecial, into: &ids) }
        lock.unlock()
        var out = ids.map { Int($0) }
        if addBOS, addsBOS, let b = bosID, out.first != b { out.insert(b, at: 0) }
        return out
    }

    /// True when `ids` would get a BOS from `encode(addBOS: true)`'s policy but do not start with it.
    public func needsBOS(_ ids: [Int]) -> Bool {
        guard addsBOS, let b = bosID else { return false }
        return ids.first != b
    }

    private func encodeBytes(_ buf: UnsafeBufferPointer<UInt8>, parseSpecial: Bool, into ids: inout [Int32]) {
        let n = buf.count
        guard n > 0 else { return }
        guard !addedTokens.isEmpty else { encodeSegment(buf, 0, n, into: &ids); return }
        var segStart = 0
        var i = 0
        let base = buf.baseAddress!
        while i < n {
            let cands = addedByFirstByte[Int(buf[i])]
            var matched = -1
            if !cands.isEmpty {
                for k in cands {
                    let tok = addedTokens[k]
                    if tok.special && !parseSpecial { continue }
                    let b = addedBytes[k]
                    if b.count <= n - i && b.withUnsafeBufferPointer({ memcmpEq($0.baseAddress!, base + i, b.count) }) {
                        matched = k
                        break
                    }
                }
            }
            if matched < 0 { i += 1; continue }
            let tok = addedTokens[matched]
            var segEnd = i
            if tok.lstrip { while segEnd > segStart && isASCIISpace(buf[segEnd - 1]) { segEnd -= 1 } }
            encodeSegment(buf, segStart, segEnd, into: &ids)
            ids.append(Int32(tok.id))
            i += addedBytes[matched].count
            if tok.rstrip { while i < n && isASCIISpace(buf[i]) { i += 1 } }
            segStart = i
        }
        encodeSegment(buf, segStart, n, into: &ids)
    }

    @inline(__always) private func isASCIISpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    private func encodeSegment(_ buf: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int, into ids: inout [Int32]) {
        guard hi > lo else { return }
        let seg = UnsafeBufferPointer(rebasing: buf[lo..<hi])
        var needsNorm = false
        if normalization != .none { needsNorm = seg.contains { $0 >= 0x80 } }
        if needsNorm || (addPrefixSpace && seg[0] != 0x20) {
            var s = String(decoding: seg, as: UTF8.self)
            if needsNorm {
                s = normalization == .nfc ? s.precomposedStringWithCanonicalMapping
                                          : s.precomposedStringWithCompatibilityMapping
            }
            if addPrefixSpace && !s.hasPrefix(" ") { s = " " + s }
            s.withUTF8 { encodeText($0, into: &ids) }
        } else {
            encodeText(seg, into: &ids)
        }
    }

    /// Pre-tokenizes and BPE-encodes text that contains no added tokens.
    private func encodeText(_ seg: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
        guard let base = seg.baseAddress, seg.count > 0 else { return }
        scratch.load(seg)
        pieceEnds.removeAll(keepingCapacity: true)
        PreTokenizerScan.split(scratch, steps: preTokenizer, lo: 0, hi: scratch.scalars.count, ends: &pieceEnds)
        var start = 0
        scratch.byteOffsets.withUnsafeBufferPointer { offs in
            for e in pieceEnds {
                let b0 = Int(offs[start]), b1 = Int(offs[Int(e)])
                start = Int(e)
                encodePiece(base + b0, b1 - b0, into: &ids)
            }
        }
    }

    @inline(__always) private func encodePiece(_ p: UnsafePointer<UInt8>, _ n: Int, into ids: inout [Int32]) {
        if n == 1 {
            let id = bpe.byteIDs[Int(p[0])]
            if id >= 0 { ids.append(id) }
            return
        }
        if let v = cache.find(p, n) {
            let start = Int(v >> 8), count = Int(v & 0xFF)
            if count == 1 { ids.append(cacheIDs[start]) } else { ids.append(contentsOf: cacheIDs[start..<start + count]) }
            return
        }
        pieceOut.removeAll(keepingCapacity: true)
        bpe.encode(p, n, into: &pieceOut)
        ids.append(contentsOf: pieceOut)
        // Cache pieces of up to 255 tokens while the cache stays within ~1M entries / 4M ids.
        if n <= 256 && pieceOut.count < 256 {
            if cache.count >= 1 << 20 || cacheIDs.count > (1 << 22) - 256 {
                cache.removeAll()
                cacheIDs.removeAll(keepingCapacity: true)
            }
            cache.set(p, n, Int32(cacheIDs.count) << 8 | Int32(pieceOut.count))
            cacheIDs.append(contentsOf: pieceOut)
        }
    }

    // MARK: decoding

    /// The bytes a token stands for (raw UTF-8 of the content for added tokens).
    public func tokenBytes(_ id: Int) -> ArraySlice<UInt8> {
        guard id >= 0 && id < tokens.count else { return [] }
        return tokenBytesArena[Int(tokenBytesStart[id])..<Int(tokenBytesStart[id + 1])]
    }

    /// The raw vocabulary string of a token (byte-level spelling, e.g. "Ġhello").
    public func piece(_ id: Int) -> String { id >= 0 && id < tokens.count ? tokens[id] : "" }

    public func isSpecial(_ id: Int) -> Bool { specialTokens.contains(id) }

    /// Text of `ids`; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD.
    public func decode(_ ids: [Int], skipSpecial: Bool = false) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            if skipSpecial && specialTokens.contains(id) { continue }
            bytes.append(contentsOf: tokenBytes(id))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Id of a token given its exact vocabulary string (added tokens by content).
    public func id(of token: String) -> Int? {
        if let a = addedTokens.first(where: { $0.content == token }) { return a.id }
        if let raw = ByteLevel.decode(token), let id = bpe.vocab.find(raw), tokens[Int(id)] == token { return Int(id) }
        return tokens.firstIndex(of: token)
    }
}
