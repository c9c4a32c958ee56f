import Foundation

/// The dense decoder families behind DeepSeek-R1-Distill and friends: Llama (R1-Distill-Llama),
/// Mistral, Qwen2 (R1-Distill-Qwen, Qwen2.5) and Qwen3. One structure, configured:
/// Qwen2 adds q/k/v biases, Qwen3 adds q/k RMSNorm per head, Llama-3 scales rope frequencies.
public enum DenseDecoder {
    public static func load(config c: ModelConfig, weights w: WeightLoader) throws -> TransformerModel {
        try loadGroupedQuery(config: c, weights: w) { i in
            try GatedMLP(gate: w.layerLinear(i, "ffn_gate"), up: w.layerLinear(i, "ffn_up"), down: w.layerLinear(i, "ffn_down"))
        }
    }

    /// What the dense decoders and Mixtral/Qwen-MoE (`MoEDecoder.load`) share: rope, per layer the
    /// grouped-query attention and its norms around `feedForward(i)`, then embedding, final norm
    /// and head.
    static func loadGroupedQuery(config c: ModelConfig, weights w: WeightLoader,
                                 feedForward: (Int) throws -> FeedForwardBlock) throws -> TransformerModel {
        let rope = Rope(config: c, freqFactors: try w.optionalFloats("rope_freqs.weight"))
        var layers = [DecoderLayer]()
        for i in 0..<c.numLayers {
            let attention = try standardAttention(config: c, weights: w, layer: i, rope: rope)
            layers.append(try decoderLayer(config: c, weights: w, layer: i, attention: attention,
                                           feedForward: try feedForward(i)))
        }
        return try assemble(config: c, weights: w, layers: layers,
                            cacheKWidth: c.numKVHeads * c.headDim, cacheVWidth: c.numKVHeads * c.headDim)
    }

    /// Layer i's pre-attention and pre-feed-forward RMSNorms around its two blocks (every family).
    static func decoderLayer(config c: ModelConfig, weights w: WeightLoader, layer i: Int,
                             attention: AttentionBlock, feedForward: FeedForwardBlock) throws -> DecoderLayer {
        let eps = Float(c.rmsNormEps)
        return DecoderLayer(
            attentionNorm: RMSNorm(weight: try w.floats(w.naming.layer(i, "attn_norm")), eps: eps),
            attention: attention,
            ffnNorm: RMSNorm(weight: try w.floats(w.naming.layer(i, "ffn_norm")), eps: eps),
            feedForward: feedForward)
    }

    /// The grouped-query attention block of layer i (also used by Mixtral and Qwen-MoE).
    public static func standardAttention(config c: ModelConfig, weights w: WeightLoader, layer i: Int, rope: Rope) throws -> GroupedQueryAttention {
        let eps = Float(c.rmsNormEps)
        let qn = try w.optionalFloats(w.naming.layer(i, "attn_q_norm")).map { RMSNorm(weight: $0, eps: eps) }
        let kn = try w.optionalFloats(w.naming.layer(i, "attn_k_norm")).map { RMSNorm(weight: $0, eps: eps) }
        let attention = GroupedQueryAttention(
            wq: try w.layerLinear(i, "attn_q", withBias: true), wk: try w.layerLinear(i, "attn_k", withBias: true),
            wv: try w.layerLinear(i, "attn_v", withBias: true), wo: try w.layerLinear(i, "attn_output", withBias: true),
            qNorm: qn, kNorm: kn, rope: rope, numHeads: c.numHeads, numKVHeads: c.numKVHeads, headDim: c.headDim)
        guard attention.wq.outFeatures == c.numHeads * c.headDim, attention.wk.outFeatures == c.numKVHeads * c.headDim else {
            throw ModelLoadError.badShape(name: w.naming.layer(i, "attn_q"), shape: attention.wq.weight.shape,
                                          expected: "[\(c.numHeads * c.headDim), \(c.hiddenSize)]")
        }
        return attention
    }

    /// Embedding, final norm and output head (tied to the embedding when the file has no head).
    public static func assemble(config c: ModelConfig, weights w: WeightLoader, layers: [DecoderLayer],
                                cacheKWidth: Int, cacheVWidth: Int) throws -> TransformerModel {
        let embedding = try w.tensor(w.naming.global("token_embd"))
        guard embedding.shape.count == 2, embedding.shape[1] == c.hiddenSize else {
            throw ModelLoadError.badShape(name: embedding.name, shape: embedding.shape, expected: "[vocab, \(c.hiddenSize)]")
        }
        let headName = w.naming.global("output")
        let head = (!c.tieWordEmbeddings || w.naming == .gguf) && w.has(headName)
            ? try w.linear(headName) : try Linear(weight: embedding)
        return TransformerModel(config: c, embedding: embedding, layers: layers,
                                finalNorm: RMSNorm(weight: try w.floats(w.naming.global("output_norm")), eps: Float(c.rmsNormEps)),
                                outputHead: head, cacheKWidth: cacheKWidth, cacheVWidth: cacheVWidth)
    }
}

// MARK: - Config

extension ModelConfig {
    /// Llama, Mistral, Qwen2, Qwen3 from config.json (the shared fields are read by `fromHF`).
    mutating func readDenseFamily(hf k: HFConfigKeys) {
        readQwenAttention(hf: k)
    }

    /// Qwen's attention in config.json, dense or MoE: Qwen2 always has q/k/v biases; Qwen3 has
    /// q/k RMSNorm per head and a default head_dim of 128.
    mutating func readQwenAttention(hf k: HFConfigKeys) {
        switch family {
        case .qwen2, .qwen2moe:
            attentionBias = true
        case .qwen3, .qwen3moe:
            qkNorm = true
            if k.int("head_dim") == nil { headDim = 128; ropeDim = 128 }
        default: break
        }
    }

    /// Llama, Qwen2, Qwen3 from GGUF (biases and q/k norms are read from the tensors by `fromGGUF`).
    mutating func readDenseFamily(gguf k: GGUFConfigKeys) {
        // llama.cpp permutes llama's Q/K at conversion so adjacent pairs rotate ("normal" rope).
        if family == .llama { ropeLayout = .adjacentPairs }
    }
}
