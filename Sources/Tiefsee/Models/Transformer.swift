import Foundation

/// The decoder shared by every family: embeddings → N × (RMSNorm → attention → residual →
/// RMSNorm → feed-forward → residual) → RMSNorm → output head. Families differ only in the
/// attention block (grouped-query or latent) and the feed-forward block (dense or MoE),
/// which their own files build with their config readers (Llama.swift: dense families and the
/// grouped-query loading Mixtral/Qwen-MoE share; MoE.swift; DeepSeek.swift, DeepSeekV32.swift,
/// DeepSeekV4.swift). ModelConfig.swift reads the shared fields and dispatches by family.
public protocol AttentionBlock: AnyObject {
    /// x: normalized rows of one or more sequences (see `BatchSegment`); writes as many rows to
    /// `out` and stores this layer's keys/values in each segment's cache (the caller advances
    /// cache.length after the last layer).
    func forward(_ x: UnsafePointer<Float>, segments: [BatchSegment], layer: Int, out: UnsafeMutablePointer<Float>)
    /// The run of cached values a quantized cache block must not straddle (a head's width for
    /// grouped-query attention, the row for MLA); nil: the block reads its cache as f32 only.
    func cacheRowAlignment() -> Int?
}

extension AttentionBlock {
    public func cacheRowAlignment() -> Int? { nil }
}

/// A run of consecutive rows of a batch that belong to one sequence: rows
/// `row ..< row + count` hold positions `cache.length ..< cache.length + count` of it.
/// Projections run over the whole batch at once; attention runs per segment.
public struct BatchSegment {
    public let cache: KVCache
    public let row: Int
    public let count: Int
    public init(cache: KVCache, row: Int, count: Int) { self.cache = cache; self.row = row; self.count = count }
    /// Position of batch row `r` (which must lie in this segment).
    @inline(__always) public func position(ofRow r: Int) -> Int { cache.length + (r - row) }
    public var rows: Range<Int> { row..<row + count }
}

public protocol FeedForwardBlock: AnyObject {
    func forward(_ x: UnsafePointer<Float>, count T: Int, out: UnsafeMutablePointer<Float>)
}

/// Weight bytes one token reads from memory: the decode roofline is bandwidth ÷ this.
/// The default counts every `Linear` a block holds; MoE blocks count only the experts a token
/// uses on average (per-token active weights), which is why MoE decodes fast.
public protocol ActiveWeights {
    var activeWeightBytesPerToken: Int { get }
}

extension ActiveWeights {
    public var activeWeightBytesPerToken: Int { linearBytes(in: self) }
}

/// Sums the weight bytes of every `Linear` stored in `value` (directly or in arrays/optionals).
func linearBytes(in value: Any) -> Int {
    if let l = value as? Linear { return l.weight.byteCount }
    var total = 0
    for child in Mirror(reflecting: value).children {
        if let l = child.value as? Linear { total += l.weight.byteCount }
        else if let arr = child.value as? [Linear] { total += arr.reduce(0) { $0 + $1.weight.byteCount } }
        else if let opt = child.value as? Linear? , let l = opt { total += l.weight.byteCount }
        else if let mlp = child.value as? GatedMLP { total += linearBytes(in: mlp) }
    }
    return total
}

extension GroupedQueryAttention: ActiveWeights {}
extension GatedMLP: ActiveWeights {}

extension MoEBlock: ActiveWeights {
    /// Router + shared experts + the chosen experts (k of them, at their average size).
    public var activeWeightBytesPerToken: Int {
        let expertBytes = experts.map { linearBytes(in: $0) }
        let mean = expertBytes.isEmpty ? 0 : expertBytes.reduce(0, +) / expertBytes.count
        return router.gate.weight.byteCount + (shared.map { linearBytes(in: $0) } ?? 0)
            + router.config.numExpertsPerToken * mean + (sharedGate?.count ?? 0) * 4
    }
}

extension MultiHeadLatentAttention: ActiveWeights {
    /// Projections, the absorbed per-head W_UKᵀ / W_UV matrices and the inner norms, all read
    /// every decode step. Listed explicitly: `linearBytes`' reflection bridges [Float] members to
    /// NSArray on Linux, which took seconds at startup.
    public var activeWeightBytesPerToken: Int {
        let projections = [qProj, qAProj, qBProj, kvAProjWithMQA, oProj].compactMap { $0 } + ukT + uv
        return projections.reduce(0) { $0 + $1.weight.byteCount }
            + (kvANorm.weight.count + (qANorm?.weight.count ?? 0)) * 4
    }
}

public struct RMSNorm {
    public let weight: [Float]
    public let eps: Float

    public func forward(_ x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>) {
        let n = weight.count
        weight.withUnsafeBufferPointer { w in
            for r in 0..<rows { VectorOps.rmsNorm(x + r * n, w.baseAddress!, out + r * n, n, eps: eps) }
        }
    }
}

public final class DecoderLayer {
    public let attentionNorm: RMSNorm
    public let attention: AttentionBlock
    public let ffnNorm: RMSNorm
    public let feedForward: FeedForwardBlock
    /// DeepSeek-V4's mHC (DeepSeekV4.swift): the residual is `hc_mult` streams that these
    /// collapse into each block's input and mix its output back into; nil: x += block(norm(x)).
    public var hyperConnections: (attention: HyperConnection, feedForward: HyperConnection)?

    public init(attentionNorm: RMSNorm, attention: AttentionBlock, ffnNorm: RMSNorm, feedForward: FeedForwardBlock) {
        self.attentionNorm = attentionNorm; self.attention = attention
        self.ffnNorm = ffnNorm; self.feedForward = feedForward
    }

    /// The pre-norm residual block on `rows` rows of `x` (width values each), in place:
    /// x += attention(norm(x)); x += feedForward(norm(x)). `scratch`: two rows × width buffers.
    public func forward(_ x: UnsafeMutablePointer<Float>, segments: [BatchSegment], layer i: Int, rows T: Int, width H: Int,
                        scratch: (h: FloatBuffer, y: FloatBuffer)? = nil) {
        let (h, y) = scratch ?? (FloatBuffer(count: T * H, zeroed: false), FloatBuffer(count: T * H, zeroed: false))
        attentionNorm.forward(x, rows: T, out: h.p)
        attention.forward(h.p, segments: segments, layer: i, out: y.p)
        VectorOps.add(y.p, into: x, T * H)
        ffnNorm.forward(x, rows: T, out: h.p)
        feedForward.forward(h.p, count: T, out: y.p)
        VectorOps.add(y.p, into: x, T * H)
    }
}

/// A cache that is not one K/V row per position and layer (DeepSeek-V4: sliding windows and
/// compressed entries) is made and measured by its architecture.
public protocol CacheLayout: Sendable {
    func makeCache(capacity: Int) -> KVCache
    /// Bytes the cache grows by per position, over all layers (fixed windows excluded).
    var bytesPerToken: Int { get }
    /// Per kind of layer: how many layers, bytes per position per layer, fixed bytes per layer.
    var kinds: [CacheLayerKind] { get }
}

public struct CacheLayerKind: Sendable {
    public let kind: String
    public let layers: Int
    public let bytesPerToken: Double
    public let fixedBytes: Int
}

public struct ContextFullError: Error, CustomStringConvertible {
    public let needed: Int
    public let capacity: Int
    public var description: String { "context full: \(needed) positions needed, the context holds \(capacity)" }
}

public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    public let embedding: Tensor
    public let layers: [DecoderLayer]
    public let finalNorm: RMSNorm
    public let outputHead: Linear
    /// K and V widths per position in the cache (per layer).
    public let cacheKWidth: Int
    public let cacheVWidth: Int
    /// Set by architectures whose cache is laid out per layer kind (DeepSeek-V4).
    public var cacheLayout: CacheLayout?
    /// DeepSeek-V4's hc_head: collapses the hyper-connection streams after the last layer.
    public var hyperHead: HyperHead?
    /// The multi-token-prediction block (DeepSeek-V3's MultiTokenPrediction.swift, V4's
    /// DeepSeekV4MTP.swift), when the file has one; it drafts for `--mtp` and is never part of
    /// plain decoding.
    public var mtp: (any MTPLayer)?
    /// Why a file that declares an MTP layer has none loaded (missing or placeholder tensors).
    public var mtpUnavailable: String?

    public init(config: ModelConfig, embedding: Tensor, layers: [DecoderLayer], finalNorm: RMSNorm, outputHead: Linear,
                cacheKWidth: Int, cacheVWidth: Int) {
        self.config = config; self.embedding = embedding; self.layers = layers
        self.finalNorm = finalNorm; self.outputHead = outputHead
        self.cacheKWidth = cacheKWidth; self.cacheVWidth = cacheVWidth
    }

    /// Weight bytes read per generated token (layers' active weights, output head, norms and
    /// one embedding row); the KV cache read comes on top (see `kvBytesPerToken`).
    public var activeWeightBytesPerToken: Int {
        var total = outputHead.weight.byteCount + embedding.rowBytes + finalNorm.weight.count * 4
        for l in layers {
            total += (l.attention as? ActiveWeights)?.activeWeightBytesPerToken ?? linearBytes(in: l.attention)
            total += (l.feedForward as? ActiveWeights)?.activeWeightBytesPerToken ?? linearBytes(in: l.feedForward)
            total += (l.attentionNorm.weight.count + l.ffnNorm.weight.count) * 4
        }
        return total
    }

    /// KV-cache bytes one decode step reads at a given context length.
    public func kvBytesRead(contextLength: Int) -> Int {
        contextLength * cacheBytesPerToken
    }

    /// How many of the largest logits per row are recomputed with f32 activations.
    public nonisolated(unsafe) static var refinedLogits = 32

    /// Storage of new caches (`--cache-type-k/-v`); set through `setCacheTypes`, which checks them.
    public private(set) var cacheKeyType = KVCacheType.f32
    public private(set) var cacheValueType = KVCacheType.f32

    public func setCacheTypes(key: KVCacheType, value: KVCacheType) throws {
        if key != .f32 || value != .f32 {
            for (i, l) in layers.enumerated() {
                guard let align = l.attention.cacheRowAlignment() else {
                    throw KVCacheTypeError(message: "layer \(i)'s attention reads an f32 cache only: --cache-type-k/-v f32")
                }
                for t in [key, value] where align % t.blockSize != 0 {
                    throw KVCacheTypeError(message: "a \(t.rawValue) cache stores blocks of \(t.blockSize) values, and this model's cached rows are \(align) wide: use f16 or f32")
                }
            }
        }
        cacheKeyType = key
        cacheValueType = value
    }

    /// Cache bytes per position over all layers.
    public var cacheBytesPerToken: Int {
        if let l = cacheLayout { return l.bytesPerToken }
        return layers.count * (cacheKeyType.rowBytes(cacheKWidth) + cacheValueType.rowBytes(cacheVWidth))
    }

    public func makeCache(capacity: Int) -> KVCache {
        if let l = cacheLayout { return l.makeCache(capacity: capacity) }
        return KVCache(layers: layers.count, capacity: capacity, kWidth: cacheKWidth, vWidth: cacheVWidth,
                       keyType: cacheKeyType, valueType: cacheValueType)
    }

    /// Runs `tokens` (all at once: prompt processing is batched) after what `cache` holds,
    /// appends them to the cache, and returns the logits of the last `lastK` positions
    /// (lastK × vocab, row-major).
    public func forward(_ tokens: [Int], cache: KVCache, lastK: Int = 1) throws -> FloatBuffer {
        try forwardBatch([(tokens, cache, lastK)])[0]
    }

    /// Several sequences in one pass (continuous batching): each brings its new tokens and its
    /// own cache; weights stream once for all of them. Returns each sequence's last-K logits.
    public func forwardBatch(_ seqs: [(tokens: [Int], cache: KVCache, lastK: Int)]) throws -> [FloatBuffer] {
        let H = config.hiddenSize
        let vocabRows = embedding.shape[0]
        var segments = [BatchSegment]()
        var all = [Int]()
        for s in seqs {
            guard s.cache.length + s.tokens.count <= s.cache.capacity else {
                throw ContextFullError(needed: s.cache.length + s.tokens.count, capacity: s.cache.capacity)
            }
            guard !segments.contains(where: { $0.cache === s.cache }) else {
                throw ModelLoadError.unsupported("a cache appears twice in one batch")
            }
            for t in s.tokens where t < 0 || t >= vocabRows {
                throw ModelLoadError.unsupported("token id \(t) is outside the vocabulary (0..<\(vocabRows))")
            }
            segments.append(BatchSegment(cache: s.cache, row: all.count, count: s.tokens.count))
            all += s.tokens
        }
        let T = all.count
        guard T > 0 else { return seqs.map { _ in FloatBuffer(count: 0) } }
        let x = FloatBuffer(count: T * H, zeroed: false)
        let h = FloatBuffer(count: T * H, zeroed: false)
        let y = FloatBuffer(count: T * H, zeroed: false)
        let rowBytes = embedding.rowBytes
        for (t, id) in all.enumerated() {
            try dequantizeRow(embedding.type, embedding.data + id * rowBytes, x.p + t * H, count: H)
        }
        let active = segments.filter { $0.count > 0 }
        // One token per sequence: a decode step, whose few rows take the row kernels.
        try Linear.decodeStep(active.allSatisfy { $0.count == 1 }) {
            try forwardLayers(x, h, y, tokens: all, segments: active)
        }
        for s in active { s.cache.length += s.count }
        // Output head only for the rows whose logits are wanted.
        var wanted = [Int]()
        var ks = [Int]()
        for (j, s) in segments.enumerated() {
            let k = min(max(seqs[j].lastK, 1), s.count)
            ks.append(k)
            wanted += (s.row + s.count - k)..<(s.row + s.count)
        }
        for (j, r) in wanted.enumerated() { (h.p + j * H).update(from: x.p + r * H, count: H) }
        finalNorm.forward(h.p, rows: wanted.count, out: y.p)
        let V = outputHead.outFeatures
        let logits = FloatBuffer(count: wanted.count * V, zeroed: false)
        Linear.decodeStep(wanted.count == active.count) {
            outputHead.forward(y.p, rows: wanted.count, out: logits.p)
        }
        outputHead.refineTop(y.p, rows: wanted.count, out: logits.p, topK: TransformerModel.refinedLogits)
        var results = [FloatBuffer]()
        var off = 0
        for k in ks {
            let b = FloatBuffer(count: k * V, zeroed: false)
            b.p.update(from: logits.p + off * V, count: k * V)
            results.append(b)
            off += k
        }
        return results
    }

    /// The decoder layers over the batch's T rows (x: the residual stream, h and y: scratch).
    private func forwardLayers(_ x: FloatBuffer, _ h: FloatBuffer, _ y: FloatBuffer, tokens all: [Int],
                               segments active: [BatchSegment]) throws {
        let H = config.hiddenSize, T = all.count
        if let head = hyperHead {
            try forwardHyperConnected(x.p, tokens: all, segments: active, head: head)
            return
        }
        for (i, layer) in layers.enumerated() {
            layer.forward(x.p, segments: active, layer: i, rows: T, width: H, scratch: (h, y))
        }
        // An MTP drafter reads the last layer's output before the final norm.
        for s in active { if let tap = s.cache.hiddenTap, tap.recording { for r in s.rows { tap.store(position: s.position(ofRow: r), x.p + r * H) } } }
    }
}

/// SwiGLU feed-forward: down(silu(gate(x)) ⊙ up(x)). Used as the dense MLP of every family
/// and as each expert of the MoE block.
public final class GatedMLP: FeedForwardBlock {
    public let gate: Linear, up: Linear, down: Linear
    /// DeepSeek-V4's `swiglu_limit`: gate clipped from above, up to ±limit, before the product.
    public var swigluLimit: Float?

    public init(gate: Linear, up: Linear, down: Linear) {
        self.gate = gate; self.up = up; self.down = down
        // SwiGLU outputs carry outliers that 8-bit blocks flatten; two-level activations here
        // (TIEFSEE_PRECISE=1) cut the divergence from the f32 reference a little further.
        down.preciseActivations = Linear.preciseFFNDown
    }

    /// Rows per pass over a long prompt: the gate/up scratch (two intermediate-size rows per
    /// token, 85 KB at V2-Lite's dense layer) stays bounded; 128 rows keep the batch kernel's
    /// tiles full, so the extra passes over the weights cost next to nothing.
    static let rowsPerPass = 128

    public func forward(_ x: UnsafePointer<Float>, count T: Int, out: UnsafeMutablePointer<Float>) {
        let f = gate.outFeatures, n = gate.inFeatures, o = down.outFeatures
        let rows = min(T, GatedMLP.rowsPerPass)
        let g = FloatBuffer(count: rows * f, zeroed: false)
        let u = FloatBuffer(count: rows * f, zeroed: false)
        for lo in stride(from: 0, to: T, by: rows) {
            let m = min(rows, T - lo)
            Linear.forward([(gate, g.p), (up, u.p)], x: x + lo * n, rows: m)
            GatedMLP.activate(g.p, u.p, m * f, limit: swigluLimit)
            down.forward(g.p, rows: m, out: out + lo * o)
        }
    }

    /// gate ← silu(gate) ⊙ up, after clipping (gate ≤ limit, |up| ≤ limit) when a limit is set.
    static func activate(_ g: UnsafeMutablePointer<Float>, _ u: UnsafeMutablePointer<Float>, _ n: Int, limit: Float?) {
        if let l = limit {
            for i in 0..<n { g[i] = min(g[i], l); u[i] = min(max(u[i], -l), l) }
        }
        VectorOps.swiglu(g, u, n)
    }
}
