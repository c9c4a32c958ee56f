import Foundation
import Tiefsee

/// A cross-encoder reranker (sentence-transformers `CrossEncoder`; bge-reranker, ms-marco
/// MiniLM): query and document are read together by a BERT or XLM-RoBERTa encoder and the
/// sequence-classification head on [CLS] gives one relevance logit. Scores are what
/// `CrossEncoder.predict` returns: the sigmoid of the logit (its default for one label), or the
/// logit itself where the model's config names the Identity activation.
public final class Reranker: @unchecked Sendable {
    public let folder: String
    public let name: String
    public let encoder: BertModel
    public let head: BertClassificationHead
    public let tokenizer: any EncoderTokenizer
    /// Longest pair in tokens including the special tokens.
    public let maxLength: Int
    public let sigmoid: Bool
    private let lock = NSLock()

    /// MODEL: a folder path or a folder name in the model cache.
    public static func load(_ arg: String) throws -> Reranker {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: arg, isDirectory: &isDir), isDir.boolValue { return try Reranker(folder: arg) }
        let cached = ModelCache.modelsDirectory + "/" + arg
        if FileManager.default.fileExists(atPath: cached, isDirectory: &isDir), isDir.boolValue { return try Reranker(folder: cached) }
        throw ModelNotFound(name: arg, reason: "not a reranker model folder or a folder in \(ModelCache.modelsDirectory)")
    }

    public init(folder: String) throws {
        self.folder = folder
        name = URL(fileURLWithPath: folder).lastPathComponent
        let config = try BertConfig.load(folder: folder)
        let w = try SafetensorsCollection(folder: folder)
        encoder = try BertModel(config: config, weights: w, folder: folder)
        head = try BertClassificationHead(family: config.family, weights: w, folder: folder, hidden: config.hiddenSize)
        guard head.labels == 1 else {
            throw ModelFileError.unsupported(path: folder, reason: "a reranker needs one label (num_labels 1), this head has \(head.labels)")
        }
        tokenizer = try loadEncoderTokenizer(path: folder)
        let j = try? JSONValue.parse(contentsOf: folder + "/config.json")
        let act = j?["sentence_transformers"]?["activation_fn"]?.string ?? "torch.nn.modules.activation.Sigmoid"
        sigmoid = !act.hasSuffix("Identity")
        let tc = try? JSONValue.parse(contentsOf: folder + "/tokenizer_config.json")
        let limit = config.maxPositions - config.positionOffset
        maxLength = min(tc?["model_max_length"]?.int ?? limit, limit)
    }

    /// Relevance of each document to the query, in the documents' order.
    public func score(query: String, documents: [String], maxBatchTokens: Int = 4096, pool: ThreadPool = .shared) throws -> [Float] {
        try score(pairs: tokenize(query: query, documents: documents), maxBatchTokens: maxBatchTokens, pool: pool)
    }

    /// Query and document pairs as the model reads them (truncated together to `maxLength`).
    public func tokenize(query: String, documents: [String]) -> [(ids: [Int], types: [Int])] {
        documents.map { tokenizer.encodePair(query, $0, maxLength: maxLength) }
    }

    /// Scores of tokenized pairs (`tokenize`).
    public func score(pairs: [(ids: [Int], types: [Int])], maxBatchTokens: Int = 4096, pool: ThreadPool = .shared) throws -> [Float] {
        try logits(pairs, maxBatchTokens: maxBatchTokens, pool: pool).map { sigmoid ? 1 / (1 + exp(-$0)) : $0 }
    }

    /// Raw head logits of tokenized pairs, packed in batches of at most `maxBatchTokens` rows.
    public func logits(_ pairs: [(ids: [Int], types: [Int])], maxBatchTokens: Int = 4096, pool: ThreadPool = .shared) throws -> [Float] {
        lock.lock(); defer { lock.unlock() }
        var out = [Float](repeating: 0, count: pairs.count)
        var i = 0
        while i < pairs.count {
            var j = i, tokens = 0
            while j < pairs.count && (j == i || tokens + pairs[j].ids.count <= maxBatchTokens) { tokens += pairs[j].ids.count; j += 1 }
            let batch = pairs[i..<j]
            let (hidden, offs) = try encoder.forward(batch.map(\.ids), types: batch.map(\.types), pool: pool)
            for (k, l) in head.logits(hidden, offsets: offs, hiddenSize: encoder.config.hiddenSize, pool: pool).enumerated() {
                out[i + k] = l[0]
            }
            i = j
        }
        return out
    }

    /// (index, score) of the documents, best first, at most `topN`.
    public func rank(query: String, documents: [String], topN: Int? = nil) throws -> [(index: Int, score: Float)] {
        try rank(pairs: tokenize(query: query, documents: documents), topN: topN)
    }

    public func rank(pairs: [(ids: [Int], types: [Int])], topN: Int? = nil) throws -> [(index: Int, score: Float)] {
        let s = try score(pairs: pairs)
        let order = s.indices.sorted { s[$0] != s[$1] ? s[$0] > s[$1] : $0 < $1 }
        return order.prefix(topN ?? order.count).map { ($0, s[$0]) }
    }
}
