import Foundation

// Mixture-of-Experts feed-forward, one block configured per family (MoEConfig):
//
//   family        scores   selection                         weights
//   Mixtral       softmax  top-k                             renormalised
//   Qwen2/3-MoE   softmax  top-k                             renormalised if norm_topk_prob
//   DeepSeek-V2   softmax  greedy or group_limited_greedy    × routed_scaling_factor
//   DeepSeek-V3   sigmoid  noaux_tc (bias-corrected groups)  renormalised, × routed_scaling_factor
//   DeepSeek-V4   √softplus greedy (bias-corrected), or by   renormalised, × routed_scaling_factor
//                          token id (hash layers, tid2eid)
//
// plus shared experts: DeepSeek adds `n_shared_experts` (one wide MLP) unweighted; Qwen2-MoE adds
// its shared expert scaled by sigmoid(shared_expert_gate · x). Layers before
// `first_k_dense_replace`, in `mlp_only_layers`, or off the `decoder_sparse_step` use a dense MLP.

/// The experts one token was sent to, in chosen order (best selection score first), and the
/// weights its expert outputs are combined with.
public struct ExpertChoice: Equatable, Sendable {
    public var experts: [Int]
    public var weights: [Float]
}

/// Router (gating network): hidden state → expert logits → scores → top-k selection → weights.
public struct ExpertRouter {
    public let config: MoEConfig
    /// [n_experts, hidden]: one logit per expert.
    public let gate: Linear
    /// DeepSeek-V3's `e_score_correction_bias`: shifts the scores used to *select* experts only.
    public let selectionBias: [Float]?
    /// DeepSeek-V4's hash layers: a frozen token id → experts table (`tid2eid`, vocab × k) picks
    /// the experts; the gate's scores still weight them.
    public var tokenExperts: [Int32]?

    public init(config: MoEConfig, gate: Linear, selectionBias: [Float]?) throws {
        let m = config
        guard gate.outFeatures == m.numExperts else {
            throw ModelLoadError.badShape(name: gate.weight.name, shape: gate.weight.shape, expected: "[\(m.numExperts), hidden]")
        }
        if let b = selectionBias, b.count != m.numExperts {
            throw ModelLoadError.badShape(name: "e_score_correction_bias", shape: [b.count], expected: "[\(m.numExperts)]")
        }
        if m.topKMethod != .greedy {
            guard m.nGroup > 0, m.numExperts % m.nGroup == 0, m.topKGroup >= 1, m.topKGroup <= m.nGroup,
                  m.topKGroup * (m.numExperts / m.nGroup) >= m.numExpertsPerToken else {
                throw ModelLoadError.unsupported("invalid expert groups: \(m.numExperts) experts, n_group \(m.nGroup), topk_group \(m.topKGroup), \(m.numExpertsPerToken) per token")
            }
        }
        self.config = config; self.gate = gate; self.selectionBias = selectionBias
    }

    /// Routes one token from its router logits (n_experts values); `token` is its id (hash layers).
    public func route(logits: UnsafePointer<Float>, token: Int? = nil) -> ExpertChoice {
        var hash: (table: [Int32], token: Int)? = nil
        if let table = tokenExperts, let id = token { hash = (table, id) }
        return ExpertRouter.route(logits: UnsafeBufferPointer(start: logits, count: config.numExperts), config: config,
                                  bias: selectionBias, tokenExperts: hash)
    }

    /// The routing decision as a pure function of the router logits, the selection bias and the
    /// config (no weights involved), so each family's rule can be tested from a table.
    /// `tokenExperts`: a hash layer's table and the token's id.
    public static func route(logits: UnsafeBufferPointer<Float>, config m: MoEConfig, bias: [Float]?,
                             tokenExperts: (table: [Int32], token: Int)? = nil) -> ExpertChoice {
        let E = m.numExperts, k = m.numExpertsPerToken
        precondition(logits.count == E)
        // 1. Scores, in f32 as the references compute them.
        var scores = [Float](repeating: 0, count: E)
        switch m.scoring {
        case .softmax:
            for e in 0..<E { scores[e] = logits[e] }
            scores.withUnsafeMutableBufferPointer { VectorOps.softmax($0.baseAddress!, E) }
        case .sigmoid:
            for e in 0..<E { scores[e] = 1 / (1 + expf(-logits[e])) }
        case .sqrtSoftplus:
            // softplus as torch computes it: linear above 20, log1p(exp(x)) below.
            for e in 0..<E { let x = logits[e]; scores[e] = (x > 20 ? x : log1pf(expf(x))).squareRoot() }
        }
        // 2. What selection ranks: the scores, shifted by the correction bias (V3).
        var select = scores
        if let b = bias { for e in 0..<E { select[e] += b[e] } }
        // 3. Group-limited routing: keep only the best `topk_group` groups of experts.
        if m.topKMethod != .greedy && m.nGroup > 1 {
            let size = E / m.nGroup
            let groupScore: [Float] = (0..<m.nGroup).map { g in
                let members = select[g * size..<(g + 1) * size]
                if m.topKMethod == .groupLimitedGreedy { return members.max()! }   // V2: the group's best expert
                let top2 = members.sorted(by: >).prefix(2)                          // V3: sum of its two best
                return top2.reduce(0, +)
            }
            let keep = Set(topIndices(groupScore, m.topKGroup))
            for g in 0..<m.nGroup where !keep.contains(g) {
                // V2 zeroes the masked softmax scores, V3 sets them to -inf: both only exclude them.
                for e in g * size..<(g + 1) * size { select[e] = m.topKMethod == .groupLimitedGreedy ? 0 : -.infinity }
            }
        }
        // 4. Top-k (or the token's row of the hash table); the combine weights come from the
        //    unbiased scores.
        let chosen: [Int]
        if let (table, t) = tokenExperts {
            chosen = (0..<k).map { Int(table[t * k + $0]) }
        } else {
            chosen = topIndices(select, k)
        }
        var weights = chosen.map { scores[$0] }
        if m.normTopKProb {
            let sum = weights.reduce(0, +) + (m.topKMethod == .noauxTC || m.scoring == .sqrtSoftplus ? 1e-20 : 0)
            weights = weights.map { $0 / sum }
        }
        if m.routedScalingFactor != 1 {
            let f = Float(m.routedScalingFactor)
            weights = weights.map { $0 * f }
        }
        return ExpertChoice(experts: chosen, weights: weights)
    }

    /// Indices of the `k` largest values, largest first (ties: lower index first).
    static func topIndices(_ v: [Float], _ k: Int) -> [Int] {
        var taken = [Bool](repeating: false, count: v.count)
        var out = [Int]()
        out.reserveCapacity(k)
        for _ in 0..<min(k, v.count) {
            var best = -1
            for i in v.indices where !taken[i] && (best < 0 || v[i] > v[best]) { best = i }
            taken[best] = true
            out.append(best)
        }
        return out
    }
}

/// The sparse feed-forward block: router, routed experts (SwiGLU, `moe_intermediate_size`)
/// combined as the weighted sum, plus optional shared experts.
public final class MoEBlock: FeedForwardBlock {
    public let layerIndex: Int
    public internal(set) var router: ExpertRouter
    public let experts: [GatedMLP]
    /// DeepSeek's shared experts (one MLP of n_shared × moe_intermediate_size) or Qwen2-MoE's shared expert.
    public let shared: GatedMLP?
    /// Qwen2-MoE: the shared expert's output is scaled by sigmoid(sharedGate · x).
    public let sharedGate: [Float]?
    /// Where routing decisions are reported (set through `TransformerModel.startRoutingStats`).
    public var observer: RoutingStats?
    /// Expert residency (paging hints, resident experts) when the engine sets one up.
    public var residency: ExpertResidency?
    /// DeepSeek-V4's `swiglu_limit`: routed and shared experts clip their gate/up values.
    public var swigluLimit: Float? {
        didSet { shared?.swigluLimit = swigluLimit }
    }

    public init(layerIndex: Int, router: ExpertRouter, experts: [GatedMLP], shared: GatedMLP?, sharedGate: [Float]?) {
        self.layerIndex = layerIndex; self.router = router; self.experts = experts
        self.shared = shared; self.sharedGate = sharedGate
    }

    public var hiddenSize: Int { router.gate.inFeatures }

    /// Most rows (tokens × chosen experts) one fused pass works on: bounds the scratch of a long
    /// prompt (~50 KB per row at V2-Lite's shape) while keeping the dispatches per layer few.
    static let maxRowsPerPass = 256
    /// Up to this many tokens the shared expert joins the last fused pass (decode: one dispatch
    /// for everything); a longer prompt runs it on its own, in `GatedMLP`'s bounded row chunks.
    static let maxTokensSharedFused = 16

    public func forward(_ x: UnsafePointer<Float>, count T: Int, out: UnsafeMutablePointer<Float>) {
        precondition(router.tokenExperts == nil, "a hash-routed MoE layer needs the token ids (forward(_:count:tokens:out:))")
        forward(x, count: T, tokens: nil, out: out)
    }

    /// For each token x (a row of `x`):
    ///
    ///     y = Σ_{e ∈ TopK(router(x))} w_e(x) · E_e(x)  +  S(x)
    ///     E_e(x) = down_e(silu(gate_e x) ⊙ up_e x)       (SwiGLU expert)
    ///     S(x)   = shared(x)  (DeepSeek)  |  sigmoid(g·x) · shared(x)  (Qwen2-MoE)  |  0
    ///
    /// with TopK and w from `ExpertRouter.route`. This is the fused form: tokens are grouped by
    /// expert so each chosen expert's weights stream once per batch. `forwardReference` computes
    /// the same sum token by token, expert by expert; the tests hold the two together.
    /// `tokens`: the rows' token ids, which hash-routed layers (DeepSeek-V4) route by.
    public func forward(_ x: UnsafePointer<Float>, count T: Int, tokens: [Int]?, out: UnsafeMutablePointer<Float>) {
        let E = experts.count
        let logits = FloatBuffer(count: T * E, zeroed: false)
        router.gate.forward(x, rows: T, out: logits.p)
        let choices = (0..<T).map { router.route(logits: logits.p + $0 * E, token: tokens?[$0]) }
        // Group the batch's tokens by expert so each chosen expert's weights stream once for all
        // its tokens; experts nobody chose are never read.
        var tokensOf = [[(row: Int, weight: Float)]](repeating: [], count: E)
        for (t, c) in choices.enumerated() {
            for (e, w) in zip(c.experts, c.weights) { tokensOf[e].append((t, w)) }
        }
        let used = (0..<E).filter { !tokensOf[$0].isEmpty }
        // Where each chosen expert's weights are read from: locked pages or a copy when resident,
        // else the mapping (asked for ahead of use, so its pages come in together).
        let mlps = residency.map { $0.experts(layer: layerIndex, used, mapped: experts) } ?? used.map { experts[$0] }
        out.initialize(repeating: 0, count: T * hiddenSize)
        // Passes over groups of experts (one pass in decode), the shared expert in the last or
        // after it, so the sum runs in the same order however the experts are grouped.
        let fuseShared = T <= MoEBlock.maxTokensSharedFused
        var lo = 0
        repeat {
            var hi = lo, rows = 0
            while hi < used.count && (hi == lo || rows + tokensOf[used[hi]].count <= MoEBlock.maxRowsPerPass) {
                rows += tokensOf[used[hi]].count; hi += 1
            }
            expertPass(x, count: T, experts: Array(mlps[lo..<hi]), tokens: used[lo..<hi].map { tokensOf[$0] },
                       withShared: fuseShared && hi == used.count, out: out)
            lo = hi
        } while lo < used.count
        if !fuseShared, let s = shared {
            let ys = FloatBuffer(count: T * hiddenSize, zeroed: false)
            s.forward(x, count: T, out: ys.p)
            addShared(ys.p, x, count: T, out: out)
        }
        observer?.record(layer: layerIndex, choices)
    }

    /// The equation above, one token and one expert at a time (slow, obvious; for tests).
    public func forwardReference(_ x: UnsafePointer<Float>, count T: Int, tokens: [Int]? = nil, out: UnsafeMutablePointer<Float>) {
        let E = experts.count, H = hiddenSize
        let logits = FloatBuffer(count: E, zeroed: false), y = FloatBuffer(count: H, zeroed: false)
        for t in 0..<T {
            let xt = x + t * H, ot = out + t * H
            ot.initialize(repeating: 0, count: H)
            router.gate.forward(xt, rows: 1, out: logits.p)
            let c = router.route(logits: logits.p, token: tokens?[t])
            for (e, w) in zip(c.experts, c.weights) {
                experts[e].forward(xt, count: 1, out: y.p)
                for i in 0..<H { ot[i] += w * y.p[i] }
            }
            if let s = shared {
                s.forward(xt, count: 1, out: y.p)
                var scale: Float = 1
                if let g = sharedGate {
                    var d: Float = 0
                    for i in 0..<H { d += g[i] * xt[i] }
                    scale = 1 / (1 + expf(-d))
                }
                for i in 0..<H { ot[i] += scale * y.p[i] }
            }
        }
    }

    /// SwiGLU of several experts (each on its own tokens) and, with `withShared`, the shared
    /// expert on all tokens: every gate/up product in one parallel loop, every down product in
    /// a second, then the weighted sum into `out` (experts in index order, shared last).
    func expertPass(_ x: UnsafePointer<Float>, count T: Int, experts mlps: [GatedMLP], tokens: [[(row: Int, weight: Float)]],
                    withShared: Bool, out: UnsafeMutablePointer<Float>) {
        let H = hiddenSize
        let f = mlps.first?.gate.outFeatures ?? 0
        var first = [Int](), rows = 0
        for t in tokens { first.append(rows); rows += t.count }
        // Inputs: in decode every expert reads the one token (quantized once); a batch gathers
        // each expert's tokens.
        var inputs = [LinearInput(x, rows: T)]
        var gathered: FloatBuffer? = nil
        var inputOf = [Int](repeating: 0, count: mlps.count)
        if T > 1 {
            let xs = FloatBuffer(count: rows * H, zeroed: false)
            for (j, toks) in tokens.enumerated() {
                for (k, r) in toks.enumerated() { (xs.p + (first[j] + k) * H).update(from: x + r.row * H, count: H) }
                inputOf[j] = inputs.count
                inputs.append(LinearInput(xs.p + first[j] * H, rows: toks.count))
            }
            gathered = xs
        }
        let shared = withShared ? self.shared : nil
        let fs = shared?.gate.outFeatures ?? 0
        let g = FloatBuffer(count: rows * f + T * fs, zeroed: false)
        let u = FloatBuffer(count: rows * f + T * fs, zeroed: false)
        let gs = g.p + rows * f, us = u.p + rows * f
        var jobs = [LinearJob]()
        for (j, m) in mlps.enumerated() {
            jobs.append(LinearJob(m.gate, input: inputOf[j], out: g.p + first[j] * f))
            jobs.append(LinearJob(m.up, input: inputOf[j], out: u.p + first[j] * f))
        }
        if let s = shared { jobs += [LinearJob(s.gate, input: 0, out: gs), LinearJob(s.up, input: 0, out: us)] }
        Linear.forward(jobs: jobs, inputs: inputs, pool: .shared)
        withExtendedLifetime(gathered) {}
        GatedMLP.activate(g.p, u.p, rows * f + T * fs, limit: swigluLimit)

        let ys = FloatBuffer(count: (rows + (shared != nil ? T : 0)) * H, zeroed: false)
        inputs = mlps.indices.map { LinearInput(g.p + first[$0] * f, rows: tokens[$0].count) }
        jobs = mlps.enumerated().map { LinearJob($1.down, input: $0, out: ys.p + first[$0] * H) }
        if let s = shared {
            inputs.append(LinearInput(gs, rows: T))
            jobs.append(LinearJob(s.down, input: inputs.count - 1, out: ys.p + rows * H))
        }
        Linear.forward(jobs: jobs, inputs: inputs, pool: .shared)

        for (j, toks) in tokens.enumerated() {
            for (k, r) in toks.enumerated() { VectorOps.axpy(r.weight, ys.p + (first[j] + k) * H, out + r.row * H, H) }
        }
        if shared != nil { addShared(ys.p + rows * H, x, count: T, out: out) }
    }

    /// out += the shared expert's output (Qwen2-MoE: scaled by sigmoid(shared_gate · x)).
    func addShared(_ ys: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count T: Int, out: UnsafeMutablePointer<Float>) {
        let H = hiddenSize
        for t in 0..<T {
            var gate: Float = 1
            if let sg = sharedGate {
                gate = sg.withUnsafeBufferPointer { 1 / (1 + expf(-VectorOps.dot($0.baseAddress!, x + t * H, H))) }
            }
            VectorOps.axpy(gate, ys + t * H, out + t * H, H)
        }
    }
}

// MARK: - Loading

/// Mixtral, Qwen2-MoE and Qwen3-MoE: the dense decoder's grouped-query attention with the MoE
/// feed-forward block.
public enum MoEDecoder {
    public static func load(config c: ModelConfig, weights w: WeightLoader) throws -> TransformerModel {
        try DenseDecoder.loadGroupedQuery(config: c, weights: w) { i in try feedForward(config: c, weights: w, layer: i) }
    }

    /// Norms around `attention` and the layer's feed-forward block (dense or sparse).
    static func decoderLayer(config c: ModelConfig, weights w: WeightLoader, layer i: Int,
                             attention: AttentionBlock) throws -> DecoderLayer {
        try DenseDecoder.decoderLayer(config: c, weights: w, layer: i, attention: attention,
                                      feedForward: try feedForward(config: c, weights: w, layer: i))
    }

    /// Layer i's feed-forward block: the dense MLP, or the MoE block configured by `c.moe`.
    public static func feedForward(config c: ModelConfig, weights w: WeightLoader, layer i: Int) throws -> FeedForwardBlock {
        guard let m = c.moe, c.isMoELayer(i) else {
            return try GatedMLP(gate: w.layerLinear(i, "ffn_gate"), up: w.layerLinear(i, "ffn_up"),
                                down: w.layerLinear(i, "ffn_down"))
        }
        let n = w.naming
        func required(_ key: String) throws -> String {
            let names = n.layerCandidates(i, key)
            guard let found = w.firstTensor(names) else {
                throw ModelLoadError.missingTensor(names.joined(separator: " or "), file: w.fileName)
            }
            return found
        }
        let gate = try w.linear(try required("ffn_gate_inp"))
        guard gate.inFeatures == c.hiddenSize else {
            throw ModelLoadError.badShape(name: gate.weight.name, shape: gate.weight.shape, expected: "[\(m.numExperts), \(c.hiddenSize)]")
        }
        let bias = m.topKMethod == .noauxTC || m.scoreCorrectionBias ? try w.optionalFloats(n.expertScoreBias(i)) : nil
        let router = try ExpertRouter(config: m, gate: gate, selectionBias: bias)
        var experts = [GatedMLP]()
        experts.reserveCapacity(m.numExperts)
        for e in 0..<m.numExperts {
            let g = try Linear(weight: w.expertMatrix(i, expert: e, .gate))
            let u = try Linear(weight: w.expertMatrix(i, expert: e, .up))
            let d = try Linear(weight: w.expertMatrix(i, expert: e, .down))
            guard g.inFeatures == c.hiddenSize, g.outFeatures == m.expertIntermediateSize,
                  u.outFeatures == g.outFeatures, d.inFeatures == g.outFeatures, d.outFeatures == c.hiddenSize else {
                throw ModelLoadError.badShape(name: g.weight.name, shape: g.weight.shape,
                                              expected: "[\(m.expertIntermediateSize), \(c.hiddenSize)] (moe_intermediate_size × hidden)")
            }
            experts.append(GatedMLP(gate: g, up: u, down: d))
        }
        var shared: GatedMLP? = nil
        var sharedGate: [Float]? = nil
        if m.numSharedExperts > 0 || m.sharedExpertIntermediateSize > 0 {
            shared = try GatedMLP(gate: w.linear(required("ffn_gate_shexp")), up: w.linear(required("ffn_up_shexp")),
                                  down: w.linear(required("ffn_down_shexp")))
            if m.sharedExpertGated {
                let g = try w.floats(try required("ffn_gate_inp_shexp"))
                guard g.count == c.hiddenSize else {
                    throw ModelLoadError.badShape(name: n.layer(i, "ffn_gate_inp_shexp"), shape: [g.count], expected: "[1, \(c.hiddenSize)]")
                }
                sharedGate = g
            }
        }
        return MoEBlock(layerIndex: i, router: router, experts: experts, shared: shared, sharedGate: sharedGate)
    }
}

// MARK: - Config

extension ModelConfig {
    /// Mixtral, Qwen2-MoE, Qwen3-MoE from config.json (`fromHF` has read the expert counts).
    mutating func readMoEFamily(hf k: HFConfigKeys) {
        readQwenAttention(hf: k)
        guard var m = moe else { return }
        switch family {
        case .mixtral:
            m.normTopKProb = true
        case .qwen2moe:
            m.normTopKProb = k.bool("norm_topk_prob") ?? false
            m.sharedExpertIntermediateSize = k.int("shared_expert_intermediate_size") ?? 0
            m.sharedExpertGated = m.sharedExpertIntermediateSize > 0
            m.mlpOnlyLayers = k.json["mlp_only_layers"]?.array?.compactMap(\.int) ?? []
            m.decoderSparseStep = k.int("decoder_sparse_step") ?? 1
        case .qwen3moe:
            m.normTopKProb = k.bool("norm_topk_prob") ?? false
            m.mlpOnlyLayers = k.json["mlp_only_layers"]?.array?.compactMap(\.int) ?? []
            m.decoderSparseStep = k.int("decoder_sparse_step") ?? 1
        default: break
        }
        moe = m
    }

    /// Mixtral (general.architecture llama with experts), Qwen2-MoE, Qwen3-MoE from GGUF.
    mutating func readMoEFamily(gguf k: GGUFConfigKeys) {
        // llama.cpp always renormalises Mixtral's and Qwen3-MoE's top-k.
        if family == .mixtral || family == .qwen3moe { moe?.normTopKProb = k.v("expert_weights_norm")?.bool ?? true }
        // Mixtral is llama's layout: Q/K permuted at conversion, adjacent pairs rotate.
        if family == .mixtral { ropeLayout = .adjacentPairs }
    }
}
