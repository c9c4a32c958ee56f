import Foundation

// What a model costs in memory, from its tensor headers alone (nothing is read or built): bytes
// and bits per weight by kind of tensor, and before loading whether it all fits in the memory
// this process may use, or whether the routed experts will be read from disk as tokens are
// routed to them (ExpertResidency.swift: a MoE larger than memory still runs, at disk speed for
// the experts the page cache cannot hold).

/// The kinds of weight tensor a low-bit quantization mixes differently.
public enum TensorKind: String, CaseIterable, Sendable {
    case attention = "attention"
    case routedExperts = "routed experts"
    case sharedExperts = "shared experts"
    case denseFFN = "dense FFN"
    case embeddings = "embeddings/head"
    case other = "norms, router, other"

    /// The kind of a tensor, from its GGUF (llama.cpp) or Hugging Face name and its rank.
    public static func of(name: String, rank: Int) -> TensorKind {
        if name.contains("shexp") || name.contains("shared_expert") { return .sharedExperts }
        if name.contains("_exps") || name.contains(".experts.") { return .routedExperts }
        if rank < 2 || name.contains("ffn_gate_inp") || name.contains("exp_probs") || name.hasSuffix("mlp.gate.weight")
            || name.contains("block_sparse_moe.gate.") { return .other }
        if name.hasPrefix("token_embd") || name.hasPrefix("output.") || name.contains("embed_tokens") || name.contains("lm_head") {
            return .embeddings
        }
        if name.contains("attn") { return .attention }
        if name.contains("ffn_") || name.contains(".mlp.") { return .denseFFN }
        return .other
    }
}

/// Weights and bytes per tensor kind.
public struct WeightFootprint: Sendable {
    public struct Part: Sendable, Equatable {
        public var weights = 0, bytes = 0, tensors = 0
        /// Storage bits per weight (scales included).
        public var bitsPerWeight: Double { weights > 0 ? Double(bytes) * 8 / Double(weights) : 0 }
    }
    public private(set) var parts: [TensorKind: Part] = [:]
    public var total: Part {
        parts.values.reduce(into: Part()) { $0.weights += $1.weights; $0.bytes += $1.bytes; $0.tensors += $1.tensors }
    }
    public func part(_ k: TensorKind) -> Part { parts[k] ?? Part() }

    /// Every tensor of `weights`. Block-scaled FP8 scales (`*_scale_inv`) add their bytes to the
    /// weight they scale and no weights. With `decoderLayers`, the layers past them (DeepSeek's
    /// multi-token-prediction layers, V4's `mtp.*`) are left out: plain decoding never reads them.
    public init(_ weights: WeightSource, decoderLayers: Int? = nil) {
        for name in weights.tensorNames {
            if let n = decoderLayers {
                if name.hasPrefix("mtp.") { continue }
                if let l = ParameterCount.layerIndex(name), l >= n { continue }
            }
            guard let t = weights.tensor(name) else { continue }
            let scale = name.hasSuffix("_scale_inv")
            let base = scale ? String(name.dropLast("_scale_inv".count)) : name
            let kind = TensorKind.of(name: base, rank: scale ? 2 : t.shape.count)
            parts[kind, default: Part()].bytes += t.byteCount
            if !scale { parts[kind, default: Part()].weights += t.elementCount; parts[kind, default: Part()].tensors += 1 }
        }
    }
}

/// Before loading: how much memory the model needs and what will happen if there is less.
public struct MemoryPlan: Sendable {
    public enum Verdict: String, Sendable {
        /// Weights and KV cache fit: everything stays in memory after first use.
        case fits
        /// A MoE whose non-expert weights and cache fit but not all routed experts: those are
        /// read from disk when tokens are routed to them (the page cache keeps what it can).
        case streamsExperts = "streams experts"
        /// Not even the always-used weights fit: they are paged in from disk on every token.
        case pagesWeights = "pages weights"
    }
    public let footprint: WeightFootprint
    public let kvCacheBytes: Int
    /// The context the KV cache is sized for.
    public let contextTokens: Int
    /// `--expert-cache-mb`: experts kept resident (locked or copied), part of the resident set.
    public let expertCacheBytes: Int
    public let availableBytes: Int

    public init(footprint: WeightFootprint, kvCacheBytes: Int, contextTokens: Int, expertCacheBytes: Int = 0, availableBytes: Int) {
        self.footprint = footprint; self.kvCacheBytes = kvCacheBytes; self.contextTokens = contextTokens
        self.expertCacheBytes = expertCacheBytes; self.availableBytes = availableBytes
    }

    public var expertBytes: Int { footprint.part(.routedExperts).bytes }
    /// What every token reads: all weights but the routed experts, the cache, the resident experts.
    public var residentBytes: Int { footprint.total.bytes - expertBytes + kvCacheBytes + min(expertCacheBytes, expertBytes) }
    public var totalBytes: Int { footprint.total.bytes + kvCacheBytes }

    public var verdict: Verdict {
        if totalBytes <= availableBytes { return .fits }
        return expertBytes > 0 && residentBytes <= availableBytes ? .streamsExperts : .pagesWeights
    }

    /// One line for the user.
    public var summary: String {
        let need = "weights \(Self.gib(footprint.total.bytes)) + KV cache \(Self.gib(kvCacheBytes)) for \(contextTokens) tokens"
        switch verdict {
        case .fits:
            return "memory: fits — \(need) of \(Self.gib(availableBytes)) available"
        case .streamsExperts:
            let cached = max(0, availableBytes - residentBytes)
            return "memory: does not fit (\(need) > \(Self.gib(availableBytes)) available) — routed experts "
                + "(\(Self.gib(expertBytes))) will stream from disk as tokens are routed to them; "
                + "\(Self.gib(residentBytes)) stays resident, the page cache can hold about "
                + String(format: "%.0f%%", 100 * Double(min(cached, expertBytes)) / Double(max(expertBytes, 1)))
                + " of the experts (--expert-cache-mb keeps the most used ones)"
        case .pagesWeights:
            return "memory: does not fit — even the weights every token reads and the KV cache "
                + "(\(Self.gib(residentBytes))) exceed the \(Self.gib(availableBytes)) available: "
                + "they will be paged in from disk on every token (very slow; a smaller quantization or --ctx helps)"
        }
    }

    static func gib(_ b: Int) -> String {
        b >= 1 << 30 ? String(format: "%.2f GiB", Double(b) / Double(1 << 30)) : String(format: "%.1f MiB", Double(b) / Double(1 << 20))
    }

    /// Bytes this process may use: the smaller of the kernel's MemAvailable (free memory plus
    /// reclaimable page cache) and the memory cgroup's limit (less what the cgroup already uses);
    /// TIEFSEE_MEMORY_BYTES overrides both (planning for another machine, tests).
    public static func availableMemory() -> Int {
        let env = ProcessInfo.processInfo.environment
        if let s = env["TIEFSEE_MEMORY_BYTES"], let v = Int(s) { return v }
        var avail = Int(ProcessInfo.processInfo.physicalMemory)
        if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kb = Int(line.split(separator: " ").dropFirst().first ?? "") {
            avail = min(avail, kb * 1024)
        }
        if let limit = cgroupLimit() { avail = min(avail, limit) }
        return avail
    }

    /// cgroup v2: memory.max - memory.current of this process's group; v1: limit_in_bytes - usage.
    static func cgroupLimit() -> Int? {
        func read(_ p: String) -> Int? {
            (try? String(contentsOfFile: p, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        if let self_ = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
           let v2 = self_.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) {
            let dir = "/sys/fs/cgroup" + v2.dropFirst(3)
            if let max = read(dir + "/memory.max") { return max - (read(dir + "/memory.current") ?? 0) }
        }
        if let max = read("/sys/fs/cgroup/memory/memory.limit_in_bytes"), max < 1 << 60 {
            return max - (read("/sys/fs/cgroup/memory/memory.usage_in_bytes") ?? 0)
        }
        return nil
    }

    /// The plan for `files` run with a context of `contextTokens` (nil: the default context
    /// `Engine.defaultContextSize` would choose) and the given cache types and expert cache.
    public static func estimate(_ files: ModelFiles, contextTokens: Int? = nil, options: EngineOptions = EngineOptions(),
                                availableBytes: Int = MemoryPlan.availableMemory()) -> MemoryPlan? {
        guard let c = files.config else { return nil }
        let footprint = WeightFootprint(files.weights, decoderLayers: c.numLayers)
        // The KV cache per token: MLA keeps one latent row (kv_lora_rank + rope) per layer,
        // otherwise keys and values of every KV head, in the chosen storage types.
        let perToken: Int
        if let mla = c.mla {
            perToken = c.numLayers * options.cacheKeyType.rowBytes(mla.kvLoraRank + mla.qkRopeHeadDim)
        } else {
            let w = c.numKVHeads * c.headDim
            perToken = c.numLayers * (options.cacheKeyType.rowBytes(w) + options.cacheValueType.rowBytes(w))
        }
        let ctx = contextTokens ?? max(256, min(c.maxPositionEmbeddings, (2 << 30) / max(perToken, 1)))
        return MemoryPlan(footprint: footprint, kvCacheBytes: ctx * perToken, contextTokens: ctx,
                          expertCacheBytes: options.experts?.cacheBytes ?? 0, availableBytes: availableBytes)
    }
}
