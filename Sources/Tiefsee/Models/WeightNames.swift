/// Where a model's weights live under each file convention. Canonical keys follow llama.cpp's
/// GGUF names (`attn_q`, `ffn_gate`, …); Hugging Face names are mapped from them.
public enum WeightNaming: Sendable {
    case gguf
    case huggingFace

    /// A per-layer tensor: `layerTensor(3, "attn_q", "weight")`.
    public func layer(_ i: Int, _ key: String, _ kind: String = "weight") -> String {
        switch self {
        case .gguf: return "blk.\(i).\(key).\(kind)"
        case .huggingFace:
            guard let hf = WeightNaming.hfLayerNames[key] else { return "model.layers.\(i).\(key).\(kind)" }
            return "model.layers.\(i).\(hf).\(kind)"
        }
    }

    /// A model-level tensor: "token_embd", "output_norm", "output".
    public func global(_ key: String) -> String {
        switch self {
        case .gguf: return key + ".weight"
        case .huggingFace:
            return ["token_embd": "model.embed_tokens.weight", "output_norm": "model.norm.weight",
                    "output": "lm_head.weight"][key] ?? key
        }
    }

    static let hfLayerNames: [String: String] = [
        "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
        "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
        // Multi-head Latent Attention (DeepSeek-V2/V3)
        "attn_q_a": "self_attn.q_a_proj", "attn_q_a_norm": "self_attn.q_a_layernorm", "attn_q_b": "self_attn.q_b_proj",
        "attn_kv_a_mqa": "self_attn.kv_a_proj_with_mqa", "attn_kv_a_norm": "self_attn.kv_a_layernorm",
        "attn_kv_b": "self_attn.kv_b_proj",
        // DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2)
        "indexer.attn_q_b": "self_attn.indexer.wq_b", "indexer.attn_k": "self_attn.indexer.wk",
        "indexer.k_norm": "self_attn.indexer.k_norm", "indexer.proj": "self_attn.indexer.weights_proj",
        // MoE router, shared experts
        "ffn_gate_inp": "mlp.gate", "exp_probs_b": "mlp.gate.e_score_correction_bias",
        "ffn_gate_shexp": "mlp.shared_experts.gate_proj", "ffn_up_shexp": "mlp.shared_experts.up_proj",
        "ffn_down_shexp": "mlp.shared_experts.down_proj",
        "ffn_gate_inp_shexp": "mlp.shared_expert_gate",
    ]

    /// Other Hugging Face spellings of a key, tried after `hfLayerNames` (families differ:
    /// Mixtral's `block_sparse_moe`, Qwen2-MoE's single `shared_expert`).
    static let hfAlternates: [String: [String]] = [
        "ffn_gate_inp": ["block_sparse_moe.gate"],
        "ffn_gate_shexp": ["mlp.shared_expert.gate_proj"], "ffn_up_shexp": ["mlp.shared_expert.up_proj"],
        "ffn_down_shexp": ["mlp.shared_expert.down_proj"],
    ]

    /// Every name a per-layer tensor may have under this convention, most common first.
    public func layerCandidates(_ i: Int, _ key: String, _ kind: String = "weight") -> [String] {
        switch self {
        case .gguf: return [layer(i, key, kind)]
        case .huggingFace:
            return [layer(i, key, kind)] + (WeightNaming.hfAlternates[key] ?? []).map { "model.layers.\(i).\($0).\(kind)" }
        }
    }

    /// The projections of a routed expert (SwiGLU: down(silu(gate(x)) * up(x))).
    public enum ExpertProjection: String, Sendable { case gate, up, down }

    /// Where expert `e`'s projection of layer `i` may be stored, in the order tried:
    /// - `.matrix`: one 2-D tensor per expert — the hub's `mlp.experts.E.gate_proj.weight`,
    ///   Mixtral's `block_sparse_moe.experts.E.w1/w3/w2.weight`, old GGUF `blk.N.ffn_gate.E.weight`;
    /// - `.stacked`: slice e of a 3-D [n_expert, out, in] tensor — GGUF `blk.N.ffn_gate_exps.weight`,
    ///   transformers 5's fused `mlp.experts.gate_up_proj` ([E, 2I, H]: gate rows then up rows)
    ///   and `mlp.experts.down_proj` ([E, H, I]).
    public func expertCandidates(_ i: Int, expert e: Int, _ p: ExpertProjection) -> [ExpertTensorRef] {
        switch self {
        case .gguf:
            return [.stacked("blk.\(i).ffn_\(p.rawValue)_exps.weight", part: .whole),
                    .matrix("blk.\(i).ffn_\(p.rawValue).\(e).weight")]
        case .huggingFace:
            let mixtral = ["gate": "w1", "up": "w3", "down": "w2"][p.rawValue]!
            let fused: ExpertTensorRef = p == .down
                ? .stacked("model.layers.\(i).mlp.experts.down_proj", part: .whole)
                : .stacked("model.layers.\(i).mlp.experts.gate_up_proj", part: p == .gate ? .firstHalf : .secondHalf)
            return [.matrix("model.layers.\(i).mlp.experts.\(e).\(p.rawValue)_proj.weight"),
                    .matrix("model.layers.\(i).block_sparse_moe.experts.\(e).\(mixtral).weight"),
                    fused]
        }
    }

    /// The DeepSeek-V3 router's selection bias (`exp_probs_b`), which HF stores without a suffix.
    public func expertScoreBias(_ i: Int) -> String {
        switch self {
        case .gguf: return "blk.\(i).exp_probs_b.bias"
        case .huggingFace: return "model.layers.\(i).mlp.gate.e_score_correction_bias"
        }
    }
}

/// A reference to one expert's weight matrix (see `WeightNaming.expertCandidates`).
public enum ExpertTensorRef: Equatable, Sendable {
    public enum Part: Sendable { case whole, firstHalf, secondHalf }
    case matrix(String)
    case stacked(String, part: Part)
}

/// Looks up tensors by name and turns them into layers, with errors naming the file.
public struct WeightLoader {
    public let source: WeightSource
    public let naming: WeightNaming
    public let fileName: String
    /// Block size of DeepSeek-style FP8 weights (`quantization_config.weight_block_size`).
    public var fp8BlockSize: Int = 128

    public func tensor(_ name: String) throws -> Tensor {
        guard let t = source.tensor(name) else { throw ModelLoadError.missingTensor(name, file: fileName) }
        return t
    }

    public func has(_ name: String) -> Bool { source.tensor(name) != nil }

    /// A small tensor (norm weights, biases) expanded to f32.
    public func floats(_ name: String) throws -> [Float] { try dequantize(try tensor(name)) }

    public func optionalFloats(_ name: String) throws -> [Float]? {
        guard let t = source.tensor(name) else { return nil }
        return try dequantize(t)
    }

    public func linear(_ name: String, bias: String? = nil) throws -> Linear {
        try Linear(weight: try matrix(name), bias: try bias.flatMap { try optionalFloats($0) })
    }

    /// A weight matrix ready for `Linear`. Block-scaled FP8 weights (F8_E4M3 + `weight_scale_inv`,
    /// as DeepSeek ships V3/R1) are dequantized to f32 here: fine for small models; large FP8
    /// checkpoints should be converted once with `tiefsee quantize` (future) instead.
    public func matrix(_ name: String) throws -> Tensor {
        let t = try tensor(name)
        guard t.type == .f8e4m3 else { return t }
        guard let s = source.tensor(name + "_scale_inv") else {
            throw ModelLoadError.unsupported("FP8 tensor '\(name)' has no '\(name)_scale_inv' in \(fileName)")
        }
        return Tensor.owned(name: name, shape: t.shape,
                            values: try dequantizeFP8BlockScaled(weight: t, scaleInv: s, blockSize: fp8BlockSize))
    }

    /// The first of `names` that exists.
    public func firstTensor(_ names: [String]) -> String? { names.first { has($0) } }

    /// Expert `e`'s projection of layer `i`, in whichever layout the file uses (a view, not a copy).
    public func expertMatrix(_ i: Int, expert e: Int, _ p: WeightNaming.ExpertProjection) throws -> Tensor {
        for ref in naming.expertCandidates(i, expert: e, p) {
            switch ref {
            case .matrix(let n):
                if has(n) { return try matrix(n) }
            case .stacked(let n, let part):
                guard let t = source.tensor(n) else { continue }
                guard t.shape.count == 3, e < t.shape[0] else {
                    throw ModelLoadError.badShape(name: n, shape: t.shape, expected: "[n_expert, out, in] with more than \(e) experts")
                }
                let m = t.slice(e)
                let half = m.shape[0] / 2
                switch part {
                case .whole: return m
                case .firstHalf: return m.rows(0..<half)
                case .secondHalf: return m.rows(half..<m.shape[0])
                }
            }
        }
        let tried = naming.expertCandidates(i, expert: e, p).map { r -> String in
            switch r { case .matrix(let n): return n; case .stacked(let n, _): return n }
        }
        throw ModelLoadError.missingTensor(tried.joined(separator: " or "), file: fileName)
    }

    public func layerLinear(_ i: Int, _ key: String, withBias: Bool = false) throws -> Linear {
        try linear(naming.layer(i, key), bias: withBias ? naming.layer(i, key, "bias") : nil)
    }
}
