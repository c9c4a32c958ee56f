import Foundation

/// BERT-style WordPiece tokenizer from an HF `tokenizer.json` (model type "WordPiece",
/// `BertNormalizer`, `BertPreTokenizer`, `[CLS] … [SEP]` post-processing) or a `vocab.txt`.
///
/// Steps, as HF tokenizers does them:
/// 1. normalise: drop NUL, U+FFFD and control characters, map whitespace to a space, put spaces
///    around CJK ideographs, strip accents (NFD, drop non-spacing marks) when asked (the default
///    follows `lowercase`), lowercase;
/// 2. pre-tokenize: split on whitespace and isolate every punctuation character;
/// 3. greedy longest-match-first over each word, continuation pieces prefixed with `##`;
///    a word with no full segmentation (or longer than `maxInputCharsPerWord`) becomes [UNK].
public final class WordPieceTokenizer: @unchecked Sendable {
    public let vocab: [String: Int]
    public let tokens: [String]
    public let unkID: Int
    public let clsID: Int
    public let sepID: Int
    public let padID: Int
    public let continuingPrefix: String
    public let maxInputCharsPerWord: Int
    public let lowercase: Bool
    public let stripAccents: Bool
    public let cleanText: Bool
    public let handleChineseChars: Bool
    /// Special tokens around a text or a pair (`[CLS] A [SEP] B [SEP]` unless the file says otherwise).
    public internal(set) var template: EncoderTemplate

    public init(vocab: [String: Int], unk: String = "[UNK]", cls: String = "[CLS]", sep: String = "[SEP]", pad: String = "[PAD]",
                continuingPrefix: String = "##", maxInputCharsPerWord: Int = 100,
                lowercase: Bool = true, stripAccents: Bool? = nil, cleanText: Bool = true, handleChineseChars: Bool = true) throws {
        self.vocab = vocab
        var toks = [String](repeating: "", count: (vocab.values.max() ?? -1) + 1)
        for (t, i) in vocab where i >= 0 { toks[i] = t }
        tokens = toks
        func id(_ s: String) throws -> Int {
            guard let i = vocab[s] else { throw ModelFileError.invalid(path: "tokenizer", reason: "WordPiece vocabulary has no \(s) token") }
            return i
        }
        unkID = try id(unk)
        clsID = try id(cls)
        sepID = try id(sep)
        padID = vocab[pad] ?? 0
        self.continuingPrefix = continuingPrefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        template = .bert(cls: clsID, sep: sepID)
    }

    /// Loads `tokenizer.json` (WordPiece model) from a file or a model folder; a folder with only
    /// `vocab.txt` (+ tokenizer_config.json's do_lower_case) also works.
    public static func load(path: String) throws -> WordPieceTokenizer {
        var isDir: ObjCBool = false
        let fm = FileManager.default
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw ModelFileError.io(path: path, reason: "no such file") }
        if isDir.boolValue {
            if fm.fileExists(atPath: path + "/tokenizer.json") { return try load(path: path + "/tokenizer.json") }
            let vp = path + "/vocab.txt"
            guard let text = try? String(contentsOfFile: vp, encoding: .utf8) else {
                throw ModelFileError.io(path: path, reason: "neither tokenizer.json nor vocab.txt")
            }
            var v = [String: Int]()
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let t = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
                if !t.isEmpty || i == 0 { if v[t] == nil { v[t] = i } }
            }
            let cfg = try? JSONValue.parse(contentsOf: path + "/tokenizer_config.json")
            return try WordPieceTokenizer(vocab: v, lowercase: cfg?["do_lower_case"]?.bool ?? true,
                                          stripAccents: cfg?["strip_accents"]?.bool)
        }
        let j: JSONValue
        do { j = try JSONValue.parse(contentsOf: path) } catch { throw ModelFileError.invalid(path: path, reason: "\(error)") }
        guard let model = j["model"], model["type"]?.string == "WordPiece", let vobj = model["vocab"]?.object else {
            throw ModelFileError.unsupported(path: path, reason: "not a WordPiece tokenizer.json")
        }
        var v = [String: Int](minimumCapacity: vobj.count)
        for (k, idv) in vobj { if let i = idv.int { v[k] = i } }
        for a in j["added_tokens"]?.array ?? [] {
            if let c = a["content"]?.string, let i = a["id"]?.int, v[c] == nil { v[c] = i }
        }
        let norm = j["normalizer"]
        var lower = true, strip: Bool? = nil, clean = true, chinese = true
        if let n = norm, n["type"]?.string == "BertNormalizer" {
            lower = n["lowercase"]?.bool ?? true
            strip = n["strip_accents"]?.bool
            clean = n["clean_text"]?.bool ?? true
            chinese = n["handle_chinese_chars"]?.bool ?? true
        }
        // Special tokens from the post-processor when it names them.
        var cls = "[CLS]", sep = "[SEP]"
        if let single = j["post_processor"]?["single"]?.array {
            let specials = single.compactMap { $0["SpecialToken"]?["id"]?.string }
            if specials.count >= 2 { cls = specials[0]; sep = specials[specials.count - 1] }
        } else if let c = j["post_processor"]?["cls"]?[0]?.string, let s = j["post_processor"]?["sep"]?[0]?.string {
            cls = c; sep = s
        }
        let t = try WordPieceTokenizer(vocab: v, unk: model["unk_token"]?.string ?? "[UNK]", cls: cls, sep: sep,
                                       pad: j["padding"]?["pad_token"]?.string ?? "[PAD]",
                                       continuingPrefix: model["continuing_subword_prefix"]?.string ?? "##",
                                       maxInputCharsPerWord: model["max_input_chars_per_word"]?.int ?? 100,
                                       lowercase: lower, stripAccents: strip, cleanText: clean, handleChineseChars: chinese)
        if j["post_processor"]?["type"] != nil {
            t.template = try EncoderTemplate.parse(j["post_processor"], idOf: { v[$0] }, path: path, defaultCLS: cls,
                                                   defaultSEP: sep, robertaByDefault: false)
        }
        return t
    }

    // MARK: normalisation and pre-tokenization

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate, .unassigned: return true
        default: return false
        }
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    static func isChineseChar(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }

    /// The normalised text as Unicode scalars.
    func normalize(_ text: String) -> [Unicode.Scalar] {
        var out = [Unicode.Scalar]()
        out.reserveCapacity(text.unicodeScalars.count + 8)
        for s in text.unicodeScalars {
            if cleanText {
                if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
                if Self.isWhitespace(s) { out.append(" "); continue }
            }
            if handleChineseChars && Self.isChineseChar(s) {
                out.append(" "); out.append(s); out.append(" ")
                continue
            }
            out.append(s)
        }
        if stripAccents {
            var s = String.UnicodeScalarView()
            s.append(contentsOf: out)
            let nfd = String(s).decomposedStringWithCanonicalMapping
            out = nfd.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if lowercase {
            var low = [Unicode.Scalar]()
            low.reserveCapacity(out.count)
            for s in out {
                if s.isASCII {
                    low.append(s.value >= 65 && s.value <= 90 ? Unicode.Scalar(s.value + 32)! : s)
                } else {
                    low.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
                }
            }
            out = low
        }
        return out
    }

    /// Words after BertPreTokenizer (whitespace split, punctuation isolated).
    public func preTokenize(_ text: String) -> [String] {
        var words = [String]()
        var cur = String.UnicodeScalarView()
        func flush() { if !cur.isEmpty { words.append(String(cur)); cur = String.UnicodeScalarView() } }
        for s in normalize(text) {
            if Self.isWhitespace(s) { flush(); continue }
            if Self.isPunctuation(s) { flush(); words.append(String(s)); continue }
            cur.append(s)
        }
        flush()
        return words
    }

    // MARK: WordPiece

    private func wordPiece(_ word: String, into ids: inout [Int]) {
        let scalars = Array(word.unicodeScalars)
        if scalars.count > maxInputCharsPerWord { ids.append(unkID); return }
        var pieces = [Int]()
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int? = nil
            while start < end {
                var sub = String.UnicodeScalarView()
                if start > 0 { sub.append(contentsOf: continuingPrefix.unicodeScalars) }
                sub.append(contentsOf: scalars[start..<end])
                if let id = vocab[String(sub)] { found = id; break }
                end -= 1
            }
            guard let id = found else { ids.append(unkID); return }
            pieces.append(id)
            start = end
        }
        ids.append(contentsOf: pieces)
    }

    /// Token ids without special tokens.
    public func encodeWords(_ text: String) -> [Int] {
        var ids = [Int]()
        for w in preTokenize(text) { wordPiece(w, into: &ids) }
        return ids
    }

    // encode, encodePair and countTokens: EncoderTokenizer.

    /// Text of ids (for debugging): pieces joined, `##` continuations glued.
    public func decode(_ ids: [Int]) -> String {
        var s = ""
        for id in ids where id >= 0 && id < tokens.count {
            let t = tokens[id]
            if t.hasPrefix(continuingPrefix) { s += t.dropFirst(continuingPrefix.count) }
            else { if !s.isEmpty { s += " " }; s += t }
        }
        return s
    }
}
