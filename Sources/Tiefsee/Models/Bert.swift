import Foundation
import CKernels

/// Hyper-parameters of a BERT-family encoder (HF `config.json`): model_type bert, or the
/// RoBERTa family (roberta, xlm-roberta: bge-m3, bge-reranker), which is the same encoder with
/// positions counted from `pad_token_id + 1` and usually one token type.
public struct BertConfig: Sendable {
    public enum Family: String, Sendable { case bert, roberta }
    public var family: Family = .bert
    /// Position id of a sequence's first token: 0 for BERT, pad_token_id + 1 for RoBERTa
    /// (HF builds RoBERTa positions as padding_idx + the token's 1-based index).
    public var positionOffset = 0
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float

    public static func load(folder: String) throws -> BertConfig {
        let cfgPath = folder + "/config.json"
        let j: JSONValue
        do { j = try JSONValue.parse(contentsOf: cfgPath) } catch { throw ModelFileError.invalid(path: cfgPath, reason: "\(error)") }
        return try fromHF(j, path: cfgPath)
    }

    public static func fromHF(_ j: JSONValue, path: String) throws -> BertConfig {
        func int(_ k: String) throws -> Int {
            guard let v = j[k]?.int, v > 0 else { throw ModelFileError.invalid(path: path, reason: "missing or bad \(k)") }
            return v
        }
        let act = j["hidden_act"]?.string ?? "gelu"
        guard act == "gelu" else { throw ModelFileError.unsupported(path: path, reason: "hidden_act '\(act)' (only exact gelu)") }
        if let pet = j["position_embedding_type"]?.string, pet != "absolute" {
            throw ModelFileError.unsupported(path: path, reason: "position_embedding_type '\(pet)'")
        }
        let c = BertConfig(hiddenSize: try int("hidden_size"), layers: try int("num_hidden_layers"),
                           heads: try int("num_attention_heads"), intermediateSize: try int("intermediate_size"),
                           maxPositions: try int("max_position_embeddings"), typeVocabSize: j["type_vocab_size"]?.int ?? 2,
                           layerNormEps: Float(j["layer_norm_eps"]?.double ?? 1e-12))
        var cfg = c
        switch j["model_type"]?.string ?? "bert" {
        case "bert": break
        case "roberta", "xlm-roberta", "camembert":
            cfg.family = .roberta
            cfg.positionOffset = (j["pad_token_id"]?.int ?? 1) + 1
        case let t: throw ModelFileError.unsupported(path: path, reason: "encoder model_type '\(t)' (bert, roberta, xlm-roberta)")
        }
        guard cfg.hiddenSize % cfg.heads == 0 else { throw ModelFileError.invalid(path: path, reason: "hidden_size not divisible by heads") }
        return cfg
    }
}

/// A BERT encoder (HF `BertModel`, `XLMRobertaModel`): embeddings + post-LN transformer layers
/// with exact GELU.
/// Sequences of a batch are packed row after row (no padding): the projections run over all
/// rows at once through `Linear`, attention runs per (sequence, head) in parallel.
public final class BertModel: @unchecked Sendable {
    public let config: BertConfig
    let wordEmb: Tensor
    let posEmb: [Float]
    let typeEmb: [Float]   // typeVocabSize rows
    let embLN: (w: [Float], b: [Float])

    struct Layer {
        let q: Linear, k: Linear, v: Linear, o: Linear
        let ln1: (w: [Float], b: [Float])
        let up: Linear, down: Linear
        let ln2: (w: [Float], b: [Float])
    }
    let layers: [Layer]

    public convenience init(folder: String) throws {
        let w = try SafetensorsCollection(folder: folder)
        try self.init(config: try BertConfig.load(folder: folder), weights: w, folder: folder)
    }

    package init(config: BertConfig, weights w: SafetensorsCollection, folder: String) throws {
        self.config = config
        // Checkpoints saved from BertForX / XLMRobertaForX carry the encoder under "bert." / "roberta.".
        let prefix = ["", "bert.", "roberta."].first { w.tensor($0 + "embeddings.word_embeddings.weight") != nil } ?? ""
        func t(_ n: String) throws -> Tensor {
            guard let x = w.tensor(prefix + n) else { throw ModelLoadError.missingTensor(prefix + n, file: folder) }
            return x
        }
        func vec(_ n: String, _ count: Int) throws -> [Float] {
            let x = try t(n)
            guard x.elementCount == count else { throw ModelLoadError.badShape(name: n, shape: x.shape, expected: "[\(count)]") }
            return try dequantize(x)
        }
        func lin(_ n: String) throws -> Linear { try Linear(weight: t(n + ".weight"), bias: vec(n + ".bias", t(n + ".weight").shape[0])) }
        let h = config.hiddenSize
        wordEmb = try t("embeddings.word_embeddings.weight")
        guard wordEmb.shape.count == 2, wordEmb.shape[1] == h else {
            throw ModelLoadError.badShape(name: wordEmb.name, shape: wordEmb.shape, expected: "[vocab, \(h)]")
        }
        posEmb = try vec("embeddings.position_embeddings.weight", config.maxPositions * h)
        typeEmb = try vec("embeddings.token_type_embeddings.weight", config.typeVocabSize * h)
        embLN = (try vec("embeddings.LayerNorm.weight", h), try vec("embeddings.LayerNorm.bias", h))
        var ls = [Layer]()
        for i in 0..<config.layers {
            let p = "encoder.layer.\(i)."
            ls.append(Layer(q: try lin(p + "attention.self.query"), k: try lin(p + "attention.self.key"),
                            v: try lin(p + "attention.self.value"), o: try lin(p + "attention.output.dense"),
                            ln1: (try vec(p + "attention.output.LayerNorm.weight", h), try vec(p + "attention.output.LayerNorm.bias", h)),
                            up: try lin(p + "intermediate.dense"), down: try lin(p + "output.dense"),
                            ln2: (try vec(p + "output.LayerNorm.weight", h), try vec(p + "output.LayerNorm.bias", h))))
        }
        layers = ls
    }

    public var vocabSize: Int { wordEmb.shape[0] }

    /// Last hidden states of each sequence, packed: row r of the result belongs to the sequence
    /// whose range (from `offsets`) contains r. Ids must be < vocabSize, each sequence at most
    /// `maxPositions - positionOffset` long; `types` (token type ids, default all 0) has the
    /// shape of `seqs`.
    public func forward(_ seqs: [[Int]], types: [[Int]]? = nil, pool: ThreadPool = .shared) throws -> (hidden: FloatBuffer, offsets: [Int]) {
        let h = config.hiddenSize
        var offsets = [0]
        for (i, s) in seqs.enumerated() {
            guard s.count + config.positionOffset <= config.maxPositions else {
                throw ModelLoadError.unsupported("sequence of \(s.count) tokens exceeds \(config.maxPositions - config.positionOffset) positions")
            }
            if let t = types, t[i].count != s.count { throw ModelLoadError.unsupported("token types do not match the sequence length") }
            offsets.append(offsets.last! + s.count)
        }
        let rows = offsets.last!
        let x = FloatBuffer(count: rows * h, zeroed: false)
        guard rows > 0 else { return (x, offsets) }
        try embed(seqs, types: types, into: x, pool: pool)
        let q = FloatBuffer(count: rows * h, zeroed: false), k = FloatBuffer(count: rows * h, zeroed: false)
        let v = FloatBuffer(count: rows * h, zeroed: false), ctx = FloatBuffer(count: rows * h, zeroed: false)
        let tmp = FloatBuffer(count: rows * h, zeroed: false)
        let inter = FloatBuffer(count: rows * config.intermediateSize, zeroed: false)
        for L in layers {
            // q, k and v read the same rows: one quantization of x, one parallel loop.
            Linear.forward([(L.q, q.p), (L.k, k.p), (L.v, v.p)], x: x.p, rows: rows, pool: pool)
            attend(q: q.p, k: k.p, v: v.p, out: ctx.p, offsets: offsets, pool: pool)
            L.o.forward(ctx.p, rows: rows, out: tmp.p, pool: pool)
            VectorOps.add(x.p, into: tmp.p, rows * h)
            layerNorm(tmp.p, L.ln1, rows: rows, pool: pool)
            L.up.forward(tmp.p, rows: rows, out: inter.p, pool: pool)
            let ip = inter.p, isz = config.intermediateSize
            pool.parallelFor(rows) { rr in tf_gelu_erf(ip + rr.lowerBound * isz, Int64(rr.count * isz)) }
            L.down.forward(inter.p, rows: rows, out: x.p, pool: pool)
            VectorOps.add(tmp.p, into: x.p, rows * h)
            layerNorm(x.p, L.ln2, rows: rows, pool: pool)
        }
        return (x, offsets)
    }

    /// word + position (from `positionOffset`) + token type embeddings, then LayerNorm.
    private func embed(_ seqs: [[Int]], types: [[Int]]?, into x: FloatBuffer, pool: ThreadPool) throws {
        let h = config.hiddenSize
        var r = 0
        for (si, s) in seqs.enumerated() {
            for (p, id) in s.enumerated() {
                guard id >= 0 && id < vocabSize else { throw ModelLoadError.unsupported("token id \(id) out of range") }
                let tt = types?[si][p] ?? 0
                guard tt >= 0 && tt < config.typeVocabSize else { throw ModelLoadError.unsupported("token type \(tt) out of range") }
                try dequantizeRows(wordEmb, id..<(id + 1), into: x.p + r * h)
                posEmb.withUnsafeBufferPointer { VectorOps.add($0.baseAddress! + (p + config.positionOffset) * h, into: x.p + r * h, h) }
                typeEmb.withUnsafeBufferPointer { VectorOps.add($0.baseAddress! + tt * h, into: x.p + r * h, h) }
                r += 1
            }
        }
        layerNorm(x.p, embLN, rows: r, pool: pool)
    }

    /// Self-attention per (sequence, head), in parallel: every query attends to every token of
    /// its own sequence (no mask needed, the batch is packed without padding).
    private func attend(q qp: UnsafeMutablePointer<Float>, k kp: UnsafeMutablePointer<Float>, v vp: UnsafeMutablePointer<Float>,
                        out cp: UnsafeMutablePointer<Float>, offsets offs: [Int], pool: ThreadPool) {
        let h = config.hiddenSize, nh = config.heads, d = h / nh
        let scale = 1 / Float(d).squareRoot()
        let units = (offs.count - 1) * nh
        var maxLen = 0
        for i in 0..<(offs.count - 1) { maxLen = max(maxLen, offs[i + 1] - offs[i]) }
        pool.parallelFor(units) { range in
            let kh = UnsafeMutablePointer<Float>.allocate(capacity: maxLen * d)
            let vt = UnsafeMutablePointer<Float>.allocate(capacity: maxLen * d)
            let sc = UnsafeMutablePointer<Float>.allocate(capacity: maxLen)
            defer { kh.deallocate(); vt.deallocate(); sc.deallocate() }
            for u in range {
                let si = u / nh, head = u % nh
                let start = offs[si], n = offs[si + 1] - start
                for t in 0..<n {
                    let src = (start + t) * h + head * d
                    (kh + t * d).update(from: kp + src, count: d)
                    for c in 0..<d { vt[c * n + t] = vp[src + c] }
                }
                for t in 0..<n {
                    let qrow = UnsafeRawPointer(qp + (start + t) * h + head * d)
                    _ = tf_vec_dot_rows(0, Int32(d), Int32(n), UnsafeRawPointer(kh), d * 4, qrow, sc)
                    for j in 0..<n { sc[j] *= scale }
                    VectorOps.softmax(sc, n)
                    _ = tf_vec_dot_rows(0, Int32(n), Int32(d), UnsafeRawPointer(vt), n * 4, UnsafeRawPointer(sc),
                                        cp + (start + t) * h + head * d)
                }
            }
        }
    }

    private func layerNorm(_ x: UnsafeMutablePointer<Float>, _ p: (w: [Float], b: [Float]), rows: Int, pool: ThreadPool) {
        let h = config.hiddenSize, eps = config.layerNormEps
        p.w.withUnsafeBufferPointer { wp in
            p.b.withUnsafeBufferPointer { bp in
                let w = wp.baseAddress!, b = bp.baseAddress!
                pool.parallelFor(rows) { rr in
                    tf_layer_norm_rows(x + rr.lowerBound * h, w, b, Int64(rr.count), Int64(h), eps)
                }
            }
        }
    }
}

/// The sequence-classification head of a cross-encoder (bge-reranker style), read from the
/// [CLS] / <s> row: score = out(tanh(dense(h_cls))). BERT (`BertForSequenceClassification`)
/// names the pair `bert.pooler.dense` + `classifier`; XLM-RoBERTa
/// (`XLMRobertaForSequenceClassification`) `classifier.dense` + `classifier.out_proj`.
public struct BertClassificationHead: Sendable {
    let dense: Linear
    let out: Linear
    public var labels: Int { out.outFeatures }

    package init(family: BertConfig.Family, weights w: SafetensorsCollection, folder: String, hidden: Int) throws {
        func lin(_ n: String) throws -> Linear {
            guard let wt = w.tensor(n + ".weight") else { throw ModelLoadError.missingTensor(n + ".weight", file: folder) }
            guard let b = w.tensor(n + ".bias") else { throw ModelLoadError.missingTensor(n + ".bias", file: folder) }
            guard wt.shape.count == 2, wt.shape[1] == hidden else {
                throw ModelLoadError.badShape(name: wt.name, shape: wt.shape, expected: "[_, \(hidden)]")
            }
            return try Linear(weight: wt, bias: try dequantize(b))
        }
        switch family {
        case .bert: dense = try lin("bert.pooler.dense"); out = try lin("classifier")
        case .roberta: dense = try lin("classifier.dense"); out = try lin("classifier.out_proj")
        }
    }

    /// Logits (`labels` per row) of the first row of each sequence in `hidden`.
    package func logits(_ hidden: FloatBuffer, offsets: [Int], hiddenSize h: Int, pool: ThreadPool) -> [[Float]] {
        let n = offsets.count - 1
        let cls = FloatBuffer(count: max(n, 1) * h, zeroed: false), pooled = FloatBuffer(count: max(n, 1) * h, zeroed: false)
        for i in 0..<n { (cls.p + i * h).update(from: hidden.p + offsets[i] * h, count: h) }
        dense.forward(cls.p, rows: n, out: pooled.p, pool: pool)
        for i in 0..<(n * h) { pooled.p[i] = tanh(pooled.p[i]) }
        let o = FloatBuffer(count: max(n, 1) * labels, zeroed: false)
        out.forward(pooled.p, rows: n, out: o.p, pool: pool)
        return (0..<n).map { i in Array(UnsafeBufferPointer(start: o.p + i * labels, count: labels)) }
    }
}
