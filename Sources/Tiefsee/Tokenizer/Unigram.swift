import Foundation

/// SentencePiece's compiled normaliser as HF `tokenizer.json` carries it (`Precompiled`,
/// `precompiled_charsmap`, base64): a Darts double-array trie over UTF-8 byte strings whose
/// values are offsets of the replacement strings (NUL-terminated) stored after the trie.
/// Layout: u32 little-endian trie size in bytes, the trie's u32 units, the replacements.
///
/// Applied as tokenizers does: per grapheme cluster shorter than 6 bytes, the whole cluster is
/// looked up first; otherwise (or when it has no entry) each character is looked up alone and
/// kept as it is when it has none. A lookup takes the first (shortest) key the trie finds.
public struct PrecompiledCharsmap: Sendable {
    let units: [UInt32]
    let normalized: [UInt8]

    public init(base64: String) throws {
        guard let data = Data(base64Encoded: base64), data.count >= 4 else {
            throw ModelFileError.invalid(path: "tokenizer.json", reason: "precompiled_charsmap is not base64")
        }
        let bytes = [UInt8](data)
        let trieBytes = Int(UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
        guard trieBytes % 4 == 0, 4 + trieBytes <= bytes.count, trieBytes > 0 else {
            throw ModelFileError.invalid(path: "tokenizer.json", reason: "precompiled_charsmap trie size \(trieBytes) out of range")
        }
        var u = [UInt32](repeating: 0, count: trieBytes / 4)
        for i in u.indices {
            let o = 4 + 4 * i
            u[i] = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        units = u
        normalized = Array(bytes[(4 + trieBytes)...])
    }

    // Darts unit fields.
    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
    @inline(__always) private static func label(_ u: UInt32) -> UInt32 { u & ((1 << 31) | 0xFF) }
    @inline(__always) private static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) private static func value(_ u: UInt32) -> Int { Int(u & ((1 << 31) - 1)) }

    /// Value of the first (shortest) key that is a prefix of `key`, if any.
    func firstPrefixValue<C: Collection>(_ key: C) -> Int? where C.Element == UInt8 {
        var pos = 0
        var unit = units[0]
        pos ^= Self.offset(unit)
        for c in key {
            if c == 0 { return nil }
            pos ^= Int(c)
            guard pos < units.count else { return nil }
            unit = units[pos]
            if Self.label(unit) != UInt32(c) { return nil }
            pos ^= Self.offset(unit)
            if Self.hasLeaf(unit), pos < units.count { return Self.value(units[pos]) }
        }
        return nil
    }

    /// The replacement for `chunk`, or nil when the table has none.
    func transform(_ chunk: Substring.UTF8View) -> String.UTF8View? {
        guard let start = firstPrefixValue(chunk), start < normalized.count else { return nil }
        var end = start
        while end < normalized.count && normalized[end] != 0 { end += 1 }
        return String(decoding: normalized[start..<end], as: UTF8.self).utf8
    }

    public func normalize(_ text: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        var i = text.startIndex
        while i < text.endIndex {
            let next = text.index(after: i)   // one grapheme cluster
            let g = text[i..<next]
            if g.utf8.count < 6, let r = transform(g.utf8) {
                out.append(contentsOf: r)
            } else {
                for s in g.unicodeScalars {
                    let one = String(s)
                    if let r = transform(one[...].utf8) { out.append(contentsOf: r) } else { out.append(contentsOf: one.utf8) }
                }
            }
            i = next
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SentencePiece Unigram tokenizer from an HF `tokenizer.json` (model type "Unigram"), the
/// XLM-RoBERTa / bge-m3 family.
///
/// Steps, as HF tokenizers does them:
/// 1. normalise: the `Precompiled` charsmap (NFKC-like, from sentencepiece), `Replace`
///    (e.g. runs of spaces to one), NFKC, Lowercase, in the order the `Sequence` lists;
/// 2. pre-tokenize: `WhitespaceSplit`, then `Metaspace` (spaces become ▁, ▁ put in front of
///    each word, split before every ▁);
/// 3. per word, the segmentation with the highest sum of piece log-probabilities (Viterbi over
///    the lattice of vocabulary pieces); a character no piece covers is an unknown node scored
///    min score − 10, and consecutive unknowns fuse into one `<unk>`.
public final class UnigramTokenizer: @unchecked Sendable {
    enum Normalizer { case precompiled(PrecompiledCharsmap), replace(NSRegularExpression, String), nfkc, lowercase }

    public let pieces: [String]
    let scores: [Double]
    let ids: [String: Int]
    let maxPieceScalars: Int
    public let unkID: Int
    let unkScore: Double
    let normalizers: [Normalizer]
    let whitespaceSplit: Bool
    let metaspace: (replacement: Character, prependAlways: Bool)?
    public let template: EncoderTemplate
    /// Added (special) tokens matched literally in the text before normalisation.
    let added: [(content: String, id: Int)]

    init(pieces: [(String, Double)], unkID: Int, normalizers: [Normalizer], whitespaceSplit: Bool,
         metaspace: (Character, Bool)?, template: EncoderTemplate, added: [(String, Int)]) throws {
        guard !pieces.isEmpty, unkID >= 0, unkID < pieces.count else {
            throw ModelFileError.invalid(path: "tokenizer.json", reason: "Unigram vocabulary empty or unk_id out of range")
        }
        self.pieces = pieces.map(\.0)
        scores = pieces.map(\.1)
        var m = [String: Int](minimumCapacity: pieces.count)
        for (i, p) in pieces.enumerated() where m[p.0] == nil { m[p.0] = i }
        ids = m
        maxPieceScalars = pieces.map { $0.0.unicodeScalars.count }.max() ?? 1
        self.unkID = unkID
        unkScore = (scores.min() ?? 0) - 10
        self.normalizers = normalizers
        self.whitespaceSplit = whitespaceSplit
        self.metaspace = metaspace.map { (replacement: $0.0, prependAlways: $0.1) }
        self.template = template
        self.added = added.sorted { $0.0.count > $1.0.count }
    }

    static func load(json j: JSONValue, path: String) throws -> UnigramTokenizer {
        func unsupported(_ r: String) -> ModelFileError { .unsupported(path: path, reason: r) }
        guard let model = j["model"], model["type"]?.string == "Unigram", let vocab = model["vocab"]?.array else {
            throw unsupported("not a Unigram tokenizer.json")
        }
        if model["byte_fallback"]?.bool == true { throw unsupported("Unigram byte_fallback") }
        let pieces: [(String, Double)] = try vocab.map { e in
            guard let p = e[0]?.string, let s = e[1]?.double else { throw ModelFileError.invalid(path: path, reason: "bad Unigram vocab entry") }
            return (p, s)
        }
        var norms = [Normalizer]()
        func addNorm(_ n: JSONValue) throws {
            switch n["type"]?.string ?? "" {
            case "Sequence": for x in n["normalizers"]?.array ?? [] { try addNorm(x) }
            case "Precompiled":
                guard let b = n["precompiled_charsmap"]?.string else { return }   // null: identity
                norms.append(.precompiled(try PrecompiledCharsmap(base64: b)))
            case "Replace":
                let content = n["content"]?.string ?? ""
                let pattern = n["pattern"]?["Regex"]?.string ?? NSRegularExpression.escapedPattern(for: n["pattern"]?["String"]?.string ?? "")
                norms.append(.replace(try NSRegularExpression(pattern: pattern), content))
            case "NFKC": norms.append(.nfkc)
            case "Lowercase": norms.append(.lowercase)
            case let t: throw unsupported("normalizer '\(t)' for a Unigram tokenizer")
            }
        }
        if let n = j["normalizer"], n["type"] != nil { try addNorm(n) }
        var wsSplit = false
        var meta: (Character, Bool)? = nil
        func addPre(_ p: JSONValue) throws {
            switch p["type"]?.string ?? "" {
            case "Sequence": for x in p["pretokenizers"]?.array ?? [] { try addPre(x) }
            case "WhitespaceSplit": wsSplit = true
            case "Metaspace":
                let r = p["replacement"]?.string?.first ?? "▁"
                let scheme = p["prepend_scheme"]?.string ?? ((p["add_prefix_space"]?.bool ?? true) ? "always" : "never")
                guard scheme == "always" || scheme == "never" else { throw unsupported("Metaspace prepend_scheme '\(scheme)'") }
                if p["split"]?.bool == false { throw unsupported("Metaspace without split") }
                meta = (r, scheme == "always")
            case let t: throw unsupported("pre_tokenizer '\(t)' for a Unigram tokenizer")
            }
        }
        if let p = j["pre_tokenizer"], p["type"] != nil { try addPre(p) }
        let added = (j["added_tokens"]?.array ?? []).compactMap { a -> (String, Int)? in
            guard let c = a["content"]?.string, let i = a["id"]?.int else { return nil }
            return (c, i)
        }
        let idOf = Dictionary(pieces.enumerated().map { ($0.element.0, $0.offset) }, uniquingKeysWith: { a, _ in a })
            .merging(added.map { ($0.0, $0.1) }, uniquingKeysWith: { _, b in b })
        let template = try EncoderTemplate.parse(j["post_processor"], idOf: { idOf[$0] }, path: path,
                                                 defaultCLS: "<s>", defaultSEP: "</s>")
        return try UnigramTokenizer(pieces: pieces, unkID: model["unk_id"]?.int ?? 0, normalizers: norms,
                                    whitespaceSplit: wsSplit, metaspace: meta, template: template, added: added)
    }

    func normalize(_ text: String) -> String {
        var s = text
        for n in normalizers {
            switch n {
            case .precompiled(let c): s = c.normalize(s)
            case .replace(let re, let content):
                s = re.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s),
                                                withTemplate: NSRegularExpression.escapedTemplate(for: content))
            case .nfkc: s = s.precomposedStringWithCompatibilityMapping
            case .lowercase: s = s.lowercased()
            }
        }
        return s
    }

    /// Words after the pre-tokenizers, as Unicode scalars (▁-prefixed with Metaspace).
    func preTokenize(_ normalized: String) -> [[Unicode.Scalar]] {
        var words = [[Unicode.Scalar]]()
        var cur = [Unicode.Scalar]()
        let scalars = Array(normalized.unicodeScalars)
        if whitespaceSplit {
            for s in scalars {
                if s.properties.isWhitespace { if !cur.isEmpty { words.append(cur); cur = [] } } else { cur.append(s) }
            }
            if !cur.isEmpty { words.append(cur) }
        } else if !scalars.isEmpty {
            words = [scalars]
        }
        guard let m = metaspace else { return words }
        let rep = m.replacement.unicodeScalars.first!
        var out = [[Unicode.Scalar]]()
        for w in words {
            var x = w.map { $0 == " " ? rep : $0 }
            if m.prependAlways && x.first != rep { x.insert(rep, at: 0) }
            // Split before every ▁ (the ▁ starts the next piece).
            var piece = [Unicode.Scalar]()
            for s in x {
                if s == rep && !piece.isEmpty { out.append(piece); piece = [] }
                piece.append(s)
            }
            if !piece.isEmpty { out.append(piece) }
        }
        return out
    }

    /// Viterbi segmentation of one word into piece ids (unknown runs fused into one unk).
    func segment(_ w: [Unicode.Scalar]) -> [Int] {
        let n = w.count
        var best = [Double](repeating: -.infinity, count: n + 1)
        var from = [Int](repeating: -1, count: n + 1)
        var piece = [Int](repeating: -1, count: n + 1)
        best[0] = 0
        for start in 0..<n where from[start] >= 0 || start == 0 {
            var hasSingle = false
            var key = String.UnicodeScalarView()
            for end in (start + 1)...min(n, start + maxPieceScalars) {
                key.append(w[end - 1])
                guard let id = ids[String(key)] else { continue }
                let cand = best[start] + scores[id]
                if from[end] < 0 || cand > best[end] { best[end] = cand; from[end] = start; piece[end] = id }
                if end == start + 1 { hasSingle = true }
            }
            if !hasSingle {
                let cand = best[start] + unkScore
                if from[start + 1] < 0 || cand > best[start + 1] { best[start + 1] = cand; from[start + 1] = start; piece[start + 1] = unkID }
            }
        }
        var out = [Int]()
        var e = n
        while e > 0 {
            let id = piece[e]
            if !(id == unkID && out.last == unkID) { out.append(id) }
            e = from[e]
        }
        return out.reversed()
    }

    /// Token ids without special tokens (added tokens in the text are matched first).
    public func encodeWords(_ text: String) -> [Int] {
        var ids = [Int]()
        var rest = Substring(text)
        while !rest.isEmpty {
            // The earliest (longest on ties) added token in the rest of the text.
            var hit: (range: Range<Substring.Index>, id: Int)? = nil
            for a in added where !a.content.isEmpty {
                if let r = rest.range(of: a.content), hit == nil || r.lowerBound < hit!.range.lowerBound { hit = (r, a.id) }
            }
            let plainEnd = hit?.range.lowerBound ?? rest.endIndex
            for w in preTokenize(normalize(String(rest[..<plainEnd]))) { ids.append(contentsOf: segment(w)) }
            guard let h = hit else { break }
            ids.append(h.id)
            rest = rest[h.range.upperBound...]
        }
        return ids
    }

    public func decode(_ ids: [Int]) -> String {
        let rep = metaspace?.replacement ?? "▁"
        let s = ids.compactMap { $0 >= 0 && $0 < pieces.count ? pieces[$0] : nil }.joined()
        return String(s.map { $0 == rep ? " " : $0 }).trimmingCharacters(in: .whitespaces)
    }
}
