import Foundation

/// The model families Tiefsee runs. Dense decoders share one implementation; MoE families
/// configure the shared MoE block; DeepSeek-V2/V3 add Multi-head Latent Attention.
public enum ModelFamily: String, Sendable {
    case llama, mistral, qwen2, qwen3
    case mixtral, qwen2moe, qwen3moe
    case deepseekV2 = "deepseek_v2", deepseekV3 = "deepseek_v3"
    /// DeepSeek-V3.2: V3 plus DeepSeek Sparse Attention (Models/DeepSeekV32.swift).
    case deepseekV32 = "deepseek_v32"
    /// Hybrid compressed attention, hyper-connections, hash-routed MoE (DeepSeekV4.swift).
    case deepseekV4 = "deepseek_v4"

    public var isMoE: Bool { [.mixtral, .qwen2moe, .qwen3moe, .deepseekV2, .deepseekV3, .deepseekV32, .deepseekV4].contains(self) }
    public var usesMLA: Bool { self == .deepseekV2 || self == .deepseekV3 || self == .deepseekV32 }
}

/// How rotary embeddings pair up dimensions.
public enum RopeLayout: String, Sendable {
    /// Dimension i rotates with i + d/2 (HF `rotate_half`, llama.cpp "neox").
    case halves
    /// Dimension 2i rotates with 2i+1 (GGUF llama after the converter's permutation, DeepSeek's rope).
    case adjacentPairs
}

public struct RopeScaling: Equatable, Sendable {
    /// From a config's `rope_scaling` / `rope_parameters` object.
    public init(hf rs: JSONValue, path: String) throws {
        let type = rs["rope_type"]?.string ?? rs["type"]?.string ?? "default"
        guard let kind = Kind(rawValue: type) else {
            throw ConfigError(message: "\(path): unsupported rope scaling type '\(type)'")
        }
        self.kind = kind
        factor = rs["factor"]?.double ?? 1
        originalMaxPositionEmbeddings = rs["original_max_position_embeddings"]?.int
        lowFreqFactor = rs["low_freq_factor"]?.double ?? 1
        highFreqFactor = rs["high_freq_factor"]?.double ?? 4
        betaFast = rs["beta_fast"]?.double ?? 32
        betaSlow = rs["beta_slow"]?.double ?? 1
        mscale = rs["mscale"]?.double
        mscaleAllDim = rs["mscale_all_dim"]?.double
        attentionFactor = rs["attention_factor"]?.double
        truncate = rs["truncate"]?.bool ?? true
    }

    public enum Kind: String, Sendable { case none = "default", linear, llama3, yarn, dynamic }
    public var kind: Kind = .none
    public var factor: Double = 1
    public var originalMaxPositionEmbeddings: Int?
    // llama3
    public var lowFreqFactor: Double = 1
    public var highFreqFactor: Double = 4
    // yarn
    public var betaFast: Double = 32
    public var betaSlow: Double = 1
    public var mscale: Double?
    public var mscaleAllDim: Double?
    public var attentionFactor: Double?
    public var truncate: Bool = true
    public init() {}
}

/// MoE router settings (see notes on each family's semantics in Models/MoE.swift).
public struct MoEConfig: Equatable, Sendable {
    public enum Scoring: String, Sendable { case softmax, sigmoid, sqrtSoftplus = "sqrtsoftplus" }
    public enum TopKMethod: String, Sendable { case greedy, groupLimitedGreedy = "group_limited_greedy", noauxTC = "noaux_tc" }
    public var numExperts: Int
    public var numExpertsPerToken: Int
    public var expertIntermediateSize: Int
    public var numSharedExperts: Int = 0
    /// Qwen2-MoE: one shared expert of this width, scaled by sigmoid(shared_expert_gate(x)).
    public var sharedExpertIntermediateSize: Int = 0
    public var sharedExpertGated: Bool = false
    public var scoring: Scoring = .softmax
    public var topKMethod: TopKMethod = .greedy
    public var normTopKProb: Bool = false
    public var routedScalingFactor: Double = 1
    /// The router has an `e_score_correction_bias` outside noaux_tc (DeepSeek-V4's greedy top-k).
    public var scoreCorrectionBias = false
    public var nGroup: Int = 1
    public var topKGroup: Int = 1
    /// Layers below this index use a dense MLP (DeepSeek `first_k_dense_replace`).
    public var firstKDenseReplace: Int = 0
    public var moeLayerFreq: Int = 1
    /// Qwen-MoE: layers listed here use a dense MLP; `decoder_sparse_step` spaces MoE layers.
    public var mlpOnlyLayers: [Int] = []
    public var decoderSparseStep: Int = 1

    public init(numExperts: Int, numExpertsPerToken: Int, expertIntermediateSize: Int) {
        self.numExperts = numExperts
        self.numExpertsPerToken = numExpertsPerToken
        self.expertIntermediateSize = expertIntermediateSize
    }
}

/// Multi-head Latent Attention dimensions (DeepSeek-V2/V3).
public struct MLAConfig: Equatable, Sendable {
    public var qLoraRank: Int?
    public var kvLoraRank: Int
    public var qkNopeHeadDim: Int
    public var qkRopeHeadDim: Int
    public var vHeadDim: Int
    public var qkHeadDim: Int { qkNopeHeadDim + qkRopeHeadDim }
}

public struct ModelConfig: Equatable, Sendable {
    public var family: ModelFamily
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var rmsNormEps: Double = 1e-6
    public var ropeTheta: Double = 10000
    public var ropeScaling = RopeScaling()
    public var ropeLayout: RopeLayout = .halves
    /// Rotary dimensions per head (all of headDim unless partial rotary).
    public var ropeDim: Int
    public var maxPositionEmbeddings: Int = 4096
    public var tieWordEmbeddings = false
    public var attentionBias = false
    public var qkNorm = false
    public var moe: MoEConfig?
    public var mla: MLAConfig?
    /// DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2).
    public var dsa: SparseAttentionConfig?
    /// DeepSeek-V4's attention, hyper-connection and routing settings (DeepSeekV4.swift).
    public var v4: DeepSeekV4Config?
    /// Block size of FP8 weights (`quantization_config.weight_block_size`; DeepSeek uses 128).
    public var fp8BlockSize = 128
    /// DeepSeek-V3's multi-token-prediction layers after the decoder's `numLayers`
    /// (`num_nextn_predict_layers`; GGUF `nextn_predict_layers`, counted in its block_count).
    public var numNextnPredictLayers = 0

    public init(family: ModelFamily, vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int,
                numHeads: Int, numKVHeads: Int, headDim: Int? = nil) {
        self.family = family; self.vocabSize = vocabSize; self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize; self.numLayers = numLayers
        self.numHeads = numHeads; self.numKVHeads = numKVHeads
        self.headDim = headDim ?? hiddenSize / max(numHeads, 1)
        self.ropeDim = self.headDim
    }

    /// Whether layer `i` uses the MoE block (else a dense MLP).
    public func isMoELayer(_ i: Int) -> Bool {
        guard let m = moe else { return false }
        if m.mlpOnlyLayers.contains(i) { return false }
        if family.usesMLA { return i >= m.firstKDenseReplace && i % max(m.moeLayerFreq, 1) == 0 }
        return (i + 1) % max(m.decoderSparseStep, 1) == 0
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

// MARK: - Hugging Face config.json

/// One config.json and its path, with the accessors every family's reader uses.
struct HFConfigKeys {
    let json: JSONValue
    let path: String
    func int(_ k: String) -> Int? { json[k]?.int }
    func dbl(_ k: String) -> Double? { json[k]?.double }
    func bool(_ k: String) -> Bool? { json[k]?.bool }
    func string(_ k: String) -> String? { json[k]?.string }
    func req(_ k: String) throws -> Int {
        guard let v = int(k), v >= 0 else { throw ConfigError(message: "\(path): missing or invalid '\(k)'") }
        return v
    }
}

extension ModelConfig {
    /// Dispatch by `architectures`, then by `model_type`.
    static let hfArchitectures: [String: ModelFamily] = [
        "LlamaForCausalLM": .llama, "MistralForCausalLM": .mistral,
        "Qwen2ForCausalLM": .qwen2, "Qwen3ForCausalLM": .qwen3,
        "MixtralForCausalLM": .mixtral, "Qwen2MoeForCausalLM": .qwen2moe, "Qwen3MoeForCausalLM": .qwen3moe,
        "DeepseekV2ForCausalLM": .deepseekV2, "DeepseekV3ForCausalLM": .deepseekV3,
        "DeepseekV32ForCausalLM": .deepseekV32,
        "DeepseekV4ForCausalLM": .deepseekV4,
    ]
    static let hfModelTypes: [String: ModelFamily] = [
        "llama": .llama, "mistral": .mistral, "qwen2": .qwen2, "qwen3": .qwen3, "mixtral": .mixtral,
        "qwen2_moe": .qwen2moe, "qwen3_moe": .qwen3moe, "deepseek_v2": .deepseekV2,
        "deepseek_v3": .deepseekV3, "deepseek_v32": .deepseekV32, "deepseek_v4": .deepseekV4,
        "kimi_k2": .deepseekV3,  // Kimi-K2 ships DeepSeek-V3's architecture under its own name
    ]

    /// Parses config.json with the defaults transformers applies for each family.
    public static func fromHF(configPath: String) throws -> ModelConfig {
        let j: JSONValue
        do { j = try JSONValue.parse(contentsOf: configPath) } catch {
            throw ConfigError(message: "cannot parse \(configPath): \(error)")
        }
        return try fromHF(j, path: configPath)
    }

    /// The fields every family shares (sizes, norms, rope, expert counts, FP8 blocks), then the
    /// family's own reader: dense decoders in Llama.swift, Mixtral/Qwen-MoE in MoE.swift,
    /// DeepSeek V2/V3 in DeepSeek.swift, V3.2 in DeepSeekV32.swift, V4 in DeepSeekV4.swift.
    public static func fromHF(_ j: JSONValue, path: String = "config.json") throws -> ModelConfig {
        let archs = j["architectures"]?.array?.compactMap(\.string) ?? []
        var family: ModelFamily? = archs.lazy.compactMap { hfArchitectures[$0] }.first
        if family == nil, let mt = j["model_type"]?.string { family = hfModelTypes[mt] }
        guard let fam = family else {
            let name = archs.first ?? j["model_type"]?.string ?? "unknown"
            throw ConfigError(message: "unsupported model architecture '\(name)' in \(path) (supported: \(hfArchitectures.keys.sorted().joined(separator: ", ")))")
        }
        let k = HFConfigKeys(json: j, path: path)
        let hidden = try k.req("hidden_size")
        let heads = try k.req("num_attention_heads")
        guard heads > 0 else { throw ConfigError(message: "\(path): num_attention_heads must be positive") }
        let kvHeads = k.int("num_key_value_heads") ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw ConfigError(message: "\(path): num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        // head_dim derives from hidden/heads when absent or null (Qwen3's reader overrides).
        var c = ModelConfig(family: fam, vocabSize: try k.req("vocab_size"), hiddenSize: hidden,
                            intermediateSize: k.int("intermediate_size") ?? 0, numLayers: try k.req("num_hidden_layers"),
                            numHeads: heads, numKVHeads: kvHeads, headDim: k.int("head_dim"))
        c.rmsNormEps = k.dbl("rms_norm_eps") ?? 1e-6
        c.maxPositionEmbeddings = k.int("max_position_embeddings") ?? 4096
        c.tieWordEmbeddings = k.bool("tie_word_embeddings") ?? false
        c.attentionBias = k.bool("attention_bias") ?? false

        // Rope: transformers 5 writes `rope_parameters`; hub configs use rope_theta + rope_scaling.
        let rp = j["rope_parameters"]
        c.ropeTheta = rp?["rope_theta"]?.double ?? k.dbl("rope_theta") ?? 10000
        let rs = (rp?["rope_type"] != nil || rp?["type"] != nil) ? rp : j["rope_scaling"]
        if let rs = rs, rs.object != nil { c.ropeScaling = try RopeScaling(hf: rs, path: path) }

        if fam.isMoE {
            let nExp = k.int("n_routed_experts") ?? k.int("num_local_experts") ?? k.int("num_experts") ?? 0
            let topK = k.int("num_experts_per_tok") ?? 0
            guard nExp > 0, topK > 0, topK <= nExp else {
                throw ConfigError(message: "\(path): invalid expert counts (experts \(nExp), per token \(topK))")
            }
            c.moe = MoEConfig(numExperts: nExp, numExpertsPerToken: topK,
                              expertIntermediateSize: k.int("moe_intermediate_size") ?? c.intermediateSize)
        }
        if let b = j["quantization_config"]?["weight_block_size"]?.array?.compactMap(\.int), let first = b.first {
            guard first > 0, b.allSatisfy({ $0 == first }) else {
                throw ConfigError(message: "\(path): unsupported FP8 weight_block_size \(b) (square blocks only)")
            }
            c.fp8BlockSize = first
        }
        switch fam {
        case .llama, .mistral, .qwen2, .qwen3: c.readDenseFamily(hf: k)
        case .mixtral, .qwen2moe, .qwen3moe: c.readMoEFamily(hf: k)
        case .deepseekV2, .deepseekV3: try c.readDeepSeek(hf: k)
        case .deepseekV32: try c.readDeepSeek(hf: k); try c.readSparseAttention(hf: j, path: path)
        case .deepseekV4: try c.parseDeepSeekV4(j, path: path)
        }
        return c
    }
}

// MARK: - GGUF metadata

/// One GGUF file's `<arch>.*` keys, with the accessors every family's reader uses.
struct GGUFConfigKeys {
    let file: GGUFFile
    let arch: String
    func v(_ k: String) -> GGUFValue? { file.archValue(k) }
    func req(_ k: String) throws -> Int {
        guard let x = v(k)?.int, x >= 0 else { throw ConfigError(message: "\(file.path): missing or invalid '\(arch).\(k)'") }
        return x
    }
    func hasTensor(suffix: String) -> Bool { file.tensorInfos.contains { $0.name.hasSuffix(suffix) } }
}

extension ModelConfig {
    /// Dispatch by `general.architecture` (llama with experts is Mixtral; deepseek2 is V3 unless
    /// its router says V2, decided in DeepSeek.swift).
    static let ggufArchitectures: [String: ModelFamily] = [
        "llama": .llama, "qwen2": .qwen2, "qwen3": .qwen3, "qwen2moe": .qwen2moe, "qwen3moe": .qwen3moe,
        "deepseek2": .deepseekV3, "deepseek32": .deepseekV32, "deepseek4": .deepseekV4,
    ]

    /// Reads the `<arch>.*` keys llama.cpp writes: the shared ones here, then the family's reader.
    public static func fromGGUF(_ g: GGUFFile) throws -> ModelConfig {
        guard let arch = g.architecture else {
            throw ConfigError(message: "\(g.path): no general.architecture in metadata")
        }
        guard var fam = ggufArchitectures[arch] else {
            throw ConfigError(message: "unsupported model architecture '\(arch)' in \(g.path) (supported: \(ggufArchitectures.keys.sorted().joined(separator: ", ")))")
        }
        let k = GGUFConfigKeys(file: g, arch: arch)
        func v(_ key: String) -> GGUFValue? { k.v(key) }
        let hidden = try k.req("embedding_length")
        let heads = try k.req("attention.head_count")
        guard heads > 0 else { throw ConfigError(message: "\(g.path): attention.head_count must be positive") }
        let kvHeads = v("attention.head_count_kv")?.int ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw ConfigError(message: "\(g.path): head_count \(heads) is not a multiple of head_count_kv \(kvHeads)")
        }
        let vocab = v("vocab_size")?.int ?? g["tokenizer.ggml.tokens"]?.array?.count
            ?? g.info("token_embd.weight")?.dims.last ?? 0
        let nExperts = v("expert_count")?.int ?? 0
        if arch == "llama" && nExperts > 0 { fam = .mixtral }
        let headDim = v("attention.key_length")?.int ?? hidden / heads
        var c = ModelConfig(family: fam, vocabSize: vocab, hiddenSize: hidden,
                            intermediateSize: v("feed_forward_length")?.int ?? 0, numLayers: try k.req("block_count"),
                            numHeads: heads, numKVHeads: kvHeads, headDim: headDim)
        c.rmsNormEps = v("attention.layer_norm_rms_epsilon")?.double ?? 1e-6
        c.ropeTheta = v("rope.freq_base")?.double ?? 10000
        c.maxPositionEmbeddings = v("context_length")?.int ?? 4096
        c.tieWordEmbeddings = g.info("output.weight") == nil
        c.attentionBias = g.info("blk.0.attn_q.bias") != nil
        c.qkNorm = g.info("blk.0.attn_q_norm.weight") != nil
        c.ropeDim = v("rope.dimension_count")?.int ?? headDim
        // Qwen keeps HF's rotate-half ("neox"); the llama and DeepSeek readers switch to adjacent pairs.
        c.ropeLayout = .halves
        if let t = v("rope.scaling.type")?.string, t != "none" {
            var s = RopeScaling()
            s.kind = RopeScaling.Kind(rawValue: t) ?? .none
            s.factor = v("rope.scaling.factor")?.double ?? 1
            s.originalMaxPositionEmbeddings = v("rope.scaling.original_context_length")?.int
            if let lm = v("rope.scaling.yarn_log_multiplier")?.double {
                // llama.cpp stores 0.1 * mscale_all_dim; DeepSeek configs set mscale == mscale_all_dim.
                // Read by Rope (cos/sin factor) and MultiHeadLatentAttention.softmaxScale.
                s.mscaleAllDim = lm / 0.1
                s.mscale = lm / 0.1
            }
            c.ropeScaling = s
        }
        if nExperts > 0 {
            let used = v("expert_used_count")?.int ?? 0
            guard used > 0, used <= nExperts else {
                throw ConfigError(message: "\(g.path): invalid expert_used_count \(used) for \(nExperts) experts")
            }
            var m = MoEConfig(numExperts: nExperts, numExpertsPerToken: used,
                              expertIntermediateSize: v("expert_feed_forward_length")?.int ?? c.intermediateSize)
            m.numSharedExperts = v("expert_shared_count")?.int ?? 0
            m.sharedExpertIntermediateSize = v("expert_shared_feed_forward_length")?.int ?? 0
            m.sharedExpertGated = g.info("blk.0.ffn_gate_inp_shexp.weight") != nil
                || k.hasTensor(suffix: "ffn_gate_inp_shexp.weight")
            m.routedScalingFactor = v("expert_weights_scale")?.double ?? 1
            // The Mixtral and Qwen3-MoE readers default this to true (llama.cpp renormalises them).
            m.normTopKProb = v("expert_weights_norm")?.bool ?? false
            m.firstKDenseReplace = v("leading_dense_block_count")?.int ?? 0
            m.nGroup = v("expert_group_count")?.int ?? 1
            m.topKGroup = v("expert_group_used_count")?.int ?? 1
            // expert_gating_func: 1 = softmax, 2 = sigmoid; old DeepSeek-V2 files have none (softmax).
            let gating = v("expert_gating_func")?.int ?? 1
            m.scoring = gating == 2 ? .sigmoid : .softmax
            c.moe = m
        }
        switch fam {
        case .llama, .mistral, .qwen2, .qwen3: c.readDenseFamily(gguf: k)
        case .mixtral, .qwen2moe, .qwen3moe: c.readMoEFamily(gguf: k)
        case .deepseekV2, .deepseekV3: try c.readDeepSeek(gguf: k)
        case .deepseekV32: try c.readDeepSeek(gguf: k); try c.readSparseAttention(gguf: g)
        case .deepseekV4: try c.parseDeepSeekV4(gguf: g)
        }
        return c
    }
}
