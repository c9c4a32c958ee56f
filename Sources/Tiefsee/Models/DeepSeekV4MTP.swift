import Foundation

// DeepSeek-V4's multi-token-prediction block (`mtp.0.*`, DeepSeek's `MTPBlock`), which drafts for
// `--mtp` as V3's does (MultiTokenPrediction.swift) but reads the hyper-connection streams. For
// MTP row i (position i), with S_i the main model's hc_mult streams after its last layer at i (what
// hc_head would collapse) and t_{i+1} the token that follows:
//
//   e_i   = e_proj(enorm(Emb(t_{i+1})))                 added to every stream
//   X_i,k = e_i + h_proj(hnorm(S_i,k))                  per stream k (hnorm over each stream)
//   Y_i   = Block_N(X)_i                                one V4 block: attn_hc, sliding-window
//                                                       attention with sinks on its own cache,
//                                                       ffn_hc, the score-routed MoE block
//   P(t_{i+2}) = softmax(head(norm(hc_head_mtp(Y_i))))  the model's head, the block's own
//                                                       hc_head_fn/base/scale and norm
//
// The block is layer N = num_hidden_layers of the checkpoint's layout, without a compressor:
// DeepSeek's V4 checkpoints ship it as sliding-window attention (no compressor tensors under
// mtp.0.*), with top-k routing (past the hash layers). Its cache is a one-layer DeepSeekV4Cache,
// which can take back the positions a chained proposal adds.

public final class DeepSeekV4MTP: MTPLayer, @unchecked Sendable {
    public let layerIndex: Int
    let hidden: Int, hcMult: Int
    let embedding: Tensor
    let enorm: RMSNorm, hnorm: RMSNorm, norm: RMSNorm
    let eProj: Linear, hProj: Linear
    let block: DecoderLayer
    let hcHead: HyperHead
    public let head: Linear
    /// The block's cache layout: one sliding-window layer.
    let cacheConfig: DeepSeekV4Config

    init(layerIndex: Int, hidden: Int, hcMult: Int, embedding: Tensor, enorm: RMSNorm, hnorm: RMSNorm, norm: RMSNorm,
         eProj: Linear, hProj: Linear, block: DecoderLayer, hcHead: HyperHead, head: Linear, cacheConfig: DeepSeekV4Config) {
        self.layerIndex = layerIndex; self.hidden = hidden; self.hcMult = hcMult; self.embedding = embedding
        self.enorm = enorm; self.hnorm = hnorm; self.norm = norm; self.eProj = eProj; self.hProj = hProj
        self.block = block; self.hcHead = hcHead; self.head = head; self.cacheConfig = cacheConfig
    }

    /// The block of a V4 checkpoint (`w` names it as layer c.numLayers, see DeepSeekV4Checkpoint).
    static func load(config c: ModelConfig, weights w: WeightLoader, model: TransformerModel, rope: Rope,
                     compressRope: Rope) throws -> DeepSeekV4MTP {
        guard var v = c.v4 else { throw ModelLoadError.unsupported("DeepSeek-V4 config without its attention settings") }
        let n = c.numLayers, H = c.hiddenSize, eps = Float(c.rmsNormEps)
        func norm(_ name: String) throws -> RMSNorm { RMSNorm(weight: try w.floats(name), eps: eps) }
        func square(_ name: String) throws -> Linear {
            let l = try w.linear(name)
            guard l.inFeatures == H, l.outFeatures == H else {
                throw ModelLoadError.badShape(name: l.weight.name, shape: l.weight.shape, expected: "[\(H), \(H)]")
            }
            return l
        }
        let eProj = try square("mtp.0.e_proj.weight"), hProj = try square("mtp.0.h_proj.weight")
        if w.has("model.layers.\(n).self_attn.compressor.kv_proj.weight") {
            throw ModelLoadError.unsupported("the MTP block has a compressor; only a sliding-window MTP block (as DeepSeek ships) is supported")
        }
        // The block as one more layer of the model: sliding-window attention, top-k routing.
        var cm = c
        v.layerTypes.append(.slidingAttention); v.compressRatios.append(0); v.hashLayers.append(false)
        cm.v4 = v
        let attention = try DeepSeekV4Decoder.attention(cm, w, n, rope: rope, compressRope: compressRope)
        let block = try MoEDecoder.decoderLayer(config: cm, weights: w, layer: n, attention: attention)
        guard let moe = block.feedForward as? MoEBlock else { throw ModelLoadError.unsupported("the DeepSeek-V4 MTP block is not sparse") }
        moe.swigluLimit = v.swigluLimit
        block.hyperConnections = (try DeepSeekV4Decoder.hyperConnection(w, "model.layers.\(n).attn_hc", cm),
                                  try DeepSeekV4Decoder.hyperConnection(w, "model.layers.\(n).ffn_hc", cm))
        let hcHead = try HyperHead(fn: w.linear("mtp.0.hc_head_fn"), base: w.floats("mtp.0.hc_head_base"),
                                   scale: w.floats("mtp.0.hc_head_scale"), config: c)
        var one = v
        one.layerTypes = [.slidingAttention]; one.compressRatios = [0]; one.hashLayers = [false]
        return DeepSeekV4MTP(layerIndex: n, hidden: H, hcMult: v.hcMult, embedding: model.embedding,
                             enorm: try norm("mtp.0.enorm.weight"), hnorm: try norm("mtp.0.hnorm.weight"), norm: try norm("mtp.0.norm.weight"),
                             eProj: eProj, hProj: hProj, block: block, hcHead: hcHead, head: model.outputHead, cacheConfig: one)
    }

    public var hiddenWidth: Int { hcMult * hidden }

    public var activeWeightBytesPerRow: Int {
        let attention = (block.attention as? ActiveWeights)?.activeWeightBytesPerToken ?? 0
        let ffn = (block.feedForward as? ActiveWeights)?.activeWeightBytesPerToken ?? 0
        let hc = (block.hyperConnections.map { $0.attention.fn.weight.byteCount + $0.feedForward.fn.weight.byteCount } ?? 0) + hcHead.fn.weight.byteCount
        return eProj.weight.byteCount + hProj.weight.byteCount + attention + ffn + hc + head.weight.byteCount + embedding.rowBytes
    }

    public func makeCache(capacity: Int) -> KVCache { DeepSeekV4Cache(config: cacheConfig, capacity: capacity) }

    public func forward(tokens: [Int], hidden streamsIn: UnsafePointer<Float>, cache: KVCache,
                        lastK: Int) throws -> (logits: FloatBuffer, output: FloatBuffer) {
        let T = tokens.count, H = hidden, N = hcMult, W = N * H
        guard T > 0 else { return (FloatBuffer(count: 0), FloatBuffer(count: 0)) }
        guard cache is DeepSeekV4Cache else { throw ModelLoadError.unsupported("the DeepSeek-V4 MTP block runs on its own cache (makeCache)") }
        guard cache.length + T <= cache.capacity else { throw ContextFullError(needed: cache.length + T, capacity: cache.capacity) }
        // e_proj(enorm(Emb(t_{i+1}))) per row.
        let e = FloatBuffer(count: T * H, zeroed: false)
        for (r, id) in tokens.enumerated() {
            guard id >= 0, id < embedding.shape[0] else { throw ModelLoadError.unsupported("token id \(id) is outside the vocabulary") }
            try dequantizeRow(embedding.type, embedding.data + id * embedding.rowBytes, e.p + r * H, count: H)
        }
        enorm.forward(e.p, rows: T, out: e.p)
        let pe = FloatBuffer(count: T * H, zeroed: false)
        eProj.forward(e.p, rows: T, out: pe.p)
        // h_proj(hnorm(stream)) for each of the T·N streams, plus the row's e.
        let normed = FloatBuffer(count: T * W, zeroed: false)
        hnorm.forward(streamsIn, rows: T * N, out: normed.p)
        let streams = FloatBuffer(count: T * W, zeroed: false)
        hProj.forward(normed.p, rows: T * N, out: streams.p)
        for r in 0..<T { for k in 0..<N { VectorOps.axpy(1, pe.p + r * H, streams.p + (r * N + k) * H, H) } }
        // The block, on its own cache (layer 0 of it), at the rows' positions.
        let h = FloatBuffer(count: T * H, zeroed: false), y = FloatBuffer(count: T * H, zeroed: false)
        try block.forwardHyperConnected(streams.p, tokens: tokens, segments: [BatchSegment(cache: cache, row: 0, count: T)],
                                        layer: 0, scratch: (h, y))
        cache.length += T
        // The block's hc_head and norm, then the model's head, on the rows whose logits are wanted.
        let k = min(max(lastK, 1), T)
        let last = FloatBuffer(count: k * H, zeroed: false)
        hcHead.collapse(streams.p + (T - k) * W, count: k, into: last.p)
        norm.forward(last.p, rows: k, out: last.p)
        let V = head.outFeatures
        let logits = FloatBuffer(count: k * V, zeroed: false)
        head.forward(last.p, rows: k, out: logits.p)
        head.refineTop(last.p, rows: k, out: logits.p, topK: TransformerModel.refinedLogits)
        return (logits, streams)
    }
}
