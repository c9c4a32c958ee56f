import Foundation

/// Where the special tokens go around one text or a pair (query, document): the post-processor
/// of an encoder's `tokenizer.json`. BERT: `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` with token
/// types 0 then 1; XLM-RoBERTa: `<s> A </s>` / `<s> A </s> </s> B </s>`, all type 0.
public struct EncoderTemplate: Sendable, Equatable {
    public enum Item: Sendable, Equatable { case special(id: Int, type: Int), a(type: Int), b(type: Int) }
    public var single: [Item]
    public var pair: [Item]

    public static func bert(cls: Int, sep: Int) -> EncoderTemplate {
        EncoderTemplate(single: [.special(id: cls, type: 0), .a(type: 0), .special(id: sep, type: 0)],
                        pair: [.special(id: cls, type: 0), .a(type: 0), .special(id: sep, type: 0), .b(type: 1), .special(id: sep, type: 1)])
    }

    public static func roberta(cls: Int, sep: Int) -> EncoderTemplate {
        EncoderTemplate(single: [.special(id: cls, type: 0), .a(type: 0), .special(id: sep, type: 0)],
                        pair: [.special(id: cls, type: 0), .a(type: 0), .special(id: sep, type: 0), .special(id: sep, type: 0),
                               .b(type: 0), .special(id: sep, type: 0)])
    }

    /// From `post_processor` (TemplateProcessing, BertProcessing, RobertaProcessing); none given:
    /// BERT's layout with `defaultCLS` / `defaultSEP`.
    static func parse(_ p: JSONValue?, idOf: (String) -> Int?, path: String, defaultCLS: String, defaultSEP: String,
                      robertaByDefault: Bool = true) throws -> EncoderTemplate {
        func id(_ name: String) throws -> Int {
            guard let i = idOf(name) else { throw ModelFileError.invalid(path: path, reason: "post_processor names unknown token \(name)") }
            return i
        }
        switch p?["type"]?.string {
        case "TemplateProcessing":
            func items(_ key: String) throws -> [Item] {
                try (p?[key]?.array ?? []).map { e in
                    if let s = e["SpecialToken"] {
                        return .special(id: try id(s["id"]?.string ?? ""), type: s["type_id"]?.int ?? 0)
                    }
                    let seq = e["Sequence"]
                    return seq?["id"]?.string == "B" ? .b(type: seq?["type_id"]?.int ?? 0) : .a(type: seq?["type_id"]?.int ?? 0)
                }
            }
            let t = EncoderTemplate(single: try items("single"), pair: try items("pair"))
            guard t.single.contains(where: { if case .a = $0 { return true }; return false }) else {
                throw ModelFileError.invalid(path: path, reason: "TemplateProcessing without $A")
            }
            return t
        case "BertProcessing":
            return .bert(cls: try id(p?["cls"]?[0]?.string ?? defaultCLS), sep: try id(p?["sep"]?[0]?.string ?? defaultSEP))
        case "RobertaProcessing":
            return .roberta(cls: try id(p?["cls"]?[0]?.string ?? defaultCLS), sep: try id(p?["sep"]?[0]?.string ?? defaultSEP))
        case nil:
            let cls = try id(defaultCLS), sep = try id(defaultSEP)
            return robertaByDefault ? .roberta(cls: cls, sep: sep) : .bert(cls: cls, sep: sep)
        case let t?:
            throw ModelFileError.unsupported(path: path, reason: "post_processor '\(t)'")
        }
    }

    var singleSpecials: Int { single.filter { if case .special = $0 { return true }; return false }.count }
    var pairSpecials: Int { pair.filter { if case .special = $0 { return true }; return false }.count }

    func assemble(_ items: [Item], _ a: [Int], _ b: [Int]) -> (ids: [Int], types: [Int]) {
        var ids = [Int](), types = [Int]()
        for it in items {
            switch it {
            case .special(let i, let t): ids.append(i); types.append(t)
            case .a(let t): ids += a; types += [Int](repeating: t, count: a.count)
            case .b(let t): ids += b; types += [Int](repeating: t, count: b.count)
            }
        }
        return (ids, types)
    }
}

/// The tokenizer of an encoder model (embedding models, cross-encoders): WordPiece (BERT) or
/// Unigram (XLM-RoBERTa), with the model's special-token template.
public protocol EncoderTokenizer: AnyObject, Sendable {
    /// Token ids of `text` without special tokens.
    func encodeWords(_ text: String) -> [Int]
    var template: EncoderTemplate { get }
    func decode(_ ids: [Int]) -> String
}

extension EncoderTokenizer {
    /// One text with its special tokens, truncated so the whole fits `maxLength` tokens.
    public func encode(_ text: String, maxLength: Int = 512) -> [Int] {
        var ids = encodeWords(text)
        let room = max(0, maxLength - template.singleSpecials)
        if ids.count > room { ids.removeLast(ids.count - room) }
        return template.assemble(template.single, ids, []).ids
    }

    /// A (query, document) pair for a cross-encoder with token types, truncated as HF tokenizers'
    /// `longest_first` does: when both do not fit, the shorter keeps min(its length, the larger of
    /// half the room and what the longer leaves), the longer the rest.
    public func encodePair(_ a: String, _ b: String, maxLength: Int = 512) -> (ids: [Int], types: [Int]) {
        var x = encodeWords(a), y = encodeWords(b)
        let room = max(0, maxLength - template.pairSpecials)
        if x.count + y.count > room {
            var n1 = x.count, n2 = y.count
            let swapped = n1 > n2
            if swapped { Swift.swap(&n1, &n2) }
            n2 = n1 > room ? n1 : max(n1, room - n1)
            if n1 + n2 > room { n1 = room / 2; n2 = n1 + room % 2 }
            if swapped { Swift.swap(&n1, &n2) }
            if x.count > n1 { x.removeLast(x.count - n1) }
            if y.count > n2 { y.removeLast(y.count - n2) }
        }
        return template.assemble(template.pair, x, y)
    }

    /// Number of tokens without special tokens: for chunking by token budget.
    public func countTokens(_ text: String) -> Int { encodeWords(text).count }
}

extension WordPieceTokenizer: EncoderTokenizer {}
extension UnigramTokenizer: EncoderTokenizer {}

/// The encoder tokenizer of a model folder (or a tokenizer.json): Unigram or WordPiece by the
/// file's model type; a folder with only vocab.txt is WordPiece.
public func loadEncoderTokenizer(path: String) throws -> any EncoderTokenizer {
    var isDir: ObjCBool = false
    let file = FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue ? path + "/tokenizer.json" : path
    if FileManager.default.fileExists(atPath: file) {
        let j: JSONValue
        do { j = try JSONValue.parse(contentsOf: file) } catch { throw ModelFileError.invalid(path: file, reason: "\(error)") }
        switch j["model"]?["type"]?.string {
        case "Unigram": return try UnigramTokenizer.load(json: j, path: file)
        case "WordPiece": break
        case let t: throw ModelFileError.unsupported(path: file, reason: "tokenizer model '\(t ?? "none")' for an encoder (WordPiece or Unigram)")
        }
    }
    return try WordPieceTokenizer.load(path: path)
}
