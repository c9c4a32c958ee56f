import Foundation

// DeepSeek-V3's multi-token prediction (MTP) module, the paper's §2.2, as DeepSeek's inference
// code runs it. Checkpoints with `num_nextn_predict_layers` = 1 (V3, R1) carry it as one more
// layer after the last: HF `model.layers.{N}.*`, GGUF `blk.{N}.*` (block_count counts it, and
// `<arch>.nextn_predict_layers` says how many of the blocks are MTP), N = the decoder's layer count.
//
// For position i, with h_i the main model's last-layer output there (the residual stream before
// the final norm) and t_{i+1} the token that follows:
//
//   e_i  = enorm(Emb(t_{i+1}))                    the next token's embedding
//   g_i  = hnorm(h_i)                             what the model knew at i
//   x_i  = eh_proj([e_i ; g_i])                   [2H] -> [H]; embedding first, as DeepSeek's
//                                                 code concatenates (the paper's eq. 21 lists the
//                                                 hidden state first: the weights follow the code)
//   y_i  = Block_N(x)_i                           one transformer block of layer N's kind (MLA and,
//                                                 past first_k_dense_replace, the MoE block), causal
//                                                 over the MTP rows 0...i with its own KV cache and
//                                                 the token's rope position i
//   P(t_{i+2}) = softmax(head(shared_head.norm(y_i)))
//
// Row i attends to rows 0...i like any causal block. vLLM also zeroes the embedding of the row at
// position 0; SGLang and TensorRT-LLM do not, nor does this (the proposals are checked anyway).
//
// `head` is the layer's `shared_head.head` when the file has one (DeepSeek ships a copy of
// lm_head), else the model's output head; `embed_tokens` likewise. Trained to look one token
// further than the model, it drafts for speculative decoding (Generation/MTPDrafting.swift): the
// model's own hidden state carries most of the work, so one block costs ~1/61 of a V3 step.

extension WeightNaming {
    /// The MTP layer's own tensors (llama.cpp's `nextn.*`; HF names them without a prefix).
    static let hfNextNNames: [String: String] = [
        "nextn.enorm": "enorm", "nextn.hnorm": "hnorm", "nextn.eh_proj": "eh_proj",
        "nextn.embed_tokens": "embed_tokens",
        "nextn.shared_head_norm": "shared_head.norm", "nextn.shared_head_head": "shared_head.head",
    ]

    func nextn(_ i: Int, _ key: String) -> String {
        switch self {
        case .gguf: return layer(i, "nextn." + key)
        case .huggingFace: return "model.layers.\(i).\(WeightNaming.hfNextNNames["nextn." + key]!).weight"
        }
    }
}

/// What a drafter needs of an MTP block, whatever the architecture: DeepSeek-V3's
/// (`MultiTokenPrediction`, below) and DeepSeek-V4's (`DeepSeekV4MTP`, over hyper-connection
/// streams).
public protocol MTPLayer: AnyObject, Sendable {
    /// The layer's index in the file (the main model's layer count).
    var layerIndex: Int { get }
    var head: Linear { get }
    /// Floats per position of the main model's state the block reads (`HiddenStateTap` rows):
    /// the hidden size, or V4's hc_mult streams of it.
    var hiddenWidth: Int { get }
    /// Weight bytes one MTP row reads.
    var activeWeightBytesPerRow: Int { get }
    func makeCache(capacity: Int) -> KVCache
    /// MTP rows for positions cache.length ..< cache.length + tokens.count: row r takes
    /// `tokens[r]` (t_{i+1}) and `hidden` row r (h_i, `hiddenWidth` floats). Appends the rows to
    /// `cache` and returns the last `lastK` rows' logits (predictions of t_{i+2}) and every row's
    /// block output (`hiddenWidth` floats: what a chained proposal uses in place of the model's
    /// next h).
    func forward(tokens: [Int], hidden: UnsafePointer<Float>, cache: KVCache, lastK: Int) throws -> (logits: FloatBuffer, output: FloatBuffer)
}

extension MTPLayer {
    public func forward(tokens: [Int], hidden: UnsafePointer<Float>, cache: KVCache) throws -> (logits: FloatBuffer, output: FloatBuffer) {
        try forward(tokens: tokens, hidden: hidden, cache: cache, lastK: 1)
    }
}

public final class MultiTokenPrediction: MTPLayer, @unchecked Sendable {
    public let config: ModelConfig
    /// The layer's index in the file (the main model's layer count).
    public let layerIndex: Int
    let embedding: Tensor
    let enorm: RMSNorm, hnorm: RMSNorm
    /// [H, 2H]: the embedding half first.
    let ehProj: Linear
    /// MLA + MoE (or dense MLP), loaded by the same code as the model's layers.
    public let block: DecoderLayer
    let headNorm: RMSNorm
    public let head: Linear
    /// Whether `head` is the file's own shared_head.head (else the model's output head).
    public let ownHead: Bool
    let cacheWidth: Int

    init(config: ModelConfig, layerIndex: Int, embedding: Tensor, enorm: RMSNorm, hnorm: RMSNorm, ehProj: Linear,
         block: DecoderLayer, headNorm: RMSNorm, head: Linear, ownHead: Bool, cacheWidth: Int) {
        self.config = config; self.layerIndex = layerIndex; self.embedding = embedding
        self.enorm = enorm; self.hnorm = hnorm; self.ehProj = ehProj; self.block = block
        self.headNorm = headNorm; self.head = head; self.ownHead = ownHead; self.cacheWidth = cacheWidth
    }

    /// Layer `i`'s MTP module of a DeepSeek-V3 file; `model` lends the embedding and head when
    /// the layer has none of its own.
    static func load(config c: ModelConfig, weights w: WeightLoader, layer i: Int, model: TransformerModel,
                     rope: Rope) throws -> MultiTokenPrediction {
        let n = w.naming, H = c.hiddenSize, eps = Float(c.rmsNormEps)
        let eh = try w.linear(n.nextn(i, "eh_proj"))
        guard eh.inFeatures == 2 * H, eh.outFeatures == H else {
            throw ModelLoadError.badShape(name: eh.weight.name, shape: eh.weight.shape, expected: "[\(H), \(2 * H)]")
        }
        let attention = try DeepSeekDecoder.latentAttention(config: c, weights: w, layer: i, rope: rope)
        let block = try MoEDecoder.decoderLayer(config: c, weights: w, layer: i, attention: attention)
        let embName = n.nextn(i, "embed_tokens"), headName = n.nextn(i, "shared_head_head")
        let embedding = w.has(embName) ? try w.tensor(embName) : model.embedding
        guard embedding.shape == model.embedding.shape else {
            throw ModelLoadError.badShape(name: embName, shape: embedding.shape, expected: "\(model.embedding.shape)")
        }
        let head = w.has(headName) ? try w.linear(headName) : model.outputHead
        guard head.inFeatures == H, head.outFeatures == model.outputHead.outFeatures else {
            throw ModelLoadError.badShape(name: headName, shape: head.weight.shape, expected: "[\(model.outputHead.outFeatures), \(H)]")
        }
        // shared_head.norm is optional in llama.cpp's loader; DeepSeek's files always have it.
        let headNorm = try w.optionalFloats(n.nextn(i, "shared_head_norm")).map { RMSNorm(weight: $0, eps: eps) } ?? model.finalNorm
        return MultiTokenPrediction(
            config: c, layerIndex: i, embedding: embedding,
            enorm: RMSNorm(weight: try w.floats(n.nextn(i, "enorm")), eps: eps),
            hnorm: RMSNorm(weight: try w.floats(n.nextn(i, "hnorm")), eps: eps),
            ehProj: eh, block: block, headNorm: headNorm, head: head, ownHead: w.has(headName),
            cacheWidth: attention.cacheWidth)
    }

    /// Weight bytes one MTP row reads: eh_proj, the block's active weights (routed experts: the
    /// mean expert times the number chosen), the head and one embedding row. A proposal's cost
    /// next to `TransformerModel.activeWeightBytesPerToken`, a model step's.
    public var activeWeightBytesPerRow: Int {
        let attention = (block.attention as? ActiveWeights)?.activeWeightBytesPerToken ?? linearBytes(in: block.attention)
        let ffn = (block.feedForward as? ActiveWeights)?.activeWeightBytesPerToken ?? linearBytes(in: block.feedForward)
        return ehProj.weight.byteCount + attention + ffn + head.weight.byteCount + embedding.rowBytes
    }

    public var hiddenWidth: Int { config.hiddenSize }

    /// The block's own cache: one MLA layer, one [c_KV | k_rope] row per MTP position.
    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layers: 1, capacity: capacity, kWidth: cacheWidth, vWidth: 0)
    }

    /// See `MTPLayer.forward`: h_i is the residual stream (hiddenSize floats), the output y.
    public func forward(tokens: [Int], hidden: UnsafePointer<Float>, cache: KVCache,
                        lastK: Int) throws -> (logits: FloatBuffer, output: FloatBuffer) {
        let T = tokens.count, H = config.hiddenSize
        guard T > 0 else { return (FloatBuffer(count: 0), FloatBuffer(count: 0)) }
        guard cache.length + T <= cache.capacity else { throw ContextFullError(needed: cache.length + T, capacity: cache.capacity) }
        // [enorm(Emb(t_{i+1})) | hnorm(h_i)] per row, then eh_proj.
        let eh = FloatBuffer(count: T * 2 * H, zeroed: false)
        let e = FloatBuffer(count: H, zeroed: false)
        for (r, id) in tokens.enumerated() {
            guard id >= 0, id < embedding.shape[0] else { throw ModelLoadError.unsupported("token id \(id) is outside the vocabulary") }
            try dequantizeRow(embedding.type, embedding.data + id * embedding.rowBytes, e.p, count: H)
            enorm.forward(e.p, rows: 1, out: eh.p + r * 2 * H)
            hnorm.forward(hidden + r * H, rows: 1, out: eh.p + r * 2 * H + H)
        }
        let x = FloatBuffer(count: T * H, zeroed: false)
        ehProj.forward(eh.p, rows: T, out: x.p)
        // The block, on its own cache (layer 0 of it), at the rows' positions.
        block.forward(x.p, segments: [BatchSegment(cache: cache, row: 0, count: T)], layer: 0, rows: T, width: H)
        cache.length += T
        // shared_head: norm, then the head, on the rows whose logits are wanted.
        let k = min(max(lastK, 1), T)
        let y = FloatBuffer(count: k * H, zeroed: false)
        headNorm.forward(x.p + (T - k) * H, rows: k, out: y.p)
        let V = head.outFeatures
        let logits = FloatBuffer(count: k * V, zeroed: false)
        head.forward(y.p, rows: k, out: logits.p)
        head.refineTop(y.p, rows: k, out: logits.p, topK: TransformerModel.refinedLogits)
        return (logits, x)
    }
}

/// The main model's last-layer outputs (before the final norm) by position, kept for an MTP
/// drafter: `TransformerModel.forwardBatch` writes every row it computes for a cache that has
/// a tap; the drafter reads the rows it has not consumed yet and drops the rest.
public final class HiddenStateTap: @unchecked Sendable {
    public let width: Int
    /// Off while the cache's owner runs requests that are not drafted (sampled ones): their rows
    /// would wait unconsumed (H floats per position, 28 KB on V3), so they are not kept.
    public var recording = true
    private var rows: [Int: [Float]] = [:]
    private let lock = NSLock()
    public init(width: Int) { self.width = width }

    func store(position: Int, _ row: UnsafePointer<Float>) {
        let v = Array(UnsafeBufferPointer(start: row, count: width))
        lock.lock(); rows[position] = v; lock.unlock()
    }
    public func row(_ position: Int) -> [Float]? { lock.lock(); defer { lock.unlock() }; return rows[position] }
    /// Forgets the rows before `position` (consumed).
    func drop(below position: Int) {
        lock.lock(); rows = rows.filter { $0.key >= position }; lock.unlock()
    }
    public var count: Int { lock.lock(); defer { lock.unlock() }; return rows.count }
}

extension TransformerModel {
    /// Main-model logits and, per row, the last-layer output before the final norm (what the
    /// MTP module reads): runs `tokens` after `cache` like `forward`.
    public func forwardWithHidden(_ tokens: [Int], cache: KVCache, lastK: Int = 1) throws -> (logits: FloatBuffer, hidden: FloatBuffer) {
        let W = tappedWidth
        let tap = HiddenStateTap(width: W)
        let before = cache.hiddenTap, start = cache.length
        cache.hiddenTap = tap
        defer { cache.hiddenTap = before }
        let logits = try forward(tokens, cache: cache, lastK: lastK)
        let hidden = FloatBuffer(count: tokens.count * W, zeroed: false)
        for r in 0..<tokens.count {
            (hidden.p + r * W).update(from: tap.row(start + r)!, count: W)
            if let b = before { b.store(position: start + r, hidden.p + r * W) }
        }
        return (logits, hidden)
    }

    /// Floats per position a hidden-state tap records: the residual stream, or DeepSeek-V4's
    /// hyper-connection streams (before `hc_head` collapses them).
    public var tappedWidth: Int { config.hiddenSize * (hyperHead?.hcMult ?? 1) }
}
