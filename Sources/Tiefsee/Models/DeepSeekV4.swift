import Foundation

// DeepSeek-V4 (transformers `deepseek_v4`, the DeepSeek-V4 paper §2). What changes from V3, in
// the order a token meets it:
//
//   residual   mHC (§2.2): the residual is `hc_mult` streams per token. Before each block a
//              hyper-connection reads all streams and produces three mixes: `pre` collapses the
//              streams into the block's input, `post` spreads the block's output back over them,
//              `comb` (made doubly stochastic by `hc_sinkhorn_iters` Sinkhorn-Knopp steps, so the
//              residual cannot blow up) mixes the old streams:  s'_k = post_k·y + Σ_j comb_jk·s_j.
//              After the last layer `hc_head` collapses the streams once more.
//   attention  one shared key = value head (MQA, `head_dim` wide, rope on its last
//              `qk_rope_head_dim` values, adjacent pairs), queries through a low-rank
//              `q_lora_rank` bottleneck and an unweighted per-head RMSNorm, a learnt per-head
//              sink logit in the softmax. Every layer sees the last `sliding_window` positions;
//              by `compress_ratios` a layer also sees compressed entries:
//                0    sliding window only ("main" rope, rope_theta);
//                4    CSA (§2.3.1): one entry per 4 tokens, each a softmax-gated mix of two
//                     overlapping windows (the previous window's first half-width series Ca and
//                     this window's Cb); a lightning indexer scores them per query
//                     (Σ_h w_h·ReLU(q_h·K_s)) and attention reads the best `index_topk`;
//                128  HCA (§2.3.2): one entry per 128 tokens, non-overlapping, all of them read.
//              Compressed layers use the "compress" rope (compress_rope_theta, YaRN) for queries,
//              keys and entries (an entry sits at its window's first position). Since K = V, the
//              output's rope slice carries the keys' rotation: it is rotated back by the
//              query's position before the grouped output projection (`o_groups` blocks to
//              `o_lora_rank` each, then `o_b_proj`).
//   MoE        the shared MoE block: sqrt(softplus) scores, greedy top-k on scores +
//              e_score_correction_bias, renormalised × routed_scaling_factor; the first
//              `num_hash_layers` layers pick experts by a frozen token-id table (tid2eid) and
//              weight them by the same scores. Experts and the shared expert clip their
//              gate/up values at `swiglu_limit`. Every layer is sparse.
//
// The cache follows the layer kinds: a ring of `sliding_window` key rows per layer, compressed
// entries (and the indexer's keys) appended as windows close, and the open window's projected
// tokens. It cannot be cut back to any earlier position (`canRewind` is false): whoever reuses a
// prefix keeps all of it or starts again. It can take back the positions of its last step
// (`takeBackLimit`), which is what speculative decoding's rejected drafts need.
//
// The multi-token-prediction block (`mtp.0.*`, DeepSeek's MTPBlock) is loaded for drafting:
// DeepSeekV4MTP.swift.

// MARK: - Config

public struct DeepSeekV4Config: Equatable, Sendable {
    public enum LayerType: String, Sendable, CaseIterable {
        case slidingAttention = "sliding_attention"
        case compressedSparseAttention = "compressed_sparse_attention"
        case heavilyCompressedAttention = "heavily_compressed_attention"
    }
    public var layerTypes: [LayerType]
    /// Source tokens per compressed entry, per layer (0: sliding window only).
    public var compressRatios: [Int]
    /// Layers whose experts come from `tid2eid[token]` (`mlp_layer_types` "hash_moe").
    public var hashLayers: [Bool]
    public var headDim: Int
    public var qkRopeHeadDim: Int
    public var qLoraRank: Int
    public var oGroups: Int
    public var oLoraRank: Int
    public var slidingWindow: Int
    public var hcMult: Int
    public var hcSinkhornIters: Int
    public var hcEps: Float
    public var indexNHeads: Int
    public var indexHeadDim: Int
    public var indexTopk: Int
    public var swigluLimit: Float
    /// "main" rope (sliding layers): plain, rope_theta.
    public var ropeTheta: Double
    /// "compress" rope (compressed layers, their compressors and the indexer).
    public var compressRopeTheta: Double
    public var compressRopeScaling: RopeScaling
    public var numNextnPredictLayers: Int
}

extension ModelConfig {
    /// Reads DeepSeek-V4's keys (transformers' names, and the legacy ones DeepSeek's own
    /// config.json ships: `compress_ratios`, `num_hash_layers`, `qk_rope_head_dim`,
    /// `compress_rate_csa/hca`), with transformers' defaults.
    mutating func parseDeepSeekV4(_ j: JSONValue, path: String) throws {
        func int(_ k: String, _ d: Int) -> Int { j[k]?.int ?? d }
        func dbl(_ k: String, _ d: Double) -> Double { j[k]?.double ?? d }
        let n = numLayers
        let types = try DeepSeekV4Config.layerTypes(j, layers: n, path: path)
        let rates = [DeepSeekV4Config.LayerType.slidingAttention: 0,
                     .compressedSparseAttention: j["compress_rates"]?["compressed_sparse_attention"]?.int ?? int("compress_rate_csa", 4),
                     .heavilyCompressedAttention: j["compress_rates"]?["heavily_compressed_attention"]?.int ?? int("compress_rate_hca", 128)]
        var hash = (0..<n).map { $0 < int("num_hash_layers", 3) }
        if let mlp = j["mlp_layer_types"]?.array?.compactMap(\.string), mlp.count >= n { hash = mlp.prefix(n).map { $0 == "hash_moe" } }
        let partial = j["partial_rotary_factor"]?.double ?? j["qk_rope_head_dim"]?.int.map { Double($0) / Double(headDim) } ?? 64.0 / 512
        let rope = try DeepSeekV4Config.ropes(j, path: path)
        let v = DeepSeekV4Config(
            layerTypes: types, compressRatios: types.map { rates[$0]! }, hashLayers: hash,
            headDim: headDim, qkRopeHeadDim: Int(Double(headDim) * partial), qLoraRank: int("q_lora_rank", 1024),
            oGroups: int("o_groups", 8), oLoraRank: int("o_lora_rank", 1024), slidingWindow: int("sliding_window", 128),
            hcMult: int("hc_mult", 4), hcSinkhornIters: int("hc_sinkhorn_iters", 20), hcEps: Float(dbl("hc_eps", 1e-6)),
            indexNHeads: int("index_n_heads", 64), indexHeadDim: int("index_head_dim", 128), indexTopk: int("index_topk", 512),
            swigluLimit: Float(dbl("swiglu_limit", 10)), ropeTheta: rope.mainTheta, compressRopeTheta: rope.compressTheta,
            compressRopeScaling: rope.compress, numNextnPredictLayers: int("num_nextn_predict_layers", 1))
        let scoring = j["scoring_func"]?.string ?? "sqrtsoftplus"
        guard let s = MoEConfig.Scoring(rawValue: scoring) else { throw ConfigError(message: "\(path): unknown scoring_func '\(scoring)'") }
        intermediateSize = int("moe_intermediate_size", 2048)
        moe?.normTopKProb = j["norm_topk_prob"]?.bool ?? true
        moe?.routedScalingFactor = dbl("routed_scaling_factor", 1.5)
        moe?.numSharedExperts = int("n_shared_experts", 1)
        try adoptDeepSeekV4(v, scoring: s, path: path)
    }

    /// The keys llama.cpp's converter writes for `deepseek4` (expert_gating_func 4 = sqrt-softplus;
    /// YaRN in rope.scaling.* belongs to the compress rope).
    mutating func parseDeepSeekV4(gguf g: GGUFFile) throws {
        func v(_ k: String) -> GGUFValue? { g.archValue(k) }
        func int(_ k: String) throws -> Int {
            guard let x = v(k)?.int else { throw ConfigError(message: "\(g.path): missing '\(g.architecture ?? "").\(k)'") }
            return x
        }
        let n = numLayers
        guard let ratios = v("attention.compress_ratios")?.array?.compactMap(\.int), ratios.count >= n else {
            throw ConfigError(message: "\(g.path): attention.compress_ratios needs one entry per layer")
        }
        let types = try ratios.prefix(n).map { try DeepSeekV4Config.layerType(ratio: $0, path: g.path) }
        var scaling = ropeScaling
        if scaling.kind == .yarn {
            scaling.betaFast = v("rope.scaling.yarn_beta_fast")?.double ?? 32
            scaling.betaSlow = v("rope.scaling.yarn_beta_slow")?.double ?? 1
            scaling.attentionFactor = 1
        }
        let hashLayers = v("hash_layer_count")?.int ?? 0
        let config = DeepSeekV4Config(
            layerTypes: types, compressRatios: Array(ratios.prefix(n)), hashLayers: (0..<n).map { $0 < hashLayers },
            headDim: headDim, qkRopeHeadDim: ropeDim, qLoraRank: try int("attention.q_lora_rank"),
            oGroups: try int("attention.output_group_count"), oLoraRank: try int("attention.output_lora_rank"),
            slidingWindow: try int("attention.sliding_window"), hcMult: try int("hyper_connection.count"),
            hcSinkhornIters: try int("hyper_connection.sinkhorn_iterations"), hcEps: Float(v("hyper_connection.epsilon")?.double ?? 1e-6),
            indexNHeads: v("attention.indexer.head_count")?.int ?? 0, indexHeadDim: v("attention.indexer.key_length")?.int ?? 0,
            indexTopk: v("attention.indexer.top_k")?.int ?? 0,
            swigluLimit: Float(v("swiglu_clamp_exp")?.array?.first?.double ?? v("swiglu_clamp_exp")?.double ?? 10),
            ropeTheta: ropeTheta, compressRopeTheta: v("attention.compress_rope_freq_base")?.double ?? ropeTheta,
            compressRopeScaling: scaling, numNextnPredictLayers: v("nextn_predict_layers")?.int ?? 0)
        let gating = v("expert_gating_func")?.int ?? 4
        let scoring: MoEConfig.Scoring = gating == 4 ? .sqrtSoftplus : gating == 2 ? .sigmoid : .softmax
        intermediateSize = moe?.expertIntermediateSize ?? intermediateSize
        try adoptDeepSeekV4(config, scoring: scoring, path: g.path)
    }

    /// What every V4 layer shares, whatever the file: one key = value head, the tail rope in
    /// adjacent pairs (main rope plain, the compress rope in `v4`), greedy top-k with the
    /// correction bias.
    mutating func adoptDeepSeekV4(_ v: DeepSeekV4Config, scoring: MoEConfig.Scoring, path: String) throws {
        guard v.qkRopeHeadDim > 0, v.qkRopeHeadDim % 2 == 0, v.qkRopeHeadDim <= v.headDim,
              !v.layerTypes.contains(.compressedSparseAttention) || (v.indexHeadDim >= v.qkRopeHeadDim && v.indexNHeads > 0 && v.indexTopk > 0),
              v.oGroups > 0, (numHeads * v.headDim) % v.oGroups == 0, v.slidingWindow > 0, v.hcMult > 0 else {
            throw ConfigError(message: "\(path): inconsistent DeepSeek-V4 dimensions (head_dim \(v.headDim), rope \(v.qkRopeHeadDim), index_head_dim \(v.indexHeadDim), o_groups \(v.oGroups), sliding_window \(v.slidingWindow))")
        }
        v4 = v
        numKVHeads = 1
        ropeDim = v.qkRopeHeadDim
        ropeLayout = .adjacentPairs
        ropeTheta = v.ropeTheta
        ropeScaling = RopeScaling()
        moe?.scoring = scoring
        moe?.topKMethod = .greedy
        moe?.scoreCorrectionBias = true
    }
}

extension DeepSeekV4Config {
    /// `layer_types` by name, else the legacy per-layer `compress_ratios`, else V4-Pro's default
    /// (two HCA layers, then CSA and HCA alternating).
    static func layerTypes(_ j: JSONValue, layers n: Int, path: String) throws -> [LayerType] {
        var types: [LayerType]
        if let names = j["layer_types"]?.array?.compactMap(\.string) {
            types = try names.map {
                guard let t = LayerType(rawValue: $0) else { throw ConfigError(message: "\(path): unknown layer type '\($0)'") }
                return t
            }
        } else if let ratios = j["compress_ratios"]?.array?.compactMap(\.int) {
            types = try ratios.prefix(n).map { try layerType(ratio: $0, path: path) }
        } else {
            types = (0..<n).map { $0 < 2 || $0 % 2 == 1 ? .heavilyCompressedAttention : .compressedSparseAttention }
        }
        guard types.count >= n else { throw ConfigError(message: "\(path): \(types.count) layer types for \(n) layers") }
        return Array(types.prefix(n))
    }

    static func layerType(ratio: Int, path: String) throws -> LayerType {
        switch ratio {
        case 0: return .slidingAttention
        case 4: return .compressedSparseAttention
        case 128: return .heavilyCompressedAttention
        default: throw ConfigError(message: "\(path): compress ratio \(ratio) (DeepSeek-V4 uses 0, 4 or 128)")
        }
    }
}

extension DeepSeekV4Config {
    /// rope_parameters is either nested ({"main": …, "compress": …}, transformers' form) or one
    /// flat set (DeepSeek's config.json) that scales only the compress rope.
    static func ropes(_ j: JSONValue, path: String) throws -> (mainTheta: Double, compressTheta: Double, compress: RopeScaling) {
        let rp = j["rope_parameters"]
        var mainTheta = j["rope_theta"]?.double ?? 10000
        var compressTheta = j["compress_rope_theta"]?.double ?? 160000
        var flat = rp?["rope_type"] != nil || rp?["type"] != nil ? rp : j["rope_scaling"]
        if let compress = rp?["compress"], compress.object != nil {
            mainTheta = rp?["main"]?["rope_theta"]?.double ?? mainTheta
            compressTheta = compress["rope_theta"]?.double ?? compressTheta
            flat = compress
        }
        var scaling = RopeScaling()
        if let f = flat, f.object != nil { scaling = try RopeScaling(hf: f, path: path) }
        // DeepSeek's reference does not scale cos/sin by YaRN's mscale (transformers forces 1.0).
        if scaling.kind == .yarn && scaling.attentionFactor == nil { scaling.attentionFactor = 1 }
        return (mainTheta, compressTheta, scaling)
    }
}

// MARK: - Checkpoint names

/// DeepSeek ships V4 in its own names (`layers.N.attn.wq_a.weight`, `layers.N.ffn.experts.E.w1`,
/// `embed.weight`, `hc_head_fn`, …); transformers renames them on load and save_pretrained writes
/// a mix with a `model.` prefix; llama.cpp's `deepseek4` GGUFs use blk.N.* names. The loader asks
/// for transformers' module names for V4's own tensors (the shared MoE and norm loaders use the
/// file's naming), and this finds each under whichever name the file uses.
///
/// The MTP block is asked for as layer `mtpLayer` (the main model's layer count): DeepSeek's
/// checkpoint has it as `mtp.0.*` with the layers' own names inside (`mtp.0.attn.wq_a.weight`).
final class DeepSeekV4Checkpoint: WeightSource {
    let base: WeightSource
    let gguf: Bool
    let mtpLayer: Int?
    init(_ base: WeightSource, gguf: Bool, mtpLayer: Int? = nil) { self.base = base; self.gguf = gguf; self.mtpLayer = mtpLayer }
    var tensorNames: [String] { base.tensorNames }

    func tensor(_ name: String) -> Tensor? {
        let names = gguf ? DeepSeekV4Checkpoint.ggufCandidates(name) : DeepSeekV4Checkpoint.candidates(name)
        for n in names {
            if let t = base.tensor(n) { return t }
        }
        if let m = mtpLayer, !gguf {
            let p = "layers.\(m)."
            for n in names where n.hasPrefix(p) {
                if let t = base.tensor("mtp.0." + n.dropFirst(p.count)) { return t }
            }
        }
        return nil
    }

    /// transformers' layer-relative names → llama.cpp's (DeepseekV4Model in convert_hf_to_gguf).
    static let ggufLayerNames = [
        "self_attn.q_a_proj.weight": "attn_q_a.weight", "self_attn.q_a_norm.weight": "attn_q_a_norm.weight",
        "self_attn.q_b_proj.weight": "attn_q_b.weight", "self_attn.kv_proj.weight": "attn_kv.weight",
        "self_attn.kv_norm.weight": "attn_kv_a_norm.weight", "self_attn.o_a_proj.weight": "attn_output_a.weight",
        "self_attn.o_b_proj.weight": "attn_output_b.weight", "self_attn.sinks": "attn_sinks.weight",
        "self_attn.compressor.kv_proj.weight": "attn_compressor_kv.weight", "self_attn.compressor.gate_proj.weight": "attn_compressor_gate.weight",
        "self_attn.compressor.position_bias": "attn_compressor_ape.weight", "self_attn.compressor.kv_norm.weight": "attn_compressor_norm.weight",
        "self_attn.compressor.indexer.kv_proj.weight": "indexer_compressor_kv.weight",
        "self_attn.compressor.indexer.gate_proj.weight": "indexer_compressor_gate.weight",
        "self_attn.compressor.indexer.position_bias": "indexer_compressor_ape.weight",
        "self_attn.compressor.indexer.kv_norm.weight": "indexer_compressor_norm.weight",
        "self_attn.compressor.indexer.q_b_proj.weight": "indexer.attn_q_b.weight",
        "self_attn.compressor.indexer.scorer.weights_proj.weight": "indexer.proj.weight",
        "attn_hc.fn": "hc_attn_fn.weight", "attn_hc.base": "hc_attn_base.weight", "attn_hc.scale": "hc_attn_scale.weight",
        "ffn_hc.fn": "hc_ffn_fn.weight", "ffn_hc.base": "hc_ffn_base.weight", "ffn_hc.scale": "hc_ffn_scale.weight",
        "mlp.gate.tid2eid": "ffn_gate_tid2eid.weight",
    ]
    static let ggufGlobals = ["model.hc_head.hc_fn": "output_hc_fn.weight", "model.hc_head.hc_base": "output_hc_base.weight",
                              "model.hc_head.hc_scale": "output_hc_scale.weight"]

    static func ggufCandidates(_ name: String) -> [String] {
        if let g = ggufGlobals[name] { return [g] }
        let parts = name.split(separator: ".", maxSplits: 3).map(String.init)   // model, layers, N, rest
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let g = ggufLayerNames[parts[3]] else { return [name] }
        return ["blk.\(parts[2]).\(g)"]
    }

    static let globals = ["model.embed_tokens.weight": "embed.weight", "lm_head.weight": "head.weight",
                          "model.norm.weight": "norm.weight", "model.hc_head.hc_fn": "hc_head_fn",
                          "model.hc_head.hc_base": "hc_head_base", "model.hc_head.hc_scale": "hc_head_scale"]
    /// transformers → DeepSeek, applied in order (the inverse of transformers' conversion mapping).
    static let attentionRenames = [
        (".self_attn.compressor.indexer.scorer.weights_proj.", ".attn.indexer.weights_proj."),
        (".self_attn.compressor.indexer.q_b_proj.", ".attn.indexer.wq_b."),
        (".self_attn.compressor.indexer.", ".attn.indexer.compressor."),
        (".self_attn.", ".attn."), (".input_layernorm.", ".attn_norm."), (".post_attention_layernorm.", ".ffn_norm."),
        (".attn_hc.", ".hc_attn_"), (".ffn_hc.", ".hc_ffn_"), (".sinks", ".attn_sink"), (".compressor.kv_norm.", ".compressor.norm."),
        (".position_bias", ".ape"), (".q_a_proj.", ".wq_a."), (".q_b_proj.", ".wq_b."), (".kv_proj.", ".wkv."),
        (".gate_proj.", ".wgate."), (".o_a_proj.", ".wo_a."), (".o_b_proj.", ".wo_b."), (".q_a_norm.", ".q_norm."),
    ]
    static let mlpRenames = [
        (".mlp.gate.e_score_correction_bias", ".ffn.gate.bias"),
        (".gate_proj.", ".w1."), (".up_proj.", ".w3."), (".down_proj.", ".w2."), (".mlp.", ".ffn."),
    ]

    static func candidates(_ name: String) -> [String] {
        if let g = globals[name] { return [name, g] }
        guard name.hasPrefix("model.layers.") else { return [name] }
        var n = String(name.dropFirst("model".count))
        for (a, b) in n.contains(".mlp.") ? mlpRenames : attentionRenames { n = n.replacingOccurrences(of: a, with: b) }
        // save_pretrained writes the attention's kv_norm as `attn.norm`.
        let saved = n.replacingOccurrences(of: ".attn.kv_norm.", with: ".attn.norm.")
        return [name, String(n.dropFirst()), "model" + n, "model" + saved]
    }
}

// MARK: - Hyper-connections (mHC)

/// Unweighted RMSNorm of `n` values in place (q_b_norm per head, the hyper-connections' input).
@inline(__always) func unitRMSNorm(_ x: UnsafeMutablePointer<Float>, _ n: Int, eps: Float) {
    var ss: Float = 0
    for i in 0..<n { ss += x[i] * x[i] }
    let r = 1 / (ss / Float(n) + eps).squareRoot()
    for i in 0..<n { x[i] *= r }
}

@inline(__always) func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// One block's hyper-connection (`attn_hc` / `ffn_hc`): fn [(2+N)·N, N·hidden], base, scale [3].
public final class HyperConnection {
    let hcMult: Int, hidden: Int, sinkhornIters: Int, hcEps: Float, normEps: Float
    let fn: Linear
    let base: [Float], scale: [Float]

    init(fn: Linear, base: [Float], scale: [Float], config c: ModelConfig) throws {
        let v = c.v4!, N = v.hcMult
        guard fn.outFeatures == (2 + N) * N, fn.inFeatures == N * c.hiddenSize, base.count == (2 + N) * N, scale.count == 3 else {
            throw ModelLoadError.badShape(name: fn.weight.name, shape: fn.weight.shape, expected: "[\((2 + N) * N), \(N * c.hiddenSize)] with base [\((2 + N) * N)] and scale [3]")
        }
        self.fn = fn; self.base = base; self.scale = scale
        hcMult = N; hidden = c.hiddenSize; sinkhornIters = v.hcSinkhornIters; hcEps = v.hcEps; normEps = Float(c.rmsNormEps)
    }

    /// The mixes of one token: post [N] and comb [N×N] (comb[j·N + k]: old stream j into new k).
    public struct Mixes { var post: [Float]; var comb: [Float] }

    /// Collapses each token's N streams ([T, N, hidden]) into the block input ([T, hidden]) with
    /// `pre`, and returns the mixes that `merge` needs.
    func collapse(_ streams: UnsafePointer<Float>, count T: Int, into out: UnsafeMutablePointer<Float>) -> [Mixes] {
        let N = hcMult, W = N * hidden, M = (2 + N) * N
        let normed = FloatBuffer(count: T * W, zeroed: false)
        normed.p.update(from: streams, count: T * W)
        for t in 0..<T { unitRMSNorm(normed.p + t * W, W, eps: normEps) }
        let mixes = FloatBuffer(count: T * M, zeroed: false)
        fn.forward(normed.p, rows: T, out: mixes.p)
        return (0..<T).map { t in
            let m = mixes.p + t * M
            let pre = (0..<N).map { sigmoid(m[$0] * scale[0] + base[$0]) + hcEps }
            let post = (0..<N).map { 2 * sigmoid(m[N + $0] * scale[1] + base[N + $0]) }
            let row = out + t * hidden
            row.initialize(repeating: 0, count: hidden)
            for n in 0..<N { VectorOps.axpy(pre[n], streams + t * W + n * hidden, row, hidden) }
            return Mixes(post: post, comb: sinkhorn((0..<N * N).map { m[2 * N + $0] * scale[2] + base[2 * N + $0] }))
        }
    }

    /// Row softmax + eps, then Sinkhorn-Knopp towards a doubly-stochastic matrix: columns first,
    /// then rows and columns alternately (`hc_sinkhorn_iters` column passes in all).
    func sinkhorn(_ logits: [Float]) -> [Float] {
        let N = hcMult
        var c = logits
        for j in 0..<N {
            let mx = c[j * N..<(j + 1) * N].max()!
            var z: Float = 0
            for k in 0..<N { c[j * N + k] = expf(c[j * N + k] - mx); z += c[j * N + k] }
            for k in 0..<N { c[j * N + k] = c[j * N + k] / z + hcEps }
        }
        func normalizeColumns() {
            for k in 0..<N {
                var s: Float = 0
                for j in 0..<N { s += c[j * N + k] }
                for j in 0..<N { c[j * N + k] /= s + hcEps }
            }
        }
        normalizeColumns()
        for _ in 1..<max(sinkhornIters, 1) {
            for j in 0..<N {
                var s: Float = 0
                for k in 0..<N { s += c[j * N + k] }
                for k in 0..<N { c[j * N + k] /= s + hcEps }
            }
            normalizeColumns()
        }
        return c
    }

    /// streams ← post ⊗ block output + combᵀ · streams, per token.
    func merge(_ y: UnsafePointer<Float>, into streams: UnsafeMutablePointer<Float>, count T: Int, _ mixes: [Mixes]) {
        let N = hcMult, H = hidden
        let old = UnsafeMutablePointer<Float>.allocate(capacity: N * H)
        defer { old.deallocate() }
        for t in 0..<T {
            let s = streams + t * N * H
            old.update(from: s, count: N * H)
            for k in 0..<N {
                let dst = s + k * H
                for d in 0..<H { dst[d] = mixes[t].post[k] * y[t * H + d] }
                for j in 0..<N { VectorOps.axpy(mixes[t].comb[j * N + k], old + j * H, dst, H) }
            }
        }
    }
}

/// `hc_head`: the last collapse of the streams before the final norm (pre only).
public final class HyperHead {
    let hcMult: Int, hidden: Int, hcEps: Float, normEps: Float
    let fn: Linear
    let base: [Float], scale: Float

    init(fn: Linear, base: [Float], scale: [Float], config c: ModelConfig) throws {
        let N = c.v4!.hcMult
        guard fn.outFeatures == N, fn.inFeatures == N * c.hiddenSize, base.count == N, scale.count == 1 else {
            throw ModelLoadError.badShape(name: fn.weight.name, shape: fn.weight.shape, expected: "[\(N), \(N * c.hiddenSize)], base [\(N)], scale [1]")
        }
        self.fn = fn; self.base = base; self.scale = scale[0]
        hcMult = N; hidden = c.hiddenSize; hcEps = c.v4!.hcEps; normEps = Float(c.rmsNormEps)
    }

    func collapse(_ streams: UnsafePointer<Float>, count T: Int, into out: UnsafeMutablePointer<Float>) {
        let N = hcMult, W = N * hidden
        let normed = FloatBuffer(count: T * W, zeroed: false)
        normed.p.update(from: streams, count: T * W)
        for t in 0..<T { unitRMSNorm(normed.p + t * W, W, eps: normEps) }
        let mixes = FloatBuffer(count: T * N, zeroed: false)
        fn.forward(normed.p, rows: T, out: mixes.p)
        for t in 0..<T {
            let row = out + t * hidden
            row.initialize(repeating: 0, count: hidden)
            for n in 0..<N { VectorOps.axpy(sigmoid(mixes.p[t * N + n] * scale + base[n]) + hcEps, streams + t * W + n * hidden, row, hidden) }
        }
    }
}

// MARK: - Compressors

/// A compressor's running state in the cache: the entries emitted so far, the open window's
/// projected tokens (gate with the position bias added), and for overlapping (CSA) windows the
/// last closed window's first series, which the next entry mixes in.
public final class CompressorState {
    let ratio: Int, headDim: Int, width: Int
    let entries: FloatBuffer
    public internal(set) var entryCount = 0
    let pendingKV: FloatBuffer, pendingGate: FloatBuffer
    var pending = 0
    let previousKV: FloatBuffer?, previousGate: FloatBuffer?
    var hasPrevious = false

    init(ratio: Int, headDim: Int, overlap: Bool, capacity: Int) {
        self.ratio = ratio; self.headDim = headDim; width = overlap ? 2 * headDim : headDim
        entries = FloatBuffer(count: (capacity / ratio + 1) * headDim, zeroed: false)
        pendingKV = FloatBuffer(count: ratio * width, zeroed: false)
        pendingGate = FloatBuffer(count: ratio * width, zeroed: false)
        previousKV = overlap ? FloatBuffer(count: ratio * headDim, zeroed: false) : nil
        previousGate = overlap ? FloatBuffer(count: ratio * headDim, zeroed: false) : nil
    }

    func entry(_ i: Int) -> UnsafeMutablePointer<Float> { entries.p + i * headDim }
    func reset() { entryCount = 0; pending = 0; hasPrevious = false; undo = nil }
    var bytes: Int { 4 * (entries.count + 2 * pendingKV.count + 2 * (previousKV?.count ?? 0)) }

    /// What the last step changed, so that `takeBack` can return to any position inside it:
    /// the counters before it, the open window's rows that an emit would overwrite (copied only
    /// when the step closes a window), and the rows the step fed (re-fed up to the position
    /// kept: emitting is deterministic, so the entries come out the same).
    struct Undo {
        let base: Int, count: Int
        let entryCount: Int, pending: Int, hasPrevious: Bool
        /// The open window's filled rows and the previous window, when the step closes a window.
        let saved: [(buffer: FloatBuffer, values: [Float])]
        unowned let compressor: DeepSeekV4Compressor
        var fedKV: [Float] = [], fedGate: [Float] = []
    }
    var undo: Undo?

    /// Before a step of `count` rows from position `base` (no record for a longer step).
    func beginStep(base: Int, count: Int, by compressor: DeepSeekV4Compressor) {
        guard count <= DeepSeekV4Cache.stepTakeBack else { undo = nil; return }
        var saved: [(buffer: FloatBuffer, values: [Float])] = []
        if pending + count >= ratio {
            let open = [(pendingKV, pending * width), (pendingGate, pending * width)]
            let previous = [previousKV, previousGate].compactMap { $0.map { ($0, $0.count) } }
            saved = (open + previous).map { ($0.0, Array(UnsafeBufferPointer(start: $0.0.p, count: $0.1))) }
        }
        undo = Undo(base: base, count: count, entryCount: entryCount, pending: pending, hasPrevious: hasPrevious,
                    saved: saved, compressor: compressor)
        undo!.fedKV.reserveCapacity(count * width)
        undo!.fedGate.reserveCapacity(count * width)
    }

    /// Whether the state can return to `position` (inside the last recorded step).
    func canTakeBack(to position: Int) -> Bool {
        guard let u = undo else { return false }
        return position >= u.base && position <= u.base + u.count
    }

    /// Returns to the state after `position - base` of the last step's rows.
    func takeBack(to position: Int) {
        guard let u = undo, canTakeBack(to: position) else { preconditionFailure("compressor state cannot return to position \(position)") }
        undo = nil
        entryCount = u.entryCount; pending = u.pending; hasPrevious = u.hasPrevious
        for s in u.saved { s.buffer.p.update(from: s.values, count: s.values.count) }
        let w = width
        u.fedKV.withUnsafeBufferPointer { kv in
            u.fedGate.withUnsafeBufferPointer { g in
                for r in 0..<(position - u.base) { u.compressor.feed(kv: kv.baseAddress! + r * w, gate: g.baseAddress! + r * w, into: self) }
            }
        }
    }
}

/// One compressor's weights (CSA's and HCA's `compressor`, CSA's `compressor.indexer`): kv and
/// gate projections of the attention input, `position_bias` [ratio, width], `kv_norm`.
final class DeepSeekV4Compressor {
    let ratio: Int, headDim: Int, overlap: Bool
    let kvProj: Linear, gateProj: Linear
    let positionBias: [Float]
    let kvNorm: RMSNorm
    let rope: Rope
    var width: Int { overlap ? 2 * headDim : headDim }

    init(ratio: Int, headDim: Int, overlap: Bool, kvProj: Linear, gateProj: Linear, positionBias: [Float], kvNorm: RMSNorm, rope: Rope) throws {
        self.ratio = ratio; self.headDim = headDim; self.overlap = overlap
        self.kvProj = kvProj; self.gateProj = gateProj; self.positionBias = positionBias; self.kvNorm = kvNorm; self.rope = rope
        let w = overlap ? 2 * headDim : headDim
        guard ratio > 0, kvProj.outFeatures == w, gateProj.outFeatures == w, positionBias.count == ratio * w, kvNorm.weight.count == headDim else {
            throw ModelLoadError.badShape(name: kvProj.weight.name, shape: kvProj.weight.shape, expected: "[\(w), hidden] with position_bias [\(ratio), \(w)] and kv_norm [\(headDim)]")
        }
    }

    /// Feeds one token's projections; when its window closes, emits the window's entry.
    func feed(kv: UnsafePointer<Float>, gate: UnsafePointer<Float>, into s: CompressorState) {
        let w = width, slot = s.pending
        if s.undo != nil {
            s.undo!.fedKV.append(contentsOf: UnsafeBufferPointer(start: kv, count: w))
            s.undo!.fedGate.append(contentsOf: UnsafeBufferPointer(start: gate, count: w))
        }
        (s.pendingKV.p + slot * w).update(from: kv, count: w)
        for d in 0..<w { s.pendingGate.p[slot * w + d] = gate[d] + positionBias[slot * w + d] }
        s.pending += 1
        if s.pending == ratio { emit(s) }
    }

    /// Entry = kv_norm(Σ_slots softmax_slots(gate) ⊙ kv), feature by feature, then rope at the
    /// window's first position. Overlapping windows mix 2·ratio slots: the previous window's Ca
    /// (first headDim features; absent before the first window) and this window's Cb (the rest).
    func emit(_ s: CompressorState) {
        let hd = headDim, w = width, m = ratio
        let out = s.entry(s.entryCount)
        var gates = [Float](repeating: 0, count: 2 * m), values = gates
        for d in 0..<hd {
            var n = 0
            if overlap, s.hasPrevious, let pk = s.previousKV, let pg = s.previousGate {
                for j in 0..<m { gates[n] = pg.p[j * hd + d]; values[n] = pk.p[j * hd + d]; n += 1 }
            }
            let offset = overlap ? hd : 0
            for j in 0..<m { gates[n] = s.pendingGate.p[j * w + offset + d]; values[n] = s.pendingKV.p[j * w + offset + d]; n += 1 }
            let mx = gates[0..<n].max()!
            var z: Float = 0, acc: Float = 0
            for j in 0..<n { let e = expf(gates[j] - mx); z += e; acc += e * values[j] }
            out[d] = acc / z
        }
        if overlap, let pk = s.previousKV, let pg = s.previousGate {
            for j in 0..<m {
                (pk.p + j * hd).update(from: s.pendingKV.p + j * w, count: hd)
                (pg.p + j * hd).update(from: s.pendingGate.p + j * w, count: hd)
            }
            s.hasPrevious = true
        }
        kvNorm.forward(out, rows: 1, out: out)
        rope.rotateTail(out, nHeads: 1, headDim: hd, position: s.entryCount * m)
        s.entryCount += 1
        s.pending = 0
    }
}

extension Rope {
    /// Rotates the last `dim` values of each head (V4 lays heads out as [nope | rope]);
    /// `inverse` rotates by −position (the attention output's de-rotation).
    func rotateTail(_ x: UnsafeMutablePointer<Float>, nHeads: Int, headDim: Int, position: Int, inverse: Bool = false) {
        var c = [Float](repeating: 0, count: dim / 2), s = c
        table(position: position, cos: &c, sin: &s)
        if inverse { s = s.map { -$0 } }
        apply(x + (headDim - dim), nHeads: nHeads, headStride: headDim, cos: c, sin: s)
    }
}

/// CSA's lightning indexer: its own overlapping compressor at `index_head_dim`, queries from the
/// attention's q_residual (`q_b_proj`, rope), per-head weights from the input (`weights_proj`).
final class DeepSeekV4Indexer {
    let compressor: DeepSeekV4Compressor
    let qBProj: Linear, weightsProj: Linear
    let nHeads: Int, headDim: Int, topk: Int

    init(compressor: DeepSeekV4Compressor, qBProj: Linear, weightsProj: Linear, nHeads: Int, topk: Int) throws {
        self.compressor = compressor; self.qBProj = qBProj; self.weightsProj = weightsProj
        self.nHeads = nHeads; headDim = compressor.headDim; self.topk = topk
        guard qBProj.outFeatures == nHeads * headDim, weightsProj.outFeatures == nHeads else {
            throw ModelLoadError.badShape(name: qBProj.weight.name, shape: qBProj.weight.shape, expected: "[\(nHeads * headDim), q_lora_rank] and weights_proj [\(nHeads), hidden]")
        }
    }

    /// The `index_topk` entries (of the first `visible`) with the highest Σ_h w_h·ReLU(q_h·K_s)
    /// (q rotated, w scaled by n_heads^-½): the only compressed entries the query attends to.
    func select(q: UnsafePointer<Float>, weights: UnsafePointer<Float>, keys s: CompressorState, visible: Int) -> [Int] {
        guard visible > 0 else { return [] }
        let scale = 1 / Float(headDim).squareRoot(), wScale = 1 / Float(nHeads).squareRoot()
        var scores = [Float](repeating: 0, count: visible)
        for e in 0..<visible {
            let k = s.entry(e)
            var total: Float = 0
            for h in 0..<nHeads { total += max(VectorOps.dot(q + h * headDim, k, headDim), 0) * scale * (weights[h] * wScale) }
            scores[e] = total
        }
        return scores.withUnsafeBufferPointer { VectorOps.largest($0.baseAddress!, visible, topk) }.map(\.id)
    }
}

// MARK: - Attention

public final class DeepSeekV4Attention: AttentionBlock {
    let layerType: DeepSeekV4Config.LayerType
    let nHeads: Int, headDim: Int, slidingWindow: Int, oGroups: Int
    let qAProj: Linear, qANorm: RMSNorm, qBProj: Linear, kvProj: Linear, kvNorm: RMSNorm
    /// o_a_proj's `o_groups` blocks: group g maps heads g·H/o_groups … to o_lora_rank values.
    let oAGroups: [Linear]
    let oBProj: Linear
    let sinks: [Float]
    let rope: Rope
    let compressor: DeepSeekV4Compressor?
    let indexer: DeepSeekV4Indexer?
    let normEps: Float
    let scaling: Float

    init(config c: ModelConfig, layer i: Int, qAProj: Linear, qANorm: RMSNorm, qBProj: Linear, kvProj: Linear, kvNorm: RMSNorm,
         oAProj: Linear, oBProj: Linear, sinks: [Float], rope: Rope, compressor: DeepSeekV4Compressor?, indexer: DeepSeekV4Indexer?) throws {
        let v = c.v4!
        layerType = v.layerTypes[i]; nHeads = c.numHeads; headDim = v.headDim; slidingWindow = v.slidingWindow; oGroups = v.oGroups
        self.qAProj = qAProj; self.qANorm = qANorm; self.qBProj = qBProj; self.kvProj = kvProj; self.kvNorm = kvNorm
        self.oBProj = oBProj; self.sinks = sinks; self.rope = rope; self.compressor = compressor; self.indexer = indexer
        normEps = Float(c.rmsNormEps); scaling = 1 / Float(v.headDim).squareRoot()
        let groupIn = nHeads * headDim / oGroups, r = v.oLoraRank
        guard qBProj.outFeatures == nHeads * headDim, kvProj.outFeatures == headDim, sinks.count == nHeads,
              oAProj.inFeatures == groupIn, oAProj.outFeatures == oGroups * r, oBProj.inFeatures == oGroups * r else {
            throw ModelLoadError.badShape(name: oAProj.weight.name, shape: oAProj.weight.shape,
                                          expected: "[\(oGroups * r), \(groupIn)] (o_groups × o_lora_rank, heads × head_dim / o_groups) for layer \(i)")
        }
        oAGroups = try (0..<oGroups).map { try Linear(weight: oAProj.weight.rows($0 * r..<($0 + 1) * r)) }
    }

    public func forward(_ x: UnsafePointer<Float>, segments: [BatchSegment], layer: Int, out: UnsafeMutablePointer<Float>) {
        let T = segments.reduce(0) { $0 + $1.count }, H = nHeads, hd = headDim, qw = H * hd
        // Queries: q_residual = q_a_norm(q_a_proj(x)), q = q_b_proj(q_residual), RMS per head, rope.
        let qRes = FloatBuffer(count: T * qAProj.outFeatures, zeroed: false)
        qAProj.forward(x, rows: T, out: qRes.p)
        qANorm.forward(qRes.p, rows: T, out: qRes.p)
        let q = FloatBuffer(count: T * qw, zeroed: false)
        qBProj.forward(qRes.p, rows: T, out: q.p)
        // The one key = value row per token: kv_norm(kv_proj(x)), rope.
        let kv = FloatBuffer(count: T * hd, zeroed: false)
        kvProj.forward(x, rows: T, out: kv.p)
        kvNorm.forward(kv.p, rows: T, out: kv.p)
        for seg in segments {
            for r in seg.rows {
                let pos = seg.position(ofRow: r)
                for h in 0..<H { unitRMSNorm(q.p + r * qw + h * hd, hd, eps: normEps) }
                rope.rotateTail(q.p + r * qw, nHeads: H, headDim: hd, position: pos)
                rope.rotateTail(kv.p + r * hd, nHeads: 1, headDim: hd, position: pos)
            }
        }
        let side = CompressedInputs(self, x: x, qResidual: qRes.p, rows: T, segments: segments)
        let attn = FloatBuffer(count: T * qw, zeroed: false)
        for seg in segments {
            guard let cache = seg.cache as? DeepSeekV4Cache else { preconditionFailure("DeepSeek-V4 attention needs a DeepSeekV4Cache (model.makeCache)") }
            attend(seg, state: cache.layerStates[layer], q: q.p, kv: kv.p, side: side, out: attn.p)
        }
        // Undo the keys' rotation on the output's rope slice (K = V), at the query's position.
        for seg in segments {
            for r in seg.rows { rope.rotateTail(attn.p + r * qw, nHeads: H, headDim: hd, position: seg.position(ofRow: r), inverse: true) }
        }
        groupedOutput(attn.p, rows: T, out: out)
    }

    /// The compressor's (and indexer's) projections of this step's rows, computed for the whole batch.
    struct CompressedInputs {
        var kv: FloatBuffer?, gate: FloatBuffer?
        var indexKV: FloatBuffer?, indexGate: FloatBuffer?, indexQ: FloatBuffer?, indexWeights: FloatBuffer?

        init(_ a: DeepSeekV4Attention, x: UnsafePointer<Float>, qResidual: UnsafePointer<Float>, rows T: Int, segments: [BatchSegment]) {
            func project(_ l: Linear, _ input: UnsafePointer<Float>) -> FloatBuffer {
                let b = FloatBuffer(count: T * l.outFeatures, zeroed: false)
                l.forward(input, rows: T, out: b.p)
                return b
            }
            if let c = a.compressor { kv = project(c.kvProj, x); gate = project(c.gateProj, x) }
            if let ix = a.indexer {
                indexKV = project(ix.compressor.kvProj, x); indexGate = project(ix.compressor.gateProj, x)
                indexWeights = project(ix.weightsProj, x)
                let iq = project(ix.qBProj, qResidual)
                for seg in segments {
                    for r in seg.rows {
                        ix.compressor.rope.rotateTail(iq.p + r * ix.nHeads * ix.headDim, nHeads: ix.nHeads, headDim: ix.headDim,
                                                      position: seg.position(ofRow: r))
                    }
                }
                indexQ = iq
            }
        }
    }

    /// One sequence's rows: its tokens enter the compressors first (a query sees the entries
    /// whose window it completes), then each row attends to its window and compressed entries,
    /// then the window ring keeps the newest rows.
    func attend(_ seg: BatchSegment, state: DeepSeekV4Cache.Layer, q: UnsafePointer<Float>, kv: UnsafePointer<Float>,
                side: CompressedInputs, out: UnsafeMutablePointer<Float>) {
        let hd = headDim, base = seg.cache.length
        if let c = compressor, let s = state.compressor, let ck = side.kv, let cg = side.gate {
            s.beginStep(base: base, count: seg.count, by: c)
            for r in seg.rows { c.feed(kv: ck.p + r * c.width, gate: cg.p + r * c.width, into: s) }
        }
        if let ix = indexer, let s = state.indexer, let ik = side.indexKV, let ig = side.indexGate {
            let w = ix.compressor.width
            s.beginStep(base: base, count: seg.count, by: ix.compressor)
            for r in seg.rows { ix.compressor.feed(kv: ik.p + r * w, gate: ig.p + r * w, into: s) }
        }
        var reads = [RowReads](repeating: RowReads(), count: seg.count)
        reads.withUnsafeMutableBufferPointer { counts in
            let counts = counts.baseAddress!
            ThreadPool.shared.parallelFor(seg.count) { range in
                for t in range {
                    let r = seg.row + t
                    counts[t] = self.attendRow(r, position: base + t, seg: seg, state: state, q: q, kv: kv, side: side, out: out)
                }
            }
        }
        for c in reads { state.windowReads += c.window; state.compressedReads += c.compressed; state.indexKeyReads += c.indexKeys }
        if state.recordIndexerPicks && indexer != nil { state.indexerPicks += reads.map { $0.picks.sorted() } }
        for pos in max(base, base + seg.count - state.ringRows)..<(base + seg.count) {
            state.window(pos).update(from: kv + (seg.row + pos - base) * hd, count: hd)
        }
    }

    /// What one query row read from the cache: window rows, compressed entries, indexer keys
    /// scored, and which entries the indexer picked (CSA).
    struct RowReads { var window = 0, compressed = 0, indexKeys = 0; var picks: [Int] = [] }

    /// Row r (at `position`): gathers the keys it may read — the last `sliding_window` positions
    /// (this step's rows or the ring), then the compressed entries (HCA: every closed window;
    /// CSA: the indexer's picks) — and runs each head's softmax with its sink over them.
    func attendRow(_ r: Int, position p: Int, seg: BatchSegment, state: DeepSeekV4Cache.Layer, q: UnsafePointer<Float>,
                   kv: UnsafePointer<Float>, side: CompressedInputs, out: UnsafeMutablePointer<Float>) -> RowReads {
        let hd = headDim, H = nHeads, base = seg.cache.length
        var rows = [UnsafePointer<Float>]()
        for pos in max(0, p - slidingWindow + 1)...p {
            rows.append(pos >= base ? kv + (seg.row + pos - base) * hd : UnsafePointer(state.window(pos)))
        }
        let windowCount = rows.count
        var indexKeys = 0, picked = [Int]()
        if let s = state.compressor {
            let visible = min((p + 1) / s.ratio, s.entryCount)
            var picks = Array(0..<visible)
            if let ix = indexer, let iq = side.indexQ, let iw = side.indexWeights, let keys = state.indexer {
                indexKeys = min(visible, keys.entryCount)
                picks = ix.select(q: iq.p + r * ix.nHeads * ix.headDim, weights: iw.p + r * ix.nHeads, keys: keys, visible: indexKeys)
                picked = picks
            }
            for e in picks { rows.append(UnsafePointer(s.entry(e))) }
        }
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: rows.count)
        defer { scores.deallocate() }
        for h in 0..<H {
            let qh = q + r * H * hd + h * hd, o = out + r * H * hd + h * hd
            var mx = sinks[h]
            for (j, k) in rows.enumerated() { scores[j] = VectorOps.dot(qh, k, hd) * scaling; mx = max(mx, scores[j]) }
            var z = expf(sinks[h] - mx)
            for j in rows.indices { scores[j] = expf(scores[j] - mx); z += scores[j] }
            o.initialize(repeating: 0, count: hd)
            for (j, k) in rows.enumerated() { VectorOps.axpy(scores[j] / z, k, o, hd) }
        }
        return RowReads(window: windowCount, compressed: rows.count - windowCount, indexKeys: indexKeys, picks: picked)
    }

    /// o_b_proj(concat_g o_a_proj_g(heads of group g)): each group's heads are contiguous in a row.
    func groupedOutput(_ attn: UnsafePointer<Float>, rows T: Int, out: UnsafeMutablePointer<Float>) {
        let gw = nHeads * headDim / oGroups, r = oAGroups[0].outFeatures
        let grouped = FloatBuffer(count: oGroups * T * gw, zeroed: false)
        for g in 0..<oGroups {
            for t in 0..<T { (grouped.p + (g * T + t) * gw).update(from: attn + t * nHeads * headDim + g * gw, count: gw) }
        }
        let mid = FloatBuffer(count: oGroups * T * r, zeroed: false)
        Linear.forward(jobs: (0..<oGroups).map { LinearJob(oAGroups[$0], input: $0, out: mid.p + $0 * T * r) },
                       inputs: (0..<oGroups).map { LinearInput(grouped.p + $0 * T * gw, rows: T) })
        let joined = FloatBuffer(count: T * oGroups * r, zeroed: false)
        for t in 0..<T { for g in 0..<oGroups { (joined.p + (t * oGroups + g) * r).update(from: mid.p + (g * T + t) * r, count: r) } }
        oBProj.forward(joined.p, rows: T, out: out)
    }
}

extension DeepSeekV4Attention: ActiveWeights {
    public var activeWeightBytesPerToken: Int {
        var l = [qAProj, qBProj, kvProj, oBProj] + oAGroups
        if let c = compressor { l += [c.kvProj, c.gateProj] }
        if let ix = indexer { l += [ix.qBProj, ix.weightsProj, ix.compressor.kvProj, ix.compressor.gateProj] }
        return l.reduce(0) { $0 + $1.weight.byteCount }
    }
}

// MARK: - Cache

/// Per layer: the ring of the last `sliding_window` key rows, and for compressed layers the
/// compressor's (and CSA's indexer's) state. Counts the rows attention reads, by kind.
public final class DeepSeekV4Cache: KVCache, @unchecked Sendable {
    public final class Layer {
        public let type: DeepSeekV4Config.LayerType
        let slidingWindow: Int, headDim: Int
        /// The ring holds `stepTakeBack` rows more than the window, so that taking back that
        /// many positions leaves the window whole.
        let ringRows: Int
        let ring: FloatBuffer
        public let compressor: CompressorState?
        public let indexer: CompressorState?
        /// Rows read by attention so far: window rows, compressed entries, indexer keys scored.
        public internal(set) var windowReads = 0, compressedReads = 0, indexKeyReads = 0
        /// With `recordIndexerPicks`, each query row's indexer picks (sorted), in processing order.
        public var recordIndexerPicks = false
        public internal(set) var indexerPicks: [[Int]] = []

        init(config v: DeepSeekV4Config, layer i: Int, capacity: Int) {
            type = v.layerTypes[i]; slidingWindow = v.slidingWindow; headDim = v.headDim
            ringRows = v.slidingWindow + DeepSeekV4Cache.stepTakeBack
            ring = FloatBuffer(count: ringRows * v.headDim, zeroed: false)
            let m = v.compressRatios[i]
            compressor = m > 0 ? CompressorState(ratio: m, headDim: v.headDim, overlap: type == .compressedSparseAttention, capacity: capacity) : nil
            indexer = type == .compressedSparseAttention ? CompressorState(ratio: m, headDim: v.indexHeadDim, overlap: true, capacity: capacity) : nil
        }

        /// Where position `pos`'s key row lives (valid for the last `sliding_window` positions).
        func window(_ pos: Int) -> UnsafeMutablePointer<Float> { ring.p + (pos % ringRows) * headDim }
        public func resetReads() { windowReads = 0; compressedReads = 0; indexKeyReads = 0 }
        var bytes: Int { ring.count * 4 + (compressor?.bytes ?? 0) + (indexer?.bytes ?? 0) }
    }

    public let layerStates: [Layer]

    init(config v: DeepSeekV4Config, capacity: Int) {
        layerStates = v.layerTypes.indices.map { Layer(config: v, layer: $0, capacity: capacity) }
        super.init(layers: 0, capacity: capacity, kWidth: 0, vWidth: 0)
    }

    public override var bytes: Int { layerStates.reduce(0) { $0 + $1.bytes } }
    public override var canRewind: Bool { false }

    /// The most positions a truncate takes back: those of a last step of at most this many
    /// tokens (a verification step of speculative decoding: 1 + draft). The ring keeps this
    /// many rows beyond the window; the compressors keep an undo record of such a step.
    public static let stepTakeBack = 16
    public override var takeBackLimit: Int { DeepSeekV4Cache.stepTakeBack }

    public override func canTruncate(to position: Int) -> Bool {
        if position >= length || position <= 0 { return true }
        guard length - position <= DeepSeekV4Cache.stepTakeBack else { return false }
        return layerStates.allSatisfy { l in
            [l.compressor, l.indexer].allSatisfy { s in s.map { $0.canTakeBack(to: position) } ?? true }
        }
    }

    /// Keeps everything (a position at or past the end), starts again (0), or takes back
    /// positions of the last step (`canTruncate`): older rows have left the ring and closed
    /// windows are folded into entries, so nothing further back can return.
    public override func truncate(to position: Int) {
        if position >= length { return }
        if position <= 0 {
            length = 0
            for l in layerStates { l.compressor?.reset(); l.indexer?.reset() }
            return
        }
        precondition(canTruncate(to: position), "the DeepSeek-V4 cache holds \(length) positions and cannot be cut back to \(position): only the last step's positions can be taken back (ask reusablePrefix, or re-read the prompt)")
        for l in layerStates { l.compressor?.takeBack(to: position); l.indexer?.takeBack(to: position) }
        length = position
    }

    public override func snapshotBytes(count n: Int) -> Int { 0 }
    public override func snapshot(count n: Int) -> Snapshot {
        preconditionFailure("the DeepSeek-V4 cache has no per-position snapshot (the prompt cache skips caches that cannot rewind)")
    }
    public override func restore(_ s: Snapshot, count n: Int) {
        preconditionFailure("the DeepSeek-V4 cache has no per-position snapshot (the prompt cache skips caches that cannot rewind)")
    }
}

public struct DeepSeekV4CacheLayout: CacheLayout {
    public let v4: DeepSeekV4Config
    public init(v4: DeepSeekV4Config) { self.v4 = v4 }

    public func makeCache(capacity: Int) -> KVCache { DeepSeekV4Cache(config: v4, capacity: capacity) }

    /// Per layer: (bytes per position, fixed bytes) — entries grow by one per `ratio` positions.
    func perLayer(_ i: Int) -> (perToken: Double, fixed: Int) {
        let hd = v4.headDim, m = v4.compressRatios[i], window = (v4.slidingWindow + DeepSeekV4Cache.stepTakeBack) * hd * 4
        switch v4.layerTypes[i] {
        case .slidingAttention: return (0, window)
        case .heavilyCompressedAttention: return (Double(hd * 4) / Double(m), window + 2 * m * hd * 4)
        case .compressedSparseAttention:
            let ihd = v4.indexHeadDim
            return (Double((hd + ihd) * 4) / Double(m), window + m * 4 * (4 * hd + 4 * ihd))
        }
    }

    public var bytesPerToken: Int { Int(v4.layerTypes.indices.reduce(0.0) { $0 + perLayer($1).perToken }.rounded(.up)) }

    public var kinds: [CacheLayerKind] {
        DeepSeekV4Config.LayerType.allCases.compactMap { kind in
            let ls = v4.layerTypes.indices.filter { v4.layerTypes[$0] == kind }
            guard let first = ls.first else { return nil }
            let (p, f) = perLayer(first)
            let name = kind == .slidingAttention ? "sliding window \(v4.slidingWindow)" : "\(kind.rawValue) (1 entry per \(v4.compressRatios[first]) tokens)"
            return CacheLayerKind(kind: name, layers: ls.count, bytesPerToken: p, fixedBytes: f)
        }
    }
}

// MARK: - The decoder

extension TransformerModel {
    /// The layer loop with hyper-connections: `x` holds the embeddings on entry and the collapsed
    /// final hidden state (before the final norm) on return.
    func forwardHyperConnected(_ x: UnsafeMutablePointer<Float>, tokens: [Int], segments: [BatchSegment], head: HyperHead) throws {
        guard segments.allSatisfy({ $0.cache is DeepSeekV4Cache }) else {
            throw ModelLoadError.unsupported("DeepSeek-V4 runs on its own cache (TransformerModel.makeCache)")
        }
        let T = tokens.count, H = config.hiddenSize, N = head.hcMult
        let streams = FloatBuffer(count: T * N * H, zeroed: false)
        for t in 0..<T { for n in 0..<N { (streams.p + (t * N + n) * H).update(from: x + t * H, count: H) } }
        let h = FloatBuffer(count: T * H, zeroed: false), y = FloatBuffer(count: T * H, zeroed: false)
        for (i, layer) in layers.enumerated() {
            try layer.forwardHyperConnected(streams.p, tokens: tokens, segments: segments, layer: i, scratch: (h, y))
        }
        // An MTP drafter reads the streams after the last layer (DeepSeek's MTPBlock input).
        for s in segments {
            if let tap = s.cache.hiddenTap, tap.recording { for r in s.rows { tap.store(position: s.position(ofRow: r), streams.p + r * N * H) } }
        }
        head.collapse(streams.p, count: T, into: x)
    }
}

extension DecoderLayer {
    /// One V4 block on the hyper-connection streams ([T, hc_mult, hidden], updated in place):
    /// `attn_hc` collapses them into the attention's input and merges its output back, then
    /// `ffn_hc` does the same around the MoE block. `layer` indexes the cache's layers.
    func forwardHyperConnected(_ streams: UnsafeMutablePointer<Float>, tokens: [Int], segments: [BatchSegment], layer i: Int,
                               scratch: (h: FloatBuffer, y: FloatBuffer)) throws {
        guard let hc = hyperConnections else { throw ModelLoadError.unsupported("layer \(i) has no hyper-connections") }
        let T = tokens.count, h = scratch.h.p, y = scratch.y.p
        let a = hc.attention.collapse(streams, count: T, into: h)
        attentionNorm.forward(h, rows: T, out: h)
        attention.forward(h, segments: segments, layer: i, out: y)
        hc.attention.merge(y, into: streams, count: T, a)
        let f = hc.feedForward.collapse(streams, count: T, into: h)
        ffnNorm.forward(h, rows: T, out: h)
        if let moe = feedForward as? MoEBlock {
            moe.forward(h, count: T, tokens: tokens, out: y)
        } else {
            feedForward.forward(h, count: T, out: y)
        }
        hc.feedForward.merge(y, into: streams, count: T, f)
    }
}

/// Loads DeepSeek-V4 from DeepSeek's checkpoint names or transformers' (see `DeepSeekV4Checkpoint`).
public enum DeepSeekV4Decoder {
    public static func load(config c: ModelConfig, weights w0: WeightLoader) throws -> TransformerModel {
        guard let v = c.v4 else { throw ModelLoadError.unsupported("DeepSeek-V4 config without its attention settings") }
        var w = WeightLoader(source: DeepSeekV4Checkpoint(w0.source, gguf: w0.naming == .gguf, mtpLayer: c.numLayers),
                             naming: w0.naming, fileName: w0.fileName)
        w.fp8BlockSize = w0.fp8BlockSize
        let main = Rope(dim: v.qkRopeHeadDim, theta: v.ropeTheta, scaling: RopeScaling(), layout: .adjacentPairs,
                        maxPositionEmbeddings: c.maxPositionEmbeddings)
        let compress = Rope(dim: v.qkRopeHeadDim, theta: v.compressRopeTheta, scaling: v.compressRopeScaling, layout: .adjacentPairs,
                            maxPositionEmbeddings: c.maxPositionEmbeddings)
        var layers = [DecoderLayer]()
        for i in 0..<c.numLayers {
            let rope = v.layerTypes[i] == .slidingAttention ? main : compress
            let layer = try MoEDecoder.decoderLayer(config: c, weights: w, layer: i, attention: try attention(c, w, i, rope: rope, compressRope: compress))
            guard let moe = layer.feedForward as? MoEBlock else { throw ModelLoadError.unsupported("DeepSeek-V4 layer \(i) is not sparse") }
            moe.swigluLimit = v.swigluLimit
            if v.hashLayers[i] { moe.router.tokenExperts = try hashTable(w, layer: i, config: c) }
            layer.hyperConnections = (try hyperConnection(w, "model.layers.\(i).attn_hc", c), try hyperConnection(w, "model.layers.\(i).ffn_hc", c))
            layers.append(layer)
        }
        let model = try DenseDecoder.assemble(config: c, weights: w, layers: layers, cacheKWidth: 0, cacheVWidth: 0)
        model.hyperHead = try HyperHead(fn: w.linear("model.hc_head.hc_fn"), base: w.floats("model.hc_head.hc_base"),
                                        scale: w.floats("model.hc_head.hc_scale"), config: c)
        model.cacheLayout = DeepSeekV4CacheLayout(v4: v)
        if v.numNextnPredictLayers > 0 {
            do { model.mtp = try DeepSeekV4MTP.load(config: c, weights: w, model: model, rope: main, compressRope: compress) }
            catch { model.mtpUnavailable = "\(error)" }
        }
        return model
    }

    static func attention(_ c: ModelConfig, _ w: WeightLoader, _ i: Int, rope: Rope, compressRope: Rope) throws -> DeepSeekV4Attention {
        let v = c.v4!, p = "model.layers.\(i).self_attn.", eps = Float(c.rmsNormEps)
        func norm(_ n: String) throws -> RMSNorm { RMSNorm(weight: try w.floats(n), eps: eps) }
        func compressor(_ q: String, headDim: Int, overlap: Bool) throws -> DeepSeekV4Compressor {
            try DeepSeekV4Compressor(ratio: v.compressRatios[i], headDim: headDim, overlap: overlap, kvProj: w.linear(q + "kv_proj.weight"),
                                     gateProj: w.linear(q + "gate_proj.weight"), positionBias: w.floats(q + "position_bias"),
                                     kvNorm: norm(q + "kv_norm.weight"), rope: compressRope)
        }
        let type = v.layerTypes[i]
        let comp = type == .slidingAttention ? nil : try compressor(p + "compressor.", headDim: v.headDim, overlap: type == .compressedSparseAttention)
        var indexer: DeepSeekV4Indexer? = nil
        if type == .compressedSparseAttention {
            let q = p + "compressor.indexer."
            indexer = try DeepSeekV4Indexer(compressor: compressor(q, headDim: v.indexHeadDim, overlap: true), qBProj: w.linear(q + "q_b_proj.weight"),
                                            weightsProj: w.linear(q + "scorer.weights_proj.weight"), nHeads: v.indexNHeads, topk: v.indexTopk)
        }
        return try DeepSeekV4Attention(
            config: c, layer: i, qAProj: w.linear(p + "q_a_proj.weight"), qANorm: norm(p + "q_a_norm.weight"),
            qBProj: w.linear(p + "q_b_proj.weight"), kvProj: w.linear(p + "kv_proj.weight"), kvNorm: norm(p + "kv_norm.weight"),
            oAProj: w.linear(p + "o_a_proj.weight"), oBProj: w.linear(p + "o_b_proj.weight"), sinks: w.floats(p + "sinks"),
            rope: rope, compressor: comp, indexer: indexer)
    }

    static func hyperConnection(_ w: WeightLoader, _ p: String, _ c: ModelConfig) throws -> HyperConnection {
        try HyperConnection(fn: w.linear(p + ".fn"), base: w.floats(p + ".base"), scale: w.floats(p + ".scale"), config: c)
    }

    /// `tid2eid` [vocab, k] (int64 or int32): each token's experts, checked against the expert count.
    static func hashTable(_ w: WeightLoader, layer i: Int, config c: ModelConfig) throws -> [Int32] {
        let name = "model.layers.\(i).mlp.gate.tid2eid"
        let t = try w.tensor(name), m = c.moe!
        guard t.shape == [c.vocabSize, m.numExpertsPerToken] else {
            throw ModelLoadError.badShape(name: name, shape: t.shape, expected: "[\(c.vocabSize), \(m.numExpertsPerToken)]")
        }
        let n = t.elementCount
        let ids: [Int32]
        switch t.type {
        case .i64: ids = (0..<n).map { Int32(truncatingIfNeeded: t.data.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case .i32: ids = (0..<n).map { t.data.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self) }
        default: throw ModelLoadError.unsupported("\(name) has type \(t.type.rawValue), expected I64 or I32")
        }
        guard ids.allSatisfy({ $0 >= 0 && Int($0) < m.numExperts }) else {
            throw ModelLoadError.unsupported("\(name) names an expert outside 0..<\(m.numExperts)")
        }
        return ids
    }
}
