import Foundation
import Tiefsee

/// A sentence-transformers embedding model: BERT-family encoder (BERT: all-MiniLM; XLM-RoBERTa:
/// bge-m3) + its WordPiece or Unigram tokenizer + the pooling and normalisation its
/// `modules.json` / `1_Pooling/config.json` declare (mean or CLS; Normalize).
///
/// `embed` is batched (sequences sorted by length and packed without padding) and uses the
/// shared thread pool. This is the library API the server's /v1/embeddings calls.
public final class EmbeddingModel: @unchecked Sendable {
    public enum Pooling: String, Sendable { case mean, cls, max }

    public let folder: String
    public let name: String
    public let encoder: BertModel
    public let tokenizer: any EncoderTokenizer
    public let pooling: Pooling
    public let normalize: Bool
    /// Longest input in tokens including [CLS]/[SEP] (sentence_bert_config.json max_seq_length).
    public let maxSequenceLength: Int
    public var dimension: Int { encoder.config.hiddenSize }
    private let lock = NSLock()

    /// The default embedding model's folder name in the model cache (scripts/fetch-embedding-model.sh).
    public static let defaultModelName = "all-minilm-l6-v2"
    public static var defaultModelPath: String { ModelCache.modelsDirectory + "/" + defaultModelName }

    /// MODEL: a folder path, a folder name in the model cache, or nil for the default.
    public static func load(_ arg: String? = nil) throws -> EmbeddingModel {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        let name = arg ?? defaultModelName
        if fm.fileExists(atPath: name, isDirectory: &isDir), isDir.boolValue { return try EmbeddingModel(folder: name) }
        let cached = ModelCache.modelsDirectory + "/" + name
        if fm.fileExists(atPath: cached, isDirectory: &isDir), isDir.boolValue { return try EmbeddingModel(folder: cached) }
        let hint = arg == nil ? "; run scripts/fetch-embedding-model.sh" : ""
        throw ModelNotFound(name: name, reason: "not a model folder or a folder in \(ModelCache.modelsDirectory)\(hint)")
    }

    public init(folder: String) throws {
        self.folder = folder
        name = URL(fileURLWithPath: folder).lastPathComponent
        encoder = try BertModel(folder: folder)
        tokenizer = try loadEncoderTokenizer(path: folder)
        var pooling = Pooling.mean
        var normalize = false
        var poolingDir = "1_Pooling"
        if let modules = try? JSONValue.parse(contentsOf: folder + "/modules.json"), let list = modules.array {
            for m in list {
                let type = m["type"]?.string ?? ""
                if type.hasSuffix(".Pooling"), let p = m["path"]?.string { poolingDir = p }
                if type.hasSuffix(".Normalize") { normalize = true }
            }
        }
        if let pc = try? JSONValue.parse(contentsOf: folder + "/" + poolingDir + "/config.json") {
            if let mode = pc["pooling_mode"]?.string {
                // sentence-transformers 6 writes one mode name.
                guard let p = Pooling(rawValue: mode) else { throw ModelFileError.unsupported(path: folder, reason: "pooling_mode '\(mode)'") }
                pooling = p
            } else if pc["pooling_mode_cls_token"]?.bool == true { pooling = .cls }
            else if pc["pooling_mode_max_tokens"]?.bool == true { pooling = .max }
            else if pc["pooling_mode_mean_tokens"]?.bool == true { pooling = .mean }
            if pc["pooling_mode_mean_sqrt_len_tokens"]?.bool == true {
                throw ModelFileError.unsupported(path: folder, reason: "pooling_mode_mean_sqrt_len_tokens")
            }
        }
        self.pooling = pooling
        self.normalize = normalize
        // max_seq_length from sentence_bert_config.json (older files) or the tokenizer's model_max_length.
        let sb = try? JSONValue.parse(contentsOf: folder + "/sentence_bert_config.json")
        let tc = try? JSONValue.parse(contentsOf: folder + "/tokenizer_config.json")
        let limit = encoder.config.maxPositions - encoder.config.positionOffset
        maxSequenceLength = min(sb?["max_seq_length"]?.int ?? tc?["model_max_length"]?.int ?? 512, limit)
    }

    /// Token ids as the model sees them: [CLS] pieces [SEP] (<s> … </s>), truncated to maxSequenceLength.
    public func tokenize(_ text: String) -> [Int] { tokenizer.encode(text, maxLength: maxSequenceLength) }

    /// Embeddings of `texts`, in order. `maxBatchTokens` bounds the rows of one forward pass.
    public func embed(_ texts: [String], maxBatchTokens: Int = 4096, pool: ThreadPool = .shared) throws -> [[Float]] {
        let ids = texts.map(tokenize)
        return try embed(tokenIDs: ids, maxBatchTokens: maxBatchTokens, pool: pool)
    }

    public func embed(tokenIDs ids: [[Int]], maxBatchTokens: Int = 4096, pool: ThreadPool = .shared) throws -> [[Float]] {
        lock.lock(); defer { lock.unlock() }
        let order = ids.indices.sorted { ids[$0].count < ids[$1].count }
        var result = [[Float]](repeating: [], count: ids.count)
        var i = 0
        let h = dimension
        while i < order.count {
            var batch = [Int]()
            var tokens = 0
            while i < order.count && (batch.isEmpty || tokens + ids[order[i]].count <= maxBatchTokens) {
                batch.append(order[i]); tokens += ids[order[i]].count; i += 1
            }
            let (hidden, offs) = try encoder.forward(batch.map { ids[$0] }, pool: pool)
            for (bi, idx) in batch.enumerated() {
                let start = offs[bi], n = offs[bi + 1] - start
                var v = [Float](repeating: 0, count: h)
                switch pooling {
                case .cls:
                    for c in 0..<h { v[c] = hidden.p[start * h + c] }
                case .mean:
                    for t in 0..<n { for c in 0..<h { v[c] += hidden.p[(start + t) * h + c] } }
                    let inv = 1 / Float(max(n, 1))
                    for c in 0..<h { v[c] *= inv }
                case .max:
                    for c in 0..<h { v[c] = -Float.greatestFiniteMagnitude }
                    for t in 0..<n { for c in 0..<h { v[c] = max(v[c], hidden.p[(start + t) * h + c]) } }
                }
                if normalize {
                    var ss: Float = 0
                    for c in 0..<h { ss += v[c] * v[c] }
                    let inv = 1 / max(ss.squareRoot(), 1e-12)
                    for c in 0..<h { v[c] *= inv }
                }
                result[idx] = v
            }
        }
        return result
    }
}

/// Cosine similarity of two vectors of equal length.
public func cosineSimilarity(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var dot: Double = 0, na: Double = 0, nb: Double = 0
    for i in a.indices { dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i]) }
    return Float(dot / max((na * nb).squareRoot(), 1e-30))
}
