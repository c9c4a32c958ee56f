import Foundation
import CKernels

// DeepSeek-V3.2 (config `deepseek_v32`, GGUF `deepseek32`): DeepSeek-V3 — MLA and the V3 MoE
// block, unchanged — with DeepSeek Sparse Attention (DSA) in every layer.
//
// DSA in the order of the V3.2 report (§2.1), with the config's names:
//
//   lightning indexer   q^I_t = wq_b(c_Q_t)             [index_n_heads × index_head_dim], from MLA's
//                                                        normalised query latent c_Q (q_lora_rank)
//                       k^I_s = k_norm(wk(h_s))          [index_head_dim], one key shared by all heads;
//                                                        k_norm is a LayerNorm (weight and bias)
//                       both rope'd on their first qk_rope_head_dim values, rotate-half layout
//                       (MLA itself rotates adjacent pairs), same frequencies as MLA
//                       w_t   = weights_proj(h_t)        [index_n_heads]
//                       I_t,s = Σ_j w_t,j · ReLU(q^I_t,j · k^I_s)   (scaled by index_n_heads^-½ and
//                                                        index_head_dim^-½, folded into w here)
//   token selection     S_t = the index_topk positions s ≤ t with the largest I_t,s
//                       (all of them while t + 1 ≤ index_topk)
//   attention           MLA over the latent cache rows in S_t only
//
// The cache per token and layer: MLA's [c_KV | k_rope] (kv_lora_rank + qk_rope_head_dim values)
// in the key rows, the indexer key k^I (index_head_dim values) in the value rows — MLA has no
// values of its own, so the cache's second row per position holds what the indexer reads. A
// decode step scores every cached indexer key (index_head_dim values each) but reads only
// index_topk latent rows (`MultiHeadLatentAttention.latentRowsRead` counts them).
//
// The indexer in DeepSeek's own kernels rotates q and k with a Hadamard transform and scores in
// FP8; the transform is orthogonal (dot products unchanged) and the rest is precision, so this
// scores in f32 as transformers does.

/// The lightning indexer's sizes, as config.json names them.
public struct SparseAttentionConfig: Equatable, Sendable {
    /// `index_topk`: cached positions each query attends to.
    public var indexTopK: Int
    /// `index_n_heads`: indexer query heads.
    public var indexNHeads: Int
    /// `index_head_dim`: width of an indexer query head and of the shared indexer key.
    public var indexHeadDim: Int
}

extension ModelConfig {
    /// config.json's DSA fields (transformers' defaults when absent) and V3.2's dense layers:
    /// `mlp_layer_types` when given (transformers 5 writes it), else `first_k_dense_replace` (3).
    mutating func readSparseAttention(hf j: JSONValue, path: String) throws {
        func int(_ k: String, _ d: Int) throws -> Int {
            guard let v = j[k] else { return d }
            guard let x = v.int, x > 0 else { throw ConfigError(message: "\(path): '\(k)' must be a positive integer") }
            return x
        }
        dsa = SparseAttentionConfig(indexTopK: try int("index_topk", 2048), indexNHeads: try int("index_n_heads", 64),
                                    indexHeadDim: try int("index_head_dim", 128))
        if let types = j["mlp_layer_types"]?.array {
            let t = types.compactMap(\.string)
            guard t.count == numLayers, t.allSatisfy({ $0 == "dense" || $0 == "sparse" }) else {
                throw ConfigError(message: "\(path): mlp_layer_types must list 'dense' or 'sparse' for each of the \(numLayers) layers")
            }
            // Leading dense layers as first_k_dense_replace (what GGUF can say), any others listed.
            let lead = t.prefix { $0 == "dense" }.count
            moe?.firstKDenseReplace = lead
            moe?.mlpOnlyLayers = t.indices.filter { $0 >= lead && t[$0] == "dense" }
        } else {
            moe?.firstKDenseReplace = j["first_k_dense_replace"]?.int ?? 3
        }
        try checkSparseAttention(path)
    }

    /// The `deepseek32.*` keys llama.cpp writes: attention.indexer.{head_count, key_length, top_k};
    /// block_count includes the `nextn_predict_layers` multi-token-prediction blocks, not decoded.
    mutating func readSparseAttention(gguf g: GGUFFile) throws {
        func req(_ k: String) throws -> Int {
            guard let x = g.archValue(k)?.int, x > 0 else { throw ConfigError(message: "\(g.path): missing or invalid '\(g.architecture ?? "").\(k)'") }
            return x
        }
        dsa = SparseAttentionConfig(indexTopK: try req("attention.indexer.top_k"), indexNHeads: try req("attention.indexer.head_count"),
                                    indexHeadDim: try req("attention.indexer.key_length"))
        let nextn = g.archValue("nextn_predict_layers")?.int ?? 0
        guard nextn >= 0, nextn < numLayers else { throw ConfigError(message: "\(g.path): nextn_predict_layers \(nextn) of \(numLayers) blocks") }
        numLayers -= nextn
        try checkSparseAttention(g.path)
    }

    private func checkSparseAttention(_ path: String) throws {
        guard let d = dsa, let m = mla else { return }
        guard m.qLoraRank != nil else {
            throw ConfigError(message: "\(path): DeepSeek Sparse Attention's indexer reads the query latent: q_lora_rank is required")
        }
        guard d.indexHeadDim >= m.qkRopeHeadDim, m.qkRopeHeadDim % 2 == 0 else {
            throw ConfigError(message: "\(path): index_head_dim \(d.indexHeadDim) must hold the qk_rope_head_dim \(m.qkRopeHeadDim) rotated values")
        }
    }
}

/// LayerNorm with weight and bias (the indexer's k_norm, eps 1e-6 as in DeepSeek's code).
public struct LayerNorm {
    public let weight: [Float], bias: [Float]
    public let eps: Float

    public func forward(_ x: UnsafeMutablePointer<Float>, rows: Int) {
        weight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                tf_layer_norm_rows(x, w.baseAddress!, b.baseAddress!, Int64(rows), Int64(weight.count), eps)
            }
        }
    }
}

/// The lightning indexer of one layer: stores each token's indexer key and picks, per query,
/// the cached positions its attention reads.
public final class LightningIndexer {
    let config: SparseAttentionConfig
    /// wq_b [index_n_heads × index_head_dim, q_lora_rank], wk [index_head_dim, hidden],
    /// weights_proj [index_n_heads, hidden].
    let wqB: Linear, wk: Linear, weightsProj: Linear
    let kNorm: LayerNorm
    let rope: Rope

    public init(config d: SparseAttentionConfig, wqB: Linear, wk: Linear, kNorm: LayerNorm, weightsProj: Linear, rope: Rope) throws {
        let H = d.indexNHeads, D = d.indexHeadDim
        guard wqB.outFeatures == H * D, wk.outFeatures == D, weightsProj.outFeatures == H, kNorm.weight.count == D,
              kNorm.bias.count == D, rope.layout == .halves, rope.dim <= D else {
            throw ModelLoadError.unsupported("DSA indexer weights do not match index_n_heads \(H), index_head_dim \(D)")
        }
        config = d
        self.wqB = wqB; self.wk = wk; self.kNorm = kNorm; self.weightsProj = weightsProj; self.rope = rope
    }

    /// k^I = rope(k_norm(wk(h))) of each new token, into the cache's value row at its position.
    func storeKeys(_ x: UnsafePointer<Float>, segments: [BatchSegment], rows T: Int, layer: Int) {
        let D = config.indexHeadDim
        let k = FloatBuffer(count: T * D, zeroed: false)
        wk.forward(x, rows: T, out: k.p)
        kNorm.forward(k.p, rows: T)
        var cosT = [Float](repeating: 0, count: rope.dim / 2), sinT = cosT
        for seg in segments {
            for r in seg.rows {
                let pos = seg.position(ofRow: r)
                rope.table(position: pos, cos: &cosT, sin: &sinT)
                rope.apply(k.p + r * D, nHeads: 1, headStride: D, cos: cosT, sin: sinT)
                seg.cache.storeValue(layer, pos, k.p + r * D)
            }
        }
    }

    /// Per batch row, the cached positions (ascending) its attention reads: the index_topk best
    /// by I_t,s, or every position while there are no more than index_topk of them.
    func select(_ x: UnsafePointer<Float>, cq: UnsafePointer<Float>, segments: [BatchSegment], rows T: Int,
                layer: Int) -> [[Int32]] {
        let H = config.indexNHeads, D = config.indexHeadDim
        let q = FloatBuffer(count: T * H * D, zeroed: false)
        let w = FloatBuffer(count: T * H, zeroed: false)
        wqB.forward(cq, rows: T, out: q.p)
        weightsProj.forward(x, rows: T, out: w.p)
        VectorOps.scale(w.p, 1 / (Float(H).squareRoot() * Float(D).squareRoot()), T * H)
        var cosT = [Float](repeating: 0, count: rope.dim / 2), sinT = cosT
        var selection = [[Int32]](repeating: [], count: T)
        for seg in segments {
            for r in seg.rows {
                let n = seg.position(ofRow: r) + 1
                guard n > config.indexTopK else { selection[r] = (0..<Int32(n)).map { $0 }; continue }
                rope.table(position: n - 1, cos: &cosT, sin: &sinT)
                rope.apply(q.p + r * H * D, nHeads: H, headStride: D, cos: cosT, sin: sinT)
                let scores = indexScores(q: q.p + r * H * D, w: w.p + r * H, cache: seg.cache, layer: layer, count: n)
                let best = scores.withUnsafeBufferPointer { VectorOps.largest($0.baseAddress!, n, config.indexTopK) }
                selection[r] = best.map { Int32($0.id) }.sorted()
            }
        }
        return selection
    }

    /// I_t,s = Σ_j w_j ReLU(q_j · k_s) for the query's n causal positions s (keys read from the cache).
    func indexScores(q: UnsafePointer<Float>, w: UnsafePointer<Float>, cache: KVCache, layer: Int, count n: Int) -> [Float] {
        let H = config.indexNHeads, D = config.indexHeadDim
        var scores = [Float](repeating: 0, count: n)
        scores.withUnsafeMutableBufferPointer { sp in
            let s = sp.baseAddress!
            ThreadPool.shared.parallelFor(n, grain: 64) { range in
                let keys: UnsafePointer<Float>
                var copy: FloatBuffer? = nil
                if cache.valueType == .f32 {
                    keys = UnsafePointer(cache.values[layer].p + range.lowerBound * D)
                } else {
                    let b = FloatBuffer(count: range.count * D, zeroed: false)
                    cache.readValues(layer, range, into: b.p)
                    keys = UnsafePointer(b.p); copy = b
                }
                for (i, pos) in range.enumerated() {
                    var sum: Float = 0
                    for j in 0..<H { sum += w[j] * max(0, VectorOps.dot(q + j * D, keys + i * D, D)) }
                    s[pos] = sum
                }
                withExtendedLifetime(copy) {}
            }
        }
        return scores
    }
}

/// MLA whose queries attend only to the positions the layer's lightning indexer selects.
public final class SparseLatentAttention: AttentionBlock {
    public let mla: MultiHeadLatentAttention
    public let indexer: LightningIndexer
    /// Keep every query row's selection in `selections` (tests, inspection).
    public var recordSelections = false
    /// The selections made while `recordSelections` is on, one per query row in processing order.
    public private(set) var selections: [[Int32]] = []
    public func clearSelections() { selections = [] }

    public init(mla: MultiHeadLatentAttention, indexer: LightningIndexer) {
        self.mla = mla; self.indexer = indexer
    }

    /// Both cached rows ([c_KV | k_rope] and k^I) are quantized whole: the block must divide both.
    public func cacheRowAlignment() -> Int? {
        var a = mla.cacheWidth, b = indexer.config.indexHeadDim
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    public func forward(_ x: UnsafePointer<Float>, segments: [BatchSegment], layer: Int, out: UnsafeMutablePointer<Float>) {
        let T = segments.reduce(0) { $0 + $1.count }
        let (q, cq) = mla.project(x, segments: segments, layer: layer)
        indexer.storeKeys(x, segments: segments, rows: T, layer: layer)
        let selection = indexer.select(x, cq: cq!.p, segments: segments, rows: T, layer: layer)
        if recordSelections { selections += selection }
        mla.attend(q: q, segments: segments, layer: layer, selection: selection, out: out)
    }
}

extension SparseLatentAttention: ActiveWeights {
    /// MLA's weights plus the indexer's projections and k_norm.
    public var activeWeightBytesPerToken: Int {
        mla.activeWeightBytesPerToken + [indexer.wqB, indexer.wk, indexer.weightsProj].reduce(0) { $0 + $1.weight.byteCount }
            + indexer.kNorm.weight.count * 8
    }
}

/// DeepSeek-V3.2: DeepSeek-V3's layers with each MLA block wrapped in DSA.
public enum DeepSeekV32Decoder {
    public static func load(config c: ModelConfig, weights w: WeightLoader) throws -> TransformerModel {
        guard let mla = c.mla, let dsa = c.dsa else { throw ModelLoadError.unsupported("DeepSeek-V3.2 config without MLA and index_* sizes") }
        let rope = Rope(config: c)
        // The indexer rotates the same frequencies as MLA (YaRN included), in the rotate-half layout.
        let indexRope = Rope(dim: c.ropeDim, theta: c.ropeTheta, scaling: c.ropeScaling, layout: .halves,
                             maxPositionEmbeddings: c.maxPositionEmbeddings)
        var layers = [DecoderLayer]()
        for i in 0..<c.numLayers {
            let n = w.naming
            let indexer = try LightningIndexer(
                config: dsa, wqB: try w.layerLinear(i, "indexer.attn_q_b"), wk: try w.layerLinear(i, "indexer.attn_k"),
                kNorm: LayerNorm(weight: try w.floats(n.layer(i, "indexer.k_norm")),
                                 bias: try w.floats(n.layer(i, "indexer.k_norm", "bias")), eps: 1e-6),
                weightsProj: try w.layerLinear(i, "indexer.proj"), rope: indexRope)
            let attention = SparseLatentAttention(mla: try DeepSeekDecoder.latentAttention(config: c, weights: w, layer: i, rope: rope),
                                                  indexer: indexer)
            layers.append(try MoEDecoder.decoderLayer(config: c, weights: w, layer: i, attention: attention))
        }
        return try DenseDecoder.assemble(config: c, weights: w, layers: layers,
                                         cacheKWidth: mla.kvLoraRank + mla.qkRopeHeadDim, cacheVWidth: dsa.indexHeadDim)
    }
}

extension TransformerModel {
    /// The DSA blocks (empty for other architectures).
    public var sparseAttentionBlocks: [SparseLatentAttention] { layers.compactMap { $0.attention as? SparseLatentAttention } }
}
