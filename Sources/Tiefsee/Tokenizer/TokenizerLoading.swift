import Foundation

extension Tokenizer {
    /// From GGUF metadata (`tokenizer.ggml.*`). Supports `tokenizer.ggml.model = gpt2` (byte-level BPE).
    public static func load(gguf g: GGUFFile) throws -> Tokenizer {
        let path = g.path
        func bad(_ r: String) -> ModelFileError { .invalid(path: path, reason: r) }
        guard let model = g["tokenizer.ggml.model"]?.string else { throw bad("no tokenizer.ggml.model") }
        guard model == "gpt2" else {
            let kind = model == "llama" ? "SentencePiece (llama)" : model
            throw ModelFileError.unsupported(path: path, reason: "tokenizer model '\(kind)' (only byte-level BPE 'gpt2' is supported)")
        }
        guard let tokens = g["tokenizer.ggml.tokens"]?.stringArray, !tokens.isEmpty else {
            throw bad("tokenizer.ggml.tokens missing or empty")
        }
        guard let mergeStrings = g["tokenizer.ggml.merges"]?.stringArray else { throw bad("tokenizer.ggml.merges missing") }
        var merges = [(String, String)]()
        merges.reserveCapacity(mergeStrings.count)
        for (i, m) in mergeStrings.enumerated() {
            guard let sp = m.firstIndex(of: " ") else { throw bad("merge #\(i) '\(m)' is not 'a b'") }
            merges.append((String(m[..<sp]), String(m[m.index(after: sp)...])))
        }
        let types = g["tokenizer.ggml.token_type"]?.array?.map { $0.int ?? 1 }
        if let t = types, t.count != tokens.count {
            throw bad("token_type has \(t.count) entries for \(tokens.count) tokens")
        }
        // Token types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
        var added = [AddedToken]()
        if let t = types {
            for (id, ty) in t.enumerated() where ty == 3 || ty == 4 {
                added.append(AddedToken(id: id, content: tokens[id], special: ty == 3, lstrip: false, rstrip: false))
            }
        }
        let preName = g["tokenizer.ggml.pre"]?.string ?? "default"
        guard let pre = PreTokenizerStep.steps(ggmlPre: preName) else {
            throw ModelFileError.unsupported(path: path, reason: "tokenizer.ggml.pre '\(preName)' (supported: qwen2, llama-bpe, deepseek-v3, deepseek-llm, gpt-2, default)")
        }
        let bos = g["tokenizer.ggml.bos_token_id"]?.int
        let spec = Spec(
            tokens: tokens, merges: merges, added: added,
            bos: bos, eos: g["tokenizer.ggml.eos_token_id"]?.int,
            eot: g["tokenizer.ggml.eot_token_id"]?.int, pad: g["tokenizer.ggml.padding_token_id"]?.int,
            addsBOS: g["tokenizer.ggml.add_bos_token"]?.bool ?? false,
            normalization: .none, pre: pre, addPrefixSpace: false,
            ignoreMerges: [PreTokenizerStep.llama3].elementsEqual(pre, by: { $0.description == $1.description }),
            source: path)
        return try Tokenizer(spec)
    }

    /// From a GGUF file path.
    public static func load(ggufPath: String) throws -> Tokenizer {
        try load(gguf: GGUFFile(path: ggufPath))
    }

    /// From a folder with `tokenizer.json` (and optionally `tokenizer_config.json` for the BOS/EOS
    /// names and `add_bos_token`), or from a folder holding a single `.gguf` file.
    public static func load(modelFolder: String) throws -> Tokenizer {
        let fm = FileManager.default
        let tj = modelFolder + "/tokenizer.json"
        if fm.fileExists(atPath: tj) {
            let cfgPath = modelFolder + "/tokenizer_config.json"
            let cfg = fm.fileExists(atPath: cfgPath) ? try JSONValue.parse(contentsOf: cfgPath) : nil
            return try load(tokenizerJSON: tj, config: cfg)
        }
        let ggufs = ((try? fm.contentsOfDirectory(atPath: modelFolder)) ?? []).filter { $0.hasSuffix(".gguf") }.sorted()
        if let f = ggufs.first { return try load(ggufPath: modelFolder + "/" + f) }
        if fm.fileExists(atPath: modelFolder + "/tiktoken.model") { return try load(tiktokenFolder: modelFolder) }
        throw ModelFileError.io(path: modelFolder, reason: "no tokenizer.json or .gguf file in folder")
    }

    /// From an HF `tokenizer.json` (model type BPE, byte-level). `config` is the parsed
    /// `tokenizer_config.json` when available (bos/eos token names, add_bos_token).
    public static func load(tokenizerJSON path: String, config: JSONValue? = nil) throws -> Tokenizer {
        func bad(_ r: String) -> ModelFileError { .invalid(path: path, reason: r) }
        func unsupported(_ r: String) -> ModelFileError { .unsupported(path: path, reason: r) }
        let root: JSONValue
        do { root = try JSONValue.parse(contentsOf: path) } catch let e as JSONParseError {
            throw bad("tokenizer.json is not valid JSON: \(e)")
        }
        guard case .object = root else { throw bad("top level is not an object") }
        guard let model = root["model"], case .object = model else { throw bad("no 'model' object") }
        let mtype = model["type"]?.string ?? (model["merges"] != nil ? "BPE" : "?")
        guard mtype == "BPE" else {
            throw unsupported("tokenizer model type '\(mtype)' (only byte-level BPE is supported; SentencePiece/Unigram/WordPiece are not)")
        }
        if model["byte_fallback"]?.bool == true {
            throw unsupported("BPE with byte_fallback (SentencePiece-style BPE) is not supported")
        }
        guard let vocabObj = model["vocab"]?.object else { throw bad("model.vocab missing") }

        // Added tokens.
        var added = [AddedToken]()
        for (i, a) in (root["added_tokens"]?.array ?? []).enumerated() {
            guard let id = a["id"]?.int, let content = a["content"]?.string else { throw bad("added_tokens[\(i)] lacks id/content") }
            added.append(AddedToken(id: id, content: content, special: a["special"]?.bool ?? false,
                                    lstrip: a["lstrip"]?.bool ?? false, rstrip: a["rstrip"]?.bool ?? false))
        }
        var maxID = -1
        for (_, v) in vocabObj { if let i = v.int, i > maxID { maxID = i } }
        for a in added where a.id > maxID { maxID = a.id }
        guard maxID >= 0 else { throw bad("empty vocabulary") }
        var tokens = [String](repeating: "", count: maxID + 1)
        for (k, v) in vocabObj {
            guard let i = v.int, i >= 0 else { throw bad("vocab entry '\(k)' has no integer id") }
            tokens[i] = k
        }
        for a in added { tokens[a.id] = a.content }

        var merges = [(String, String)]()
        if let ms = model["merges"]?.array {
            merges.reserveCapacity(ms.count)
            for (i, m) in ms.enumerated() {
                if let s = m.string {
                    guard let sp = s.firstIndex(of: " ") else { throw bad("merge #\(i) '\(s)' is not 'a b'") }
                    merges.append((String(s[..<sp]), String(s[s.index(after: sp)...])))
                } else if let pair = m.array, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                    merges.append((a, b))
                } else {
                    throw bad("merge #\(i) is neither 'a b' nor [a, b]")
                }
            }
        } else {
            throw bad("model.merges missing")
        }

        // Normalizer.
        func normalization(_ n: JSONValue?) throws -> Normalization {
            guard let n = n, !n.isNull else { return .none }
            switch n["type"]?.string ?? "" {
            case "NFC": return .nfc
            case "NFKC": return .nfkc
            case "Sequence":
                var r = Normalization.none
                for x in n["normalizers"]?.array ?? [] {
                    let k = try normalization(x)
                    if k != .none {
                        if r != .none && r != k { throw unsupported("normalizer sequence mixing NFC and NFKC") }
                        r = k
                    }
                }
                return r
            case let t: throw unsupported("normalizer '\(t)' (supported: NFC, NFKC, none)")
            }
        }
        let norm = try normalization(root["normalizer"])

        // Pre-tokenizer.
        var steps = [PreTokenizerStep]()
        var prefixSpace = false
        var sawByteLevel = false
        func addPre(_ p: JSONValue) throws {
            switch p["type"]?.string ?? "" {
            case "Sequence":
                for x in p["pretokenizers"]?.array ?? [] { try addPre(x) }
            case "ByteLevel":
                sawByteLevel = true
                if p["add_prefix_space"]?.bool == true { prefixSpace = true }
                if p["use_regex"]?.bool ?? true { steps.append(.gpt2) }
            case "Split":
                let behavior = p["behavior"]?.string ?? "Isolated"
                guard behavior == "Isolated" else { throw unsupported("Split behavior '\(behavior)' (only Isolated)") }
                guard p["invert"]?.bool != true else { throw unsupported("inverted Split") }
                if let re = p["pattern"]?["Regex"]?.string {
                    if let k = PreTokenizerStep.known(pattern: re) { steps.append(k) }
                    else {
                        do { steps.append(.regex(try NSRegularExpression(pattern: re))) } catch {
                            throw unsupported("Split regex that NSRegularExpression cannot compile: \(re)")
                        }
                    }
                } else if let lit = p["pattern"]?["String"]?.string {
                    steps.append(.regex(try NSRegularExpression(pattern: NSRegularExpression.escapedPattern(for: lit))))
                } else {
                    throw bad("Split pre-tokenizer without pattern")
                }
            case "Digits":
                if p["individual_digits"]?.bool == true {
                    steps.append(.regex(try NSRegularExpression(pattern: "\\p{N}")))
                } else {
                    steps.append(.regex(try NSRegularExpression(pattern: "\\p{N}+")))
                }
            case let t: throw unsupported("pre_tokenizer '\(t)'")
            }
        }
        if let p = root["pre_tokenizer"], !p.isNull { try addPre(p) }
        guard sawByteLevel || (root["decoder"]?["type"]?.string == "ByteLevel") else {
            throw unsupported("BPE tokenizer that is not byte-level (no ByteLevel pre-tokenizer/decoder)")
        }

        // Post-processor: BOS from TemplateProcessing.
        var templateBOS: Int?
        func scanPost(_ p: JSONValue) {
            switch p["type"]?.string ?? "" {
            case "Sequence": for x in p["processors"]?.array ?? [] { scanPost(x) }
            case "TemplateProcessing":
                // The special tokens before $A in "single".
                for item in p["single"]?.array ?? [] {
                    if item["Sequence"] != nil { break }
                    if let name = item["SpecialToken"]?["id"]?.string {
                        let ids = p["special_tokens"]?[name]?["ids"]?.array?.compactMap { $0.int }
                        if let id = ids?.first ?? added.first(where: { $0.content == name })?.id, templateBOS == nil {
                            templateBOS = id
                        }
                    }
                }
            case "BertProcessing", "RobertaProcessing":
                if let id = p["cls"]?[1]?.int { templateBOS = id }
            default: break
            }
        }
        if let p = root["post_processor"], !p.isNull { scanPost(p) }

        // BOS/EOS from tokenizer_config.json, else well-known names.
        func tokenName(_ v: JSONValue?) -> String? { v?.string ?? v?["content"]?.string }
        let byContent = Dictionary(added.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
        var bos = tokenName(config?["bos_token"]).flatMap { byContent[$0] } ?? templateBOS
        var eos = tokenName(config?["eos_token"]).flatMap { byContent[$0] }
        let pad = tokenName(config?["pad_token"]).flatMap { byContent[$0] }
        if bos == nil {
            for n in ["<｜begin▁of▁sentence｜>", "<|begin_of_text|>", "<s>", "<|startoftext|>"] where byContent[n] != nil { bos = byContent[n]; break }
        }
        if eos == nil {
            for n in ["<｜end▁of▁sentence｜>", "<|end_of_text|>", "<|endoftext|>", "</s>"] where byContent[n] != nil { eos = byContent[n]; break }
        }
        let addsBOS = config?["add_bos_token"]?.bool ?? (templateBOS != nil)

        let spec = Spec(tokens: tokens, merges: merges, added: added, bos: bos, eos: eos, eot: nil, pad: pad,
                        addsBOS: addsBOS, normalization: norm, pre: steps, addPrefixSpace: prefixSpace,
                        ignoreMerges: model["ignore_merges"]?.bool ?? false, source: path)
        return try Tokenizer(spec)
    }
}

// MARK: tiktoken (Kimi-K2)

extension Tokenizer {
    /// Kimi-K2's pre-tokenization (tokenization_kimi.py's `pat_str`): o200k's pattern with a leading
    /// branch for runs of Han characters, which are taken out of the letter classes so the branch
    /// gets them. ICU (NSRegularExpression) reads the `&&` class intersections as tiktoken does.
    static let kimiPattern = #"[\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// A folder as Kimi-K2 ships its tokenizer: `tiktoken.model` (one "base64(token bytes) rank"
    /// line per regular token) and `tokenizer_config.json`, whose `added_tokens_decoder` numbers
    /// the special tokens after the ranks. tiktoken merges, within each pre-token, the adjacent
    /// pair whose concatenation has the lowest rank, and takes a piece that is a token whole: as
    /// BPE that is every split of a token into two tokens, ranked by the token's own rank, with
    /// whole-piece lookup first (`ignoreMerges`).
    public static func load(tiktokenFolder dir: String) throws -> Tokenizer {
        let path = dir + "/tiktoken.model"
        func bad(_ r: String) -> ModelFileError { .invalid(path: path, reason: r) }
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelFileError.io(path: path, reason: "cannot read") }
        var byRank = [[UInt8]?]()
        var rankOf = [[UInt8]: Int]()
        for (n, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.isEmpty {
            let parts = line.split(separator: UInt8(ascii: " "))
            guard parts.count == 2, let raw = Data(base64Encoded: Data(parts[0])), !raw.isEmpty,
                  let rank = Int(String(decoding: parts[1], as: UTF8.self)), (0..<10_000_000).contains(rank) else {
                throw bad("line \(n + 1) is not 'base64 rank'")
            }
            if rank >= byRank.count { byRank += [[UInt8]?](repeating: nil, count: rank + 1 - byRank.count) }
            guard byRank[rank] == nil, rankOf[[UInt8](raw)] == nil else { throw bad("line \(n + 1): rank \(rank) or its bytes given twice") }
            byRank[rank] = [UInt8](raw)
            rankOf[[UInt8](raw)] = rank
        }
        guard !byRank.isEmpty else { throw bad("no tokens") }
        for b in 0...255 where rankOf[[UInt8(b)]] == nil { throw bad("byte \(b) has no token: tiktoken needs all 256") }
        let cfgPath = dir + "/tokenizer_config.json"
        let cfg = FileManager.default.fileExists(atPath: cfgPath) ? try JSONValue.parse(contentsOf: cfgPath) : nil
        var added = [AddedToken]()
        for (k, v) in cfg?["added_tokens_decoder"]?.object ?? [] {
            guard let id = Int(k), id >= 0, let content = v["content"]?.string else { throw bad("added_tokens_decoder entry '\(k)'") }
            guard id >= byRank.count || byRank[id] == nil else { throw bad("special token \(id) '\(content)' has a rank's id") }
            added.append(AddedToken(id: id, content: content, special: v["special"]?.bool ?? true,
                                    lstrip: v["lstrip"]?.bool ?? false, rstrip: v["rstrip"]?.bool ?? false))
        }
        var tokens = byRank.map { $0.map { ByteLevel.encode($0) } ?? "" }
        let count = max(tokens.count, (added.map(\.id).max() ?? -1) + 1)
        tokens += [String](repeating: "", count: count - tokens.count)
        for a in added { tokens[a.id] = a.content }
        var merges = [(String, String)](), ranks = [Int]()
        for (rank, raw) in byRank.enumerated() {
            guard let raw, raw.count > 1 else { continue }
            for k in 1..<raw.count where rankOf[Array(raw[..<k])] != nil && rankOf[Array(raw[k...])] != nil {
                merges.append((ByteLevel.encode(raw[..<k]), ByteLevel.encode(raw[k...])))
                ranks.append(rank)
            }
        }
        func special(_ key: String) -> Int? {
            guard let name = cfg?[key]?.string ?? cfg?[key]?["content"]?.string else { return nil }
            return added.first { $0.content == name }?.id
        }
        return try Tokenizer(Spec(
            tokens: tokens, merges: merges, added: added, bos: special("bos_token"), eos: special("eos_token"),
            eot: added.first { $0.content == "<|im_end|>" }?.id, pad: special("pad_token"),
            addsBOS: cfg?["add_bos_token"]?.bool ?? false, normalization: .none,
            pre: [.regex(try NSRegularExpression(pattern: kimiPattern))], addPrefixSpace: false,
            ignoreMerges: true, source: path, mergeRanks: ranks))
    }
}
