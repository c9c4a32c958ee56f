import Foundation
import Tiefsee

enum InfoCommand {
    static let help = """
    usage: tiefsee info [MODEL]

    Prints a model's architecture, parameter count, tensors per storage type, bits per weight
    overall and per kind of tensor (attention, routed and shared experts, dense FFN,
    embeddings/head), context length, KV-cache size per token, whether weights and cache fit in
    the memory available, special tokens and the first lines of its chat template.
    MODEL is a GGUF file, a Hugging Face folder, or a cached model name (default model if omitted).
    """

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: [OptionSpec.help])
        if a.has("help") { print(help); return }
        let loc = try ModelLocator.resolve(a.positional.first)
        let files = try ModelFiles.open(loc)
        print("model:         \(loc.path)")
        if let g = files.gguf {
            print("format:        GGUF v\(g.version), \(formatBytes(g.file.size))")
            if let n = g["general.name"]?.string { print("name:          \(n)") }
        } else {
            print("format:        Hugging Face folder (safetensors)")
        }
        let config = files.config
        if let c = config {
            print("architecture:  \(files.architectureName) (\(c.family.rawValue))")
        } else {
            print("architecture:  \(files.architectureName) (not supported for generation)")
        }
        // Tensors by storage type.
        var byType: [TensorType: (count: Int, bytes: Int, params: Int)] = [:]
        for name in files.weights.tensorNames {
            guard let t = files.weights.tensor(name) else { continue }
            var e = byType[t.type] ?? (0, 0, 0)
            e.count += 1; e.bytes += t.byteCount; e.params += t.elementCount
            byType[t.type] = e
        }
        let params = byType.values.reduce(0) { $0 + $1.params }
        print("parameters:    \(formatCount(params)) (\(params))")
        print("tensors:       \(files.weights.tensorNames.count)")
        for (t, e) in byType.sorted(by: { $0.value.bytes > $1.value.bytes }) {
            print("  \(t.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(String(e.count).leftPad(5)) tensors  \(formatBytes(e.bytes).leftPad(10))"
                  + String(format: "  %6.3f bits/weight", t.bitsPerWeight))
        }
        printBitsPerWeight(WeightFootprint(files.weights))
        if let c = config {
            print("context:       \(c.maxPositionEmbeddings) tokens")
            print("layers:        \(c.numLayers), hidden \(c.hiddenSize), heads \(c.numHeads) (kv \(c.numKVHeads)), head dim \(c.headDim)")
            if let m = c.moe {
                print("experts:       \(m.numExperts) routed, \(m.numExpertsPerToken) per token, \(m.numSharedExperts) shared, scoring \(m.scoring.rawValue), selection \(m.topKMethod.rawValue)")
            }
            if c.numNextnPredictLayers > 0 {
                let n = c.numLayers
                let layer = files.weights.tensorNames.filter { ParameterCount.layerIndex($0).map { $0 >= n } ?? false }
                let params = layer.reduce(0) { $0 + (files.weights.tensor($1)?.elementCount ?? 0) }
                print("multi-token prediction: \(c.numNextnPredictLayers) layer(s) after layer \(n - 1), \(layer.count) tensors, \(formatCount(params)) parameters (drafts with --mtp)")
            }
            if let v4 = c.v4 {
                let mtp = files.weights.tensorNames.filter { $0.hasPrefix("mtp.") }.count
                if v4.numNextnPredictLayers > 0 || mtp > 0 {
                    print("multi-token prediction: \(v4.numNextnPredictLayers) layer(s), \(mtp) mtp.* tensors (drafts with --mtp; plain decoding never reads them)")
                }
                printCacheKinds(DeepSeekV4CacheLayout(v4: v4),
                                uncompressed: c.numLayers * v4.headDim * 4, what: "one shared key = value row per layer")
            } else {
                let kv = KVCacheSize(config: c)
                print("KV cache:      \(formatBytes(kv.bytesPerToken)) per token (f32)\(kv.note)")
                for k in kv.kinds {
                    print("  \((k.name + ":").padding(toLength: 18, withPad: " ", startingAt: 0)) \(k.values) values (\(k.detail)) × \(c.numLayers) layers = \(formatBytes(k.bytes)) per token")
                }
            }
        }
        if let plan = MemoryPlan.estimate(files) { print(plan.summary) }
        if let tok = files.tokenizerSummary { print(tok) }
        if let enc = DeepSeekEncoding.forArchitecture(files.architectureName) {
            print("chat prompt:   DeepSeek's \(enc.rawValue) encoder (used instead of any chat template)")
        }
        if let tmpl = files.chatTemplate {
            let lines = tmpl.split(separator: "\n", omittingEmptySubsequences: false)
            print("chat template: \(lines.count) lines")
            for l in lines.prefix(6) { print("  | \(l)") }
            if lines.count > 6 { print("  | …") }
        } else {
            print("chat template: none")
        }
    }

    /// Bits per weight overall and per kind of tensor (what a low-bit quantization mixes).
    static func printBitsPerWeight(_ f: WeightFootprint) {
        let t = f.total
        print(String(format: "bits/weight:   %.3f overall (%@ of weights)", t.bitsPerWeight, formatBytes(t.bytes)))
        for k in TensorKind.allCases {
            let p = f.part(k)
            guard p.weights > 0 else { continue }
            print("  \(k.rawValue.padding(toLength: 21, withPad: " ", startingAt: 0))"
                  + String(format: "%7.3f bits/weight  ", p.bitsPerWeight) + "\(formatCount(p.weights).leftPad(8)) weights"
                  + "  \(formatBytes(p.bytes).leftPad(10))  \(String(p.tensors).leftPad(5)) tensors")
        }
    }

    /// A cache laid out per layer kind (DeepSeek-V4): bytes per token of each kind and its fixed part.
    static func printCacheKinds(_ layout: CacheLayout, uncompressed: Int, what: String) {
        let fixed = layout.kinds.reduce(0) { $0 + $1.fixedBytes * $1.layers }
        print("KV cache:      \(layout.bytesPerToken) B per token (f32) + \(formatBytes(fixed)) fixed (windows, open compression windows); "
              + "\(what) would need \(formatBytes(uncompressed)) per token")
        for k in layout.kinds {
            let per = k.bytesPerToken == k.bytesPerToken.rounded() ? String(Int(k.bytesPerToken)) : String(format: "%.2f", k.bytesPerToken)
            print("  \(k.kind.padding(toLength: 56, withPad: " ", startingAt: 0)) \(String(k.layers).leftPad(3)) layer\(k.layers == 1 ? " " : "s")  "
                  + "\(per.leftPad(8)) B per token per layer, \(formatBytes(k.fixedBytes)) fixed")
        }
    }
}

/// KV-cache bytes per token, per kind of cached row (MLA's latent, DSA's indexer keys, or keys
/// and values), and for MLA what standard multi-head attention would need.
struct KVCacheSize {
    let bytesPerToken: Int
    let note: String
    /// What every layer stores per token: the row's name, its values, bytes over all layers (f32).
    let kinds: [(name: String, detail: String, values: Int, bytes: Int)]

    init(config c: ModelConfig) {
        var kinds = [(name: String, detail: String, values: Int)]()
        if let mla = c.mla {
            kinds.append(("MLA latent", "kv_lora_rank \(mla.kvLoraRank) + qk_rope_head_dim \(mla.qkRopeHeadDim)", mla.kvLoraRank + mla.qkRopeHeadDim))
            if let d = c.dsa { kinds.append(("indexer keys", "index_head_dim", d.indexHeadDim)) }
        } else {
            let w = c.numKVHeads * c.headDim, d = "\(c.numKVHeads) kv heads × \(c.headDim)"
            kinds = [("keys", d, w), ("values", d, w)]
        }
        self.kinds = kinds.map { ($0.name, $0.detail, $0.values, c.numLayers * $0.values * 4) }
        bytesPerToken = self.kinds.reduce(0) { $0 + $1.bytes }
        if let mla = c.mla {
            let mha = c.numLayers * c.numHeads * (mla.qkHeadDim + mla.vHeadDim) * 4
            note = String(format: " — compressed latent (kv_lora_rank %d + rope %d)%@; standard multi-head attention would need %@ (%.1f×)",
                          mla.kvLoraRank, mla.qkRopeHeadDim, c.dsa.map { " + indexer keys (\($0.indexHeadDim)); a decode step reads at most index_topk \($0.indexTopK) latent rows" } ?? "",
                          formatBytes(mha), Double(mha) / Double(bytesPerToken))
        } else {
            note = ""
        }
    }
}

func formatBytes(_ b: Int) -> String {
    if b < 0 { return "-" + formatBytes(-b) }
    let d = Double(b)
    if b >= 1 << 30 { return String(format: "%.2f GiB", d / Double(1 << 30)) }
    if b >= 1 << 20 { return String(format: "%.1f MiB", d / Double(1 << 20)) }
    if b >= 1 << 10 { return String(format: "%.1f KiB", d / 1024) }
    return "\(b) B"
}

func formatCount(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1e9 { return String(format: "%.2fB", d / 1e9) }
    if d >= 1e6 { return String(format: "%.1fM", d / 1e6) }
    if d >= 1e3 { return String(format: "%.1fK", d / 1e3) }
    return "\(n)"
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
