import Foundation
import CKernels

// DeepSeek-V2 / V3 / R1: Multi-head Latent Attention (MLA) followed by the shared MoE block.
//
// MLA in the order of the DeepSeek-V2 paper (§2.1), with the config's names:
//
//   query   c_Q = q_a_layernorm(q_a_proj(h))          [q_lora_rank]      (or plain q_proj(h))
//           q   = q_b_proj(c_Q)                        [n_heads × (qk_nope_head_dim + qk_rope_head_dim)]
//               = per head [q_nope | q_rope], q_rope rotated at the token's position
//   kv      [c_KV | k_rope] = kv_a_proj_with_mqa(h)    [kv_lora_rank + qk_rope_head_dim]
//           c_KV = kv_a_layernorm(c_KV)                the compressed latent, shared by all heads
//           k_rope = rope(k_rope)                      the decoupled rope key, shared by all heads
//           kv_b_proj = per head [W_UK (qk_nope_head_dim rows) ; W_UV (v_head_dim rows)] × kv_lora_rank
//           k_nope = W_UK c_KV,  v = W_UV c_KV         (the "naive", expanded form)
//   scores  (q_nope·k_nope + q_rope·k_rope) × softmax_scale
//   output  o_proj(concat_h Σ_j p_j v_j)
//
// The cache holds only [c_KV | k_rope] per token and layer: kv_lora_rank + qk_rope_head_dim
// values instead of n_heads × (qk_head_dim + v_head_dim). Attention runs on it directly with the
// absorbed projections (paper §2.1.2): q_nope·(W_UK c_KV) = (W_UKᵀ q_nope)·c_KV, so W_UK is folded
// into the query once per token, and Σ_j p_j (W_UV c_KV_j) = W_UV (Σ_j p_j c_KV_j), so W_UV is
// applied once after attention. Nothing in the cache is ever expanded per head.
//
// The absorbed matrices are per-head `Linear`s in the file's own type (views of llama.cpp's
// attn_k_b / attn_v_b, or of kv_b_proj): a decode step reads ~1.3 MB of them per layer on
// V2-Lite's shape in Q4_K_M instead of 8 MB as f32, and each stage runs all heads' products in
// one parallel loop (`Linear.forward(jobs:inputs:)`), a batched matrix product in prefill.

// MARK: - Config

extension ModelConfig {
    /// DeepSeek-V2, V3 (and V3.2's shared part) from config.json: the router's variant and MLA's
    /// dimensions (`fromHF` has read the expert counts).
    mutating func readDeepSeek(hf k: HFConfigKeys) throws {
        if var m = moe {
            m.numSharedExperts = k.int("n_shared_experts") ?? 0
            m.routedScalingFactor = k.dbl("routed_scaling_factor") ?? 1
            m.nGroup = k.int("n_group") ?? 1
            m.topKGroup = k.int("topk_group") ?? 1
            m.firstKDenseReplace = k.int("first_k_dense_replace") ?? 0
            if family == .deepseekV2 {
                m.scoring = .softmax
                m.topKMethod = MoEConfig.TopKMethod(rawValue: k.string("topk_method") ?? "greedy") ?? .greedy
                // transformers' DeepseekV2 never renormalises and always scales (see notes).
                m.normTopKProb = false
                m.moeLayerFreq = k.int("moe_layer_freq") ?? 1
            } else {
                m.scoring = .sigmoid
                m.topKMethod = .noauxTC  // transformers ignores scoring_func/topk_method for V3
                m.normTopKProb = k.bool("norm_topk_prob") ?? true
                m.moeLayerFreq = 1
            }
            moe = m
        }
        let mla = MLAConfig(qLoraRank: k.int("q_lora_rank"), kvLoraRank: try k.req("kv_lora_rank"),
                            qkNopeHeadDim: try k.req("qk_nope_head_dim"), qkRopeHeadDim: try k.req("qk_rope_head_dim"),
                            vHeadDim: try k.req("v_head_dim"))
        self.mla = mla
        headDim = mla.qkHeadDim
        ropeDim = mla.qkRopeHeadDim
        // DeepSeek rotates adjacent pairs; transformers' V3 can be told otherwise (rope_interleave).
        ropeLayout = (family == .deepseekV3 && k.bool("rope_interleave") == false) ? .halves : .adjacentPairs
        numKVHeads = numHeads
        numNextnPredictLayers = family == .deepseekV3 ? k.int("num_nextn_predict_layers") ?? 0 : 0
    }

    /// deepseek2 (V2 or V3, told apart by the router) and deepseek32's shared part from GGUF.
    mutating func readDeepSeek(gguf k: GGUFConfigKeys) throws {
        ropeLayout = .adjacentPairs
        if family == .deepseekV3 {
            // block_count includes the MTP blocks (llama.cpp's converter appends them as blk.{N}).
            let nextn = k.v("nextn_predict_layers")?.int ?? 0
            guard nextn >= 0, nextn < numLayers else { throw ConfigError(message: "\(k.file.path): nextn_predict_layers \(nextn) of \(numLayers) blocks") }
            numLayers -= nextn
            numNextnPredictLayers = nextn
        }
        if var m = moe {
            if family == .deepseekV32 { m.topKMethod = .noauxTC }
            if family == .deepseekV3 {
                if m.scoring == .sigmoid || k.hasTensor(suffix: "exp_probs_b.bias") {
                    m.topKMethod = .noauxTC
                } else {
                    family = .deepseekV2
                    m.topKMethod = m.nGroup > 1 ? .groupLimitedGreedy : .greedy
                }
            }
            moe = m
        }
        let kvLora = try k.req("attention.kv_lora_rank")
        let rope = ropeDim
        // Newer converters write the MQA view of MLA (key_length = kv_lora_rank + rope,
        // value_length = kv_lora_rank, head_count_kv = 1) and the per-head sizes as *_mla.
        let keyLen = k.v("attention.key_length_mla")?.int ?? k.v("attention.key_length")?.int ?? 0
        let valLen = k.v("attention.value_length_mla")?.int ?? k.v("attention.value_length")?.int ?? 0
        let qLora = k.v("attention.q_lora_rank")?.int
        mla = MLAConfig(qLoraRank: (qLora ?? 0) > 0 ? qLora : nil, kvLoraRank: kvLora,
                        qkNopeHeadDim: keyLen - rope, qkRopeHeadDim: rope, vHeadDim: valLen)
        headDim = keyLen
        numKVHeads = numHeads
    }
}

public final class MultiHeadLatentAttention: AttentionBlock {
    /// One cached row is the whole [latent | k_rope]: quantized caches need its width % 32 == 0.
    public func cacheRowAlignment() -> Int? { cacheWidth }
    public enum Mode: Sendable {
        /// W_UK folded into the query, W_UV applied after attention: works on the latent cache.
        case absorbed
        /// Expands every cached latent to per-head keys and values first (reference/testing path).
        case expanded
    }
    public var mode: Mode = .absorbed

    let nHeads: Int
    let qLoraRank: Int?, kvLoraRank: Int, qkNopeHeadDim: Int, qkRopeHeadDim: Int, vHeadDim: Int
    var qkHeadDim: Int { qkNopeHeadDim + qkRopeHeadDim }
    /// Values per token in the cache: the latent and the shared rope key.
    public var cacheWidth: Int { kvLoraRank + qkRopeHeadDim }

    let qProj: Linear?                        // without q_lora_rank (V2-Lite)
    let qAProj: Linear?, qANorm: RMSNorm?, qBProj: Linear?
    let kvAProjWithMQA: Linear
    let kvANorm: RMSNorm
    /// W_UKᵀ per head, [kv_lora_rank, qk_nope_head_dim]: q_latent = W_UKᵀ q_nope (attn_k_b's slices,
    /// or kv_b_proj's W_UK rows transposed into f32).
    let ukT: [Linear]
    /// W_UV per head, [v_head_dim, kv_lora_rank] (attn_v_b's slices or kv_b_proj's W_UV rows).
    let uv: [Linear]
    let oProj: Linear
    let rope: Rope
    /// qk_head_dim^-0.5, times mscale² under YaRN with mscale_all_dim (DeepSeek's correction:
    /// the rope tables are left unscaled, the softmax temperature absorbs it).
    public let softmaxScale: Float

    public init(config c: ModelConfig, qProj: Linear?, qAProj: Linear?, qANorm: RMSNorm?, qBProj: Linear?,
                kvAProjWithMQA: Linear, kvANorm: RMSNorm, ukT: [Linear], uv: [Linear], oProj: Linear, rope: Rope) throws {
        guard let mla = c.mla else { throw ModelLoadError.unsupported("MLA needs kv_lora_rank and friends in the config") }
        nHeads = c.numHeads
        qLoraRank = mla.qLoraRank; kvLoraRank = mla.kvLoraRank
        qkNopeHeadDim = mla.qkNopeHeadDim; qkRopeHeadDim = mla.qkRopeHeadDim; vHeadDim = mla.vHeadDim
        self.qProj = qProj; self.qAProj = qAProj; self.qANorm = qANorm; self.qBProj = qBProj
        self.kvAProjWithMQA = kvAProjWithMQA; self.kvANorm = kvANorm
        self.ukT = ukT; self.uv = uv; self.oProj = oProj; self.rope = rope
        // Attention scores and outputs pass through these: two-level (~15-bit) activations keep
        // them near the f32 result for a few percent more attention work (they are small).
        for l in ukT + uv { l.preciseActivations = true }
        softmaxScale = Float(MultiHeadLatentAttention.softmaxScale(config: c))
        let qOut = (qProj ?? qBProj)?.outFeatures ?? 0
        guard qOut == nHeads * (mla.qkNopeHeadDim + mla.qkRopeHeadDim) else {
            throw ModelLoadError.unsupported("MLA query projection gives \(qOut) values, expected n_heads × qk_head_dim = \(nHeads * mla.qkHeadDim)")
        }
        guard kvAProjWithMQA.outFeatures == cacheWidth, kvANorm.weight.count == kvLoraRank,
              ukT.count == nHeads, ukT.allSatisfy({ $0.outFeatures == kvLoraRank && $0.inFeatures == qkNopeHeadDim }),
              uv.count == nHeads, uv.allSatisfy({ $0.outFeatures == vHeadDim && $0.inFeatures == kvLoraRank }),
              oProj.inFeatures == nHeads * vHeadDim, rope.dim == qkRopeHeadDim else {
            throw ModelLoadError.unsupported("MLA weights do not match kv_lora_rank \(kvLoraRank), qk_rope_head_dim \(qkRopeHeadDim), v_head_dim \(vHeadDim)")
        }
    }

    /// YaRN's third piece (see Rope.swift's `.yarn` case for the other two): with
    /// `mscale_all_dim` the rope tables stay unscaled and the temperature takes mscale².
    static func softmaxScale(config c: ModelConfig) -> Double {
        let base = 1 / Double(c.mla!.qkHeadDim).squareRoot()
        let s = c.ropeScaling
        guard s.kind != .none, let all = s.mscaleAllDim, all != 0, s.factor > 1 else { return base }
        let m = 0.1 * all * log(s.factor) + 1
        return base * m * m
    }

    public func forward(_ x: UnsafePointer<Float>, segments: [BatchSegment], layer: Int, out: UnsafeMutablePointer<Float>) {
        let (q, _) = project(x, segments: segments, layer: layer)
        attend(q: q, segments: segments, layer: layer, selection: nil, out: out)
    }

    /// Cache rows read by the attention since the counter was last reset: per query row, the
    /// cached positions its scores and context visited (all of them at once for every head),
    /// summed. Dense MLA reads position + 1 rows per query; under DeepSeek Sparse Attention only
    /// the indexer's selection.
    public var latentRowsRead: Int { readLock.lock(); defer { readLock.unlock() }; return _latentRowsRead }
    public func resetReadCounter() { readLock.lock(); _latentRowsRead = 0; readLock.unlock() }
    private var _latentRowsRead = 0
    private let readLock = NSLock()
    func countRowsRead(_ n: Int) { readLock.lock(); _latentRowsRead += n; readLock.unlock() }

    /// The projections before attention: the queries (rope applied to q_rope) and, with
    /// q_lora_rank, the normalised query latent c_Q (which DeepSeek-V3.2's indexer also reads);
    /// stores each new token's [c_KV | k_rope] in the cache.
    public func project(_ x: UnsafePointer<Float>, segments: [BatchSegment], layer: Int) -> (q: FloatBuffer, cq: FloatBuffer?) {
        let T = segments.reduce(0) { $0 + $1.count }
        let H = nHeads, qkd = qkHeadDim, nope = qkNopeHeadDim, rd = qkRopeHeadDim, lora = kvLoraRank
        let qw = H * qkd, cw = cacheWidth
        // Query: low-rank (q_a → norm → q_b) or direct.
        let q = FloatBuffer(count: T * qw, zeroed: false)
        var cqOut: FloatBuffer? = nil
        if let qp = qProj {
            qp.forward(x, rows: T, out: q.p)
        } else if let qa = qAProj, let qn = qANorm, let qb = qBProj {
            let cq = FloatBuffer(count: T * qa.outFeatures, zeroed: false)
            qa.forward(x, rows: T, out: cq.p)
            qn.forward(cq.p, rows: T, out: cq.p)
            qb.forward(cq.p, rows: T, out: q.p)
            cqOut = cq
        }
        // Compressed KV: [latent | k_rope]; only the latent is normalised.
        let ckv = FloatBuffer(count: T * cw, zeroed: false)
        kvAProjWithMQA.forward(x, rows: T, out: ckv.p)
        var cosT = [Float](repeating: 0, count: rd / 2), sinT = cosT
        for seg in segments {
            for r in seg.rows {
                let pos = seg.position(ofRow: r)
                let row = ckv.p + r * cw
                kvANorm.forward(row, rows: 1, out: row)
                rope.table(position: pos, cos: &cosT, sin: &sinT)
                rope.apply(row + lora, nHeads: 1, headStride: rd, cos: cosT, sin: sinT)
                rope.apply(q.p + r * qw + nope, nHeads: H, headStride: qkd, cos: cosT, sin: sinT)
                seg.cache.storeKey(layer, pos, row)
            }
        }
        return (q, cqOut)
    }

    /// Attention of the projected queries over the cache, then o_proj. `selection`, per batch row,
    /// lists the cached positions (ascending) that row attends to; nil: all of 0...position.
    public func attend(q: FloatBuffer, segments: [BatchSegment], layer: Int, selection: [[Int32]]?,
                       out: UnsafeMutablePointer<Float>) {
        let T = segments.reduce(0) { $0 + $1.count }
        let attn = FloatBuffer(count: T * nHeads * vHeadDim, zeroed: true)
        switch mode {
        case .absorbed: absorbedAttention(q: q.p, segments: segments, layer: layer, T: T, selection: selection, out: attn.p)
        case .expanded: expandedAttention(q: q.p, segments: segments, layer: layer, selection: selection, out: attn.p)
        }
        oProj.forward(attn.p, rows: T, out: out)
    }

    /// How many cached positions batch row `r` attends to, and the i-th of them.
    @inline(__always) static func attended(_ selection: [[Int32]]?, row r: Int, position: Int) -> Int {
        selection?[r].count ?? position + 1
    }
    @inline(__always) static func key(_ selection: [[Int32]]?, row r: Int, _ i: Int) -> Int {
        selection.map { Int($0[r][i]) } ?? i
    }

    /// Attention on the latent cache: the queries are mapped into latent space (W_UKᵀ q_nope,
    /// kv_lora_rank values per token and head), scored against c_KV and k_rope, the latents are
    /// averaged with the softmax weights, and W_UV maps each average to the head's output.
    func absorbedAttention(q: UnsafeMutablePointer<Float>, segments: [BatchSegment], layer: Int, T: Int,
                           selection: [[Int32]]?, out: UnsafeMutablePointer<Float>) {
        var segOfRow = [Int](repeating: 0, count: T)
        for (i, s) in segments.enumerated() { for r in s.rows { segOfRow[r] = i } }
        let latents = segments.map { latentRows($0, layer: layer, selection: selection) }
        let views = latents.map { UnsafePointer($0.rows) }
        // Query rows in chunks: the per-row scratch (latent queries and contexts, ~160 KB per row
        // at V2-Lite's shape) stays bounded however long the prompt.
        for lo in stride(from: 0, to: T, by: MultiHeadLatentAttention.rowsPerChunk) {
            absorbedAttention(q: q, rows: lo..<min(T, lo + MultiHeadLatentAttention.rowsPerChunk),
                              segments: segments, segOfRow: segOfRow, latents: views, selection: selection, out: out)
        }
        withExtendedLifetime(latents) {}
    }

    /// A segment's cached latent rows (all positions up to its last new row) as floats: the cache
    /// itself when it is f32; otherwise converted once per step here, since every head and
    /// query row reads every latent row (the quantized cache saves memory, not this step's reads).
    /// With a selection only the selected positions are converted (the others are never read).
    func latentRows(_ seg: BatchSegment, layer: Int, selection: [[Int32]]? = nil) -> (rows: UnsafeMutablePointer<Float>, copy: FloatBuffer?) {
        let cache = seg.cache
        if cache.keyType == .f32 { return (cache.keys[layer].p, nil) }
        let n = cache.length + seg.count, cw = cacheWidth
        let buf = FloatBuffer(count: n * cw, zeroed: false)
        if let sel = selection {
            let wanted = Array(Set(seg.rows.flatMap { sel[$0] })).sorted()
            ThreadPool.shared.parallelFor(wanted.count) { range in
                for i in range { let p = Int(wanted[i]); cache.readKeys(layer, p..<p + 1, into: buf.p + p * cw) }
            }
        } else {
            ThreadPool.shared.parallelFor(n) { range in cache.readKeys(layer, range, into: buf.p + range.lowerBound * cw) }
        }
        return (buf.p, buf)
    }

    static let rowsPerChunk = 64
    /// Query rows from which dense attention takes `sharedRowAttention` (tests set it to compare
    /// the two loops).
    nonisolated(unsafe) static var sharedRowsFrom = 4

    func absorbedAttention(q: UnsafeMutablePointer<Float>, rows: Range<Int>, segments: [BatchSegment], segOfRow: [Int],
                           latents: [UnsafePointer<Float>], selection: [[Int32]]?, out: UnsafeMutablePointer<Float>) {
        let H = nHeads, qkd = qkHeadDim, nope = qkNopeHeadDim, lora = kvLoraRank, vd = vHeadDim
        let qw = H * qkd
        let T = rows.count, r0 = rows.lowerBound
        // 1. W_UK folded into the queries, every head in one loop: q_latent[h][t] = W_UK[h]ᵀ q_nope[t][h].
        let qNope = FloatBuffer(count: H * T * nope, zeroed: false)
        for h in 0..<H { for t in 0..<T { (qNope.p + (h * T + t) * nope).update(from: q + (r0 + t) * qw + h * qkd, count: nope) } }
        let qLatent = FloatBuffer(count: H * T * lora, zeroed: false)
        Linear.forward(jobs: (0..<H).map { LinearJob(ukT[$0], input: $0, out: qLatent.p + $0 * T * lora) },
                       inputs: (0..<H).map { LinearInput(qNope.p + $0 * T * nope, rows: T) })
        // 2. Scores on the latent cache, softmax, and the softmax-weighted latent per (head, token).
        let maxLen = rows.map { Self.attended(selection, row: $0, position: segments[segOfRow[$0]].position(ofRow: $0)) }.max() ?? 0
        let shared = selection == nil && T >= MultiHeadLatentAttention.sharedRowsFrom
        let ctx = FloatBuffer(count: H * T * lora, zeroed: !shared)
        if shared {
            sharedRowAttention(q: q, qLatent: qLatent.p, rows: rows, segments: segments, segOfRow: segOfRow, latents: latents,
                               maxLen: maxLen, ctx: ctx.p)
        } else {
            perHeadAttention(q: q, qLatent: qLatent.p, rows: rows, segments: segments, segOfRow: segOfRow, latents: latents,
                             selection: selection, maxLen: maxLen, ctx: ctx.p)
        }
        // 3. W_UV after attention, every head in one loop: o[h][t] = W_UV[h] ctx[h][t].
        let o = FloatBuffer(count: H * T * vd, zeroed: false)
        Linear.forward(jobs: (0..<H).map { LinearJob(uv[$0], input: $0, out: o.p + $0 * T * vd) },
                       inputs: (0..<H).map { LinearInput(ctx.p + $0 * T * lora, rows: T) })
        for t in 0..<T { for h in 0..<H { (out + (r0 + t) * H * vd + h * vd).update(from: o.p + (h * T + t) * vd, count: vd) } }
    }

    /// Step 2 of absorbed attention, one (head, query row) pair at a time: a dot and an axpy per
    /// cached position. Sparse attention (a selection of positions per row) and decode take it.
    func perHeadAttention(q: UnsafeMutablePointer<Float>, qLatent: UnsafeMutablePointer<Float>, rows: Range<Int>,
                          segments: [BatchSegment], segOfRow: [Int], latents: [UnsafePointer<Float>], selection: [[Int32]]?,
                          maxLen: Int, ctx: UnsafeMutablePointer<Float>) {
        let H = nHeads, qkd = qkHeadDim, nope = qkNopeHeadDim, rd = qkRopeHeadDim, lora = kvLoraRank
        let qw = H * qkd, cw = cacheWidth, scale = softmaxScale
        let T = rows.count, r0 = rows.lowerBound
        ThreadPool.shared.parallelFor(T * H) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: maxLen)
            defer { scores.deallocate() }
            var read = 0
            for item in range {
                let t = item / H, h = item % H, r = r0 + t
                let seg = segments[segOfRow[r]]
                let cache = latents[segOfRow[r]]
                let qLat = qLatent + (h * T + t) * lora, qRope = q + r * qw + h * qkd + nope
                let n = Self.attended(selection, row: r, position: seg.position(ofRow: r))  // causal, or the selection
                for i in 0..<n {
                    let c = cache + Self.key(selection, row: r, i) * cw
                    scores[i] = (VectorOps.dot(qLat, c, lora) + VectorOps.dot(qRope, c + lora, rd)) * scale
                }
                VectorOps.softmax(scores, n)
                let cx = ctx + (h * T + t) * lora
                for i in 0..<n { VectorOps.axpy(scores[i], cache + Self.key(selection, row: r, i) * cw, cx, lora) }
                if h == 0 { read += n }
            }
            self.countRowsRead(read)
        }
    }

    /// Step 2 of absorbed attention for dense (causal) MLA: every head reads the same latent rows,
    /// so each cached [c_KV | k_rope] row is scored against all of a query's heads (or a group of
    /// them, when there are few query rows to share out) while it is in L1, and the context sums
    /// run 64 values at a time in registers (tf_attend_heads, as grouped-query attention does).
    /// The query is [W_UKᵀ q_nope | q_rope] against the whole row; the values are the same rows,
    /// whose last qk_rope_head_dim sums are computed and dropped. Replaces one dot and one axpy per
    /// (head, position) pair; used from 4 query rows on (prefill, drafts checked together): in a
    /// 512-token prompt at V2-Lite's shape attention went from 11.2% to 6.8% of the time (perf).
    /// Fewer rows (decode) keep perHeadAttention, which spreads one row's heads
    /// over the threads.
    func sharedRowAttention(q: UnsafeMutablePointer<Float>, qLatent: UnsafeMutablePointer<Float>, rows: Range<Int>,
                            segments: [BatchSegment], segOfRow: [Int], latents: [UnsafePointer<Float>], maxLen: Int,
                            ctx: UnsafeMutablePointer<Float>) {
        let H = nHeads, qkd = qkHeadDim, nope = qkNopeHeadDim, rd = qkRopeHeadDim, lora = kvLoraRank
        let qw = H * qkd, cw = cacheWidth, scale = softmaxScale
        let T = rows.count, r0 = rows.lowerBound
        // Head groups per query row: enough work items for the threads when T is small.
        var groups = 1
        for g in [8, 4, 2] where T * 2 < ThreadPool.shared.threadCount * g && H % g == 0 { groups = g; break }
        let hg = H / groups
        // Each work item gathers its heads' [q_latent | q_rope] rows next to each other (the
        // kernel's query layout) and scatters their outputs back, in buffers of its own that stay
        // in cache: gathering all rows up front went through ~19 MB of memory per layer for a
        // 512-token prompt, on one thread.
        ThreadPool.shared.parallelFor(T * groups) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: max(1, maxLen) * hg)
            let qc = UnsafeMutablePointer<Float>.allocate(capacity: hg * cw), wide = UnsafeMutablePointer<Float>.allocate(capacity: hg * cw)
            defer { scores.deallocate(); qc.deallocate(); wide.deallocate() }
            var read = 0
            for item in range {
                let t = item / groups, h0 = (item % groups) * hg, r = r0 + t
                for i in 0..<hg {
                    let h = h0 + i, dst = qc + i * cw
                    dst.update(from: qLatent + (h * T + t) * lora, count: lora)
                    (dst + lora).update(from: q + r * qw + h * qkd + nope, count: rd)
                }
                let seg = segments[segOfRow[r]]
                let cache = latents[segOfRow[r]]
                let n = seg.position(ofRow: r) + 1
                tf_attend_heads(Int32(n), Int32(cw), Int32(hg), qc, cw, cache, cw, cache, cw, scale, scores, wide, cw)
                for i in 0..<hg { (ctx + ((h0 + i) * T + t) * lora).update(from: wide + i * cw, count: lora) }
                if h0 == 0 { read += n }
            }
            self.countRowsRead(read)
        }
    }

    /// W_UK [n_heads][qk_nope][kv_lora] and W_UV [n_heads][v_head][kv_lora] in f32, for the
    /// expanded reference path only (dequantized on first use).
    lazy var expandedWeights: (uk: [Float], uv: [Float]) = {
        let H = nHeads, nope = qkNopeHeadDim, lora = kvLoraRank
        var uk = [Float](repeating: 0, count: H * nope * lora), v = [Float]()
        for h in 0..<H {
            let kt = (try? dequantize(ukT[h].weight)) ?? []   // [lora][nope]
            for c in 0..<lora { for d in 0..<nope { uk[(h * nope + d) * lora + c] = kt[c * nope + d] } }
            v += (try? dequantize(uv[h].weight)) ?? []
        }
        return (uk, v)
    }()

    /// The textbook form: expand each cached latent into per-head k_nope and v, then standard
    /// multi-head attention. Costs n_heads × (qk_nope + v) values per cached token per step.
    func expandedAttention(q: UnsafeMutablePointer<Float>, segments: [BatchSegment], layer: Int,
                           selection: [[Int32]]?, out: UnsafeMutablePointer<Float>) {
        let H = nHeads, qkd = qkHeadDim, nope = qkNopeHeadDim, rd = qkRopeHeadDim, lora = kvLoraRank, vd = vHeadDim
        let qw = H * qkd, cw = cacheWidth, scale = softmaxScale
        for seg in segments {
            let L = seg.cache.length + seg.count
            let latent = latentRows(seg, layer: layer)
            let cache = latent.rows
            defer { withExtendedLifetime(latent.copy) {} }
            let kNope = FloatBuffer(count: L * H * nope, zeroed: false)
            let v = FloatBuffer(count: L * H * vd, zeroed: false)
            let (wUK, wUV) = expandedWeights
            wUK.withUnsafeBufferPointer { ukb in
                wUV.withUnsafeBufferPointer { uvb in
                    let ukp = ukb.baseAddress!, uvp = uvb.baseAddress!
                    ThreadPool.shared.parallelFor(L) { range in
                        for j in range {
                            let c = cache + j * cw
                            for i in 0..<H * nope { kNope.p[j * H * nope + i] = VectorOps.dot(ukp + i * lora, c, lora) }
                            for i in 0..<H * vd { v.p[j * H * vd + i] = VectorOps.dot(uvp + i * lora, c, lora) }
                        }
                    }
                }
            }
            ThreadPool.shared.parallelFor(seg.count * H) { range in
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: L)
                defer { scores.deallocate() }
                for item in range {
                    let r = seg.row + item / H, h = item % H
                    let qh = q + r * qw + h * qkd
                    let n = Self.attended(selection, row: r, position: seg.position(ofRow: r))
                    for i in 0..<n {
                        let j = Self.key(selection, row: r, i)
                        scores[i] = (VectorOps.dot(qh, kNope.p + (j * H + h) * nope, nope)
                                     + VectorOps.dot(qh + nope, cache + j * cw + lora, rd)) * scale
                    }
                    VectorOps.softmax(scores, n)
                    let o = out + r * H * vd + h * vd
                    for i in 0..<n { VectorOps.axpy(scores[i], v.p + (Self.key(selection, row: r, i) * H + h) * vd, o, vd) }
                }
            }
        }
    }
}

/// DeepSeek-V2 (and V2-Lite), V3 and R1: MLA + dense MLP for the first `first_k_dense_replace`
/// layers, the MoE block after. V3's multi-token-prediction layer (`num_nextn_predict_layers`,
/// after the last layer) is loaded as `model.mtp` for drafting (MultiTokenPrediction.swift);
/// plain decoding never runs it, and a file whose MTP layer is incomplete loads without one.
public enum DeepSeekDecoder {
    public static func load(config c: ModelConfig, weights w: WeightLoader) throws -> TransformerModel {
        guard let mla = c.mla else { throw ModelLoadError.unsupported("DeepSeek config without MLA dimensions") }
        let rope = Rope(config: c)
        var layers = [DecoderLayer]()
        for i in 0..<c.numLayers {
            let attention = try latentAttention(config: c, weights: w, layer: i, rope: rope)
            layers.append(try MoEDecoder.decoderLayer(config: c, weights: w, layer: i, attention: attention))
        }
        let model = try DenseDecoder.assemble(config: c, weights: w, layers: layers,
                                              cacheKWidth: mla.kvLoraRank + mla.qkRopeHeadDim, cacheVWidth: 0)
        if c.family == .deepseekV3 && c.numNextnPredictLayers > 0 {
            do { model.mtp = try MultiTokenPrediction.load(config: c, weights: w, layer: c.numLayers, model: model, rope: rope) }
            catch { model.mtpUnavailable = "\(error)" }
        }
        return model
    }

    /// The MLA block of layer i. MLA-internal norms use eps 1e-6 (transformers' default for
    /// q_a_layernorm / kv_a_layernorm, whatever rms_norm_eps says).
    public static func latentAttention(config c: ModelConfig, weights w: WeightLoader, layer i: Int,
                                       rope: Rope) throws -> MultiHeadLatentAttention {
        let mla = c.mla!, n = w.naming
        let innerEps: Float = 1e-6
        var qProj: Linear? = nil, qA: Linear? = nil, qANorm: RMSNorm? = nil, qB: Linear? = nil
        if mla.qLoraRank != nil {
            qA = try w.layerLinear(i, "attn_q_a", withBias: true)  // q_a_proj has a bias with attention_bias
            qANorm = RMSNorm(weight: try w.floats(n.layer(i, "attn_q_a_norm")), eps: innerEps)
            qB = try w.layerLinear(i, "attn_q_b")
        } else {
            qProj = try w.layerLinear(i, "attn_q")
        }
        let (ukT, uv) = try absorbedWeights(config: c, weights: w, layer: i)
        return try MultiHeadLatentAttention(
            config: c, qProj: qProj, qAProj: qA, qANorm: qANorm, qBProj: qB,
            kvAProjWithMQA: try w.layerLinear(i, "attn_kv_a_mqa", withBias: true),
            kvANorm: RMSNorm(weight: try w.floats(n.layer(i, "attn_kv_a_norm")), eps: innerEps),
            ukT: ukT, uv: uv, oProj: try w.layerLinear(i, "attn_output", withBias: true), rope: rope)
    }

    /// The absorbed projections per head: W_UKᵀ [kv_lora, qk_nope] and W_UV [v_head, kv_lora].
    /// Newer llama.cpp GGUFs store them split, as `attn_k_b` ([n_heads, kv_lora, qk_nope]: W_UKᵀ
    /// per head) and `attn_v_b` ([n_heads, v_head, kv_lora]): both are used as stored, as views.
    /// From `kv_b_proj` ([n_heads × (qk_nope + v_head), kv_lora], HF and older GGUFs) W_UV is a
    /// view of its rows; W_UK needs the transpose, made once at load in f32 (1 MB per layer at
    /// V2-Lite's shape).
    static func absorbedWeights(config c: ModelConfig, weights w: WeightLoader, layer i: Int) throws -> ([Linear], [Linear]) {
        let mla = c.mla!, H = c.numHeads, nope = mla.qkNopeHeadDim, vd = mla.vHeadDim, lora = mla.kvLoraRank
        let kvB = w.naming.layer(i, "attn_kv_b")
        if w.has(kvB) {
            let t = try w.matrix(kvB)
            guard t.shape == [H * (nope + vd), lora] else {
                throw ModelLoadError.badShape(name: kvB, shape: t.shape, expected: "[\(H * (nope + vd)), \(lora)]")
            }
            var ukT = [Linear](), uv = [Linear]()
            for h in 0..<H {
                let base = h * (nope + vd)
                let k = try dequantize(t.rows(base..<base + nope))   // [nope][lora]
                var kT = [Float](repeating: 0, count: lora * nope)
                for d in 0..<nope { for c in 0..<lora { kT[c * nope + d] = k[d * lora + c] } }
                ukT.append(try Linear(weight: Tensor.owned(name: "\(kvB) W_UK[\(h)]ᵀ", shape: [lora, nope], values: kT)))
                uv.append(try Linear(weight: t.rows(base + nope..<base + nope + vd)))
            }
            return (ukT, uv)
        }
        let kName = w.naming.layer(i, "attn_k_b"), vName = w.naming.layer(i, "attn_v_b")
        guard w.has(kName), w.has(vName) else {
            throw ModelLoadError.missingTensor("\(kvB) (or \(kName) and \(vName))", file: w.fileName)
        }
        let kT = try w.matrixOrStack(kName), vT = try w.matrixOrStack(vName)
        guard kT.elementCount == H * lora * nope, kT.rowLength == nope else {
            throw ModelLoadError.badShape(name: kName, shape: kT.shape, expected: "[\(H), \(lora), \(nope)]")
        }
        guard vT.elementCount == H * vd * lora, vT.rowLength == lora else {
            throw ModelLoadError.badShape(name: vName, shape: vT.shape, expected: "[\(H), \(vd), \(lora)]")
        }
        /// Head h's matrix of `rows` rows: a slice of a 3-D stack or rows of a 2-D one.
        func head(_ t: Tensor, _ h: Int, rows: Int) -> Tensor {
            t.shape.count == 3 ? t.slice(h) : t.rows(h * rows..<(h + 1) * rows)
        }
        return (try (0..<H).map { try Linear(weight: head(kT, $0, rows: lora)) },
                try (0..<H).map { try Linear(weight: head(vT, $0, rows: vd)) })
    }
}

extension WeightLoader {
    /// A tensor of any rank, FP8 dequantized when it is a 2-D block-scaled matrix.
    func matrixOrStack(_ name: String) throws -> Tensor {
        let t = try tensor(name)
        return t.shape.count == 2 ? try matrix(name) : t
    }
}

extension TransformerModel {
    /// Selects how every MLA layer attends (no effect on other architectures).
    public func setLatentAttentionMode(_ mode: MultiHeadLatentAttention.Mode) {
        for l in layers {
            (l.attention as? MultiHeadLatentAttention)?.mode = mode
            (l.attention as? SparseLatentAttention)?.mla.mode = mode
        }
    }
}
