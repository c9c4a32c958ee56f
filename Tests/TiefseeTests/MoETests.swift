import XCTest
@testable import Tiefsee

/// Tiny random MoE models from transformers (scripts/gen_moe_fixtures.py) and their GGUF twins
/// (scripts/gen_moe_gguf.py): logits, greedy tokens and every routing decision must match.
final class MoETests: XCTestCase {
    struct Expected {
        let prompt: [Int]
        let logits: [[Float]]
        let greedy: [Int]
        let fullLogitsLast: [Float]
        /// Per layer: nil for dense layers, else per prompt token the reference's choice.
        let routing: [[ExpertChoice]?]
    }

    static func expected(_ name: String) throws -> Expected {
        let j = try JSONValue.parse(contentsOf: fixturePath("moe/\(name)/expected.json"))
        func floats(_ v: JSONValue?) -> [Float] { (v?.array ?? []).map { Float($0.double ?? .nan) } }
        let routing: [[ExpertChoice]?] = j["routing"]!.array!.map { layer in
            guard let toks = layer.array else { return nil }
            return toks.map { ExpertChoice(experts: $0["experts"]!.array!.map { $0.int! }, weights: floats($0["weights"])) }
        }
        return Expected(prompt: j["prompt"]!.array!.map { $0.int! }, logits: j["logits"]!.array!.map(floats),
                        greedy: j["greedy"]!.array!.map { $0.int! }, fullLogitsLast: floats(j["full_logits_last"]),
                        routing: routing)
    }

    static func load(_ name: String, file: String? = nil) throws -> TransformerModel {
        let loc: ModelLocation = file.map { .gguf(fixturePath("moe/\(name)/\($0)")) } ?? .hfFolder(fixturePath("moe/" + name))
        return try ModelLoader.load(ModelFiles.open(loc))
    }

    static func maxAbsDiff(_ a: UnsafePointer<Float>, _ b: [Float]) -> Float { TiefseeTests.maxAbsDiff(a, b) }

    /// Logits (batched prompt, cached decode, one pass), greedy tokens and routing vs the reference.
    func check(_ name: String, tolerance: Float = 1e-4) throws {
        let model = try Self.load(name)
        let e = try Self.expected(name)
        let V = model.config.vocabSize
        let cache = model.makeCache(capacity: 64)
        let (logits, stats) = try model.withRoutingStats(keepDecisions: true) {
            try model.forward(e.prompt, cache: cache, lastK: e.prompt.count)
        }
        var worst: Float = 0
        for (t, row) in e.logits.enumerated() { worst = max(worst, Self.maxAbsDiff(logits.p + t * V, row)) }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(name): prompt logits max abs diff \(worst)")

        // Routing: the same experts in the same order, the same weights, for every token and layer.
        let decisions = stats.decisions
        XCTAssertEqual(decisions.count, e.routing.count)
        var worstWeight: Float = 0, compared = 0
        for (l, ref) in e.routing.enumerated() {
            guard let ref = ref else {
                XCTAssertTrue(decisions[l].isEmpty, "\(name): layer \(l) should be dense")
                continue
            }
            XCTAssertEqual(decisions[l].count, ref.count, "\(name): layer \(l) routed tokens")
            for (t, (got, want)) in zip(decisions[l], ref).enumerated() {
                XCTAssertEqual(got.experts, want.experts, "\(name): layer \(l) token \(t) experts")
                for (a, b) in zip(got.weights, want.weights) { worstWeight = max(worstWeight, abs(a - b)) }
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 0)
        XCTAssertLessThanOrEqual(worstWeight, 1e-5, "\(name): combine weights max abs diff \(worstWeight)")

        var next = Sampler.argmax(logits.p + (e.prompt.count - 1) * V, V)
        var generated = [next]
        var last = logits
        while generated.count < e.greedy.count {
            last = try model.forward([next], cache: cache)
            next = Sampler.argmax(last.p, V)
            generated.append(next)
        }
        XCTAssertEqual(generated, e.greedy, "\(name): greedy tokens")
        let full = try model.forward(e.prompt + e.greedy.dropLast(), cache: model.makeCache(capacity: 64))
        let d1 = Self.maxAbsDiff(full.p, e.fullLogitsLast), d2 = Self.maxAbsDiff(last.p, e.fullLogitsLast)
        XCTAssertLessThanOrEqual(d1, tolerance, "\(name): one-pass logits diff \(d1)")
        XCTAssertLessThanOrEqual(d2, tolerance, "\(name): cached decode logits diff \(d2)")
        print("\(name): prompt logits max abs diff \(worst), one-pass \(d1), cached \(d2); "
              + "routing: \(compared) token×layer decisions identical, weights max abs diff \(worstWeight)")
    }

    // Acceptance 1
    func testDeepSeekV3() throws { try check("deepseek-v3") }
    func testDeepSeekV2Lite() throws { try check("deepseek-v2-lite") }
    func testMixtral() throws { try check("mixtral") }
    func testQwen2MoESharedExpertGate() throws { try check("qwen2-moe") }
    func testQwen3MoEFusedExpertLayout() throws { try check("qwen3-moe") }

    /// Kimi-K2: DeepSeek-V3's architecture with 384 experts, one group, Kimi's YaRN, shipped as
    /// model_type kimi_k2 with hub-style rope_scaling and a tiktoken tokenizer.
    func testKimiK2() throws {
        try check("kimi-k2")
        let c = try Self.load("kimi-k2").config
        XCTAssertEqual(c.family, .deepseekV3)
        XCTAssertEqual(c.moe?.numExperts, 384); XCTAssertEqual(c.moe?.numExpertsPerToken, 8)
        XCTAssertEqual(c.moe?.nGroup, 1); XCTAssertEqual(c.moe?.topKGroup, 1)
        XCTAssertEqual(c.moe?.routedScalingFactor, 2.827); XCTAssertEqual(c.moe?.topKMethod, .noauxTC)
        XCTAssertEqual(c.ropeTheta, 50000); XCTAssertEqual(c.ropeScaling.kind, .yarn)
        XCTAssertEqual(c.ropeScaling.factor, 32); XCTAssertEqual(c.ropeScaling.betaFast, 1); XCTAssertEqual(c.ropeScaling.betaSlow, 1)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertEqual(c.vocabSize, 512)
        // By model_type alone (no architectures): kimi_k2 and the usual deepseek_v3 workaround.
        let j = try JSONValue.parse(contentsOf: fixturePath("moe/kimi-k2/config.json")).object!.filter { $0.0 != "architectures" }
        for mt in ["kimi_k2", "deepseek_v3"] {
            let cfg = try ModelConfig.fromHF(.object(j.filter { $0.0 != "model_type" } + [("model_type", .string(mt))]))
            XCTAssertEqual(cfg, c, mt)
        }
        // Its tokenizer is tiktoken.model (here the 256 single bytes) with the specials after them.
        let tok = try Tokenizer.load(modelFolder: fixturePath("moe/kimi-k2"))
        XCTAssertEqual(tok.encode("Hi"), [72, 105])
        XCTAssertEqual(tok.encode("[EOS]", parseSpecial: true), [257])
        XCTAssertEqual(tok.eosID, 257)
    }

    // Acceptance 3
    func testDeepSeekV3BF16() throws { try check("deepseek-v3-bf16") }
    func testDeepSeekV3FP8BlockScaled() throws {
        let model = try Self.load("deepseek-v3-fp8")
        XCTAssertEqual(model.config.fp8BlockSize, 32)
        try check("deepseek-v3-fp8")
    }

    /// A long prompt goes through the batched paths (experts in several fused passes, the
    /// shared expert on its own, MLA and dense MLPs in row chunks); token-by-token decode through
    /// the single-token ones. Same logits at every position.
    func testLongPromptMatchesTokenByToken() throws {
        for name in ["deepseek-v2-lite", "deepseek-v3", "qwen2-moe"] {
            let model = try Self.load(name)
            let V = model.config.vocabSize
            var rng = SplitMix(seed: 7)
            let n = 200
            let tokens = (0..<n).map { _ in Int(rng.next() % UInt64(V)) }
            let batched = try model.forward(tokens, cache: model.makeCache(capacity: n), lastK: n)
            let cache = model.makeCache(capacity: n)
            var worst: Float = 0
            for (t, id) in tokens.enumerated() {
                let step = try model.forward([id], cache: cache)
                worst = max(worst, Self.maxAbsDiff(step.p, Array(UnsafeBufferPointer(start: batched.p + t * V, count: V))))
            }
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): \(n)-token prompt vs token by token, max abs diff \(worst)")
        }
    }

    func testConfigsParsePerFamily() throws {
        let v3 = try Self.load("deepseek-v3").config
        XCTAssertEqual(v3.family, .deepseekV3)
        XCTAssertEqual(v3.moe?.scoring, .sigmoid)
        XCTAssertEqual(v3.moe?.topKMethod, .noauxTC)
        XCTAssertEqual(v3.moe?.nGroup, 4)
        XCTAssertEqual(v3.moe?.topKGroup, 2)
        XCTAssertEqual(v3.moe?.routedScalingFactor, 2.5)
        XCTAssertEqual((0..<3).map(v3.isMoELayer), [false, true, true])
        let v2 = try Self.load("deepseek-v2-lite").config
        XCTAssertEqual(v2.moe?.scoring, .softmax)
        XCTAssertEqual(v2.moe?.numSharedExperts, 2)
        XCTAssertNil(v2.mla?.qLoraRank)
        let q2 = try Self.load("qwen2-moe")
        XCTAssertEqual((0..<3).map(q2.config.isMoELayer), [true, false, true])
        XCTAssertNotNil(q2.moeBlocks.first?.sharedGate)
    }

    func testStackedExpertViewSharesBytes() throws {
        let model = try Self.load("qwen3-moe")
        let block = try XCTUnwrap(model.moeBlocks.first)
        let e3 = block.experts[3]
        // gate and up are the two halves of expert 3's slice of the fused [E, 2I, H] tensor.
        XCTAssertEqual(e3.gate.weight.shape, [32, 64])
        XCTAssertEqual(e3.up.weight.data - e3.gate.weight.data, 32 * 64 * 4)
        XCTAssertEqual(block.experts[4].gate.weight.data - e3.gate.weight.data, 64 * 64 * 4)
    }

    // Acceptance 4: GGUF twins written with llama.cpp's names and metadata.
    func checkGGUF(_ name: String) throws {
        let ref = try Self.load(name)
        let f32 = try Self.load(name, file: "model-f32.gguf")
        let q8 = try Self.load(name, file: "model-q8_0.gguf")
        XCTAssertEqual(f32.config.family, ref.config.family)
        XCTAssertEqual(f32.config.moe, ref.config.moe, "\(name): MoE config from GGUF metadata")
        XCTAssertEqual(f32.config.mla, ref.config.mla)
        let V = ref.config.vocabSize
        // Deterministic random token sequences, run teacher-forced.
        var rng = SplitMix(seed: 4242)
        var worst: Float = 0
        var agree = 0, positions = 0
        var errSq = 0.0, refSq = 0.0
        for _ in 0..<8 {
            let seq = (0..<32).map { _ in Int.random(in: 0..<V, using: &rng) }
            let a = try ref.forward(seq, cache: ref.makeCache(capacity: 32), lastK: seq.count)
            let b = try f32.forward(seq, cache: f32.makeCache(capacity: 32), lastK: seq.count)
            let c = try q8.forward(seq, cache: q8.makeCache(capacity: 32), lastK: seq.count)
            for t in 0..<seq.count {
                worst = max(worst, Self.maxAbsDiff(b.p + t * V, Array(UnsafeBufferPointer(start: a.p + t * V, count: V))))
                if Sampler.argmax(a.p + t * V, V) == Sampler.argmax(c.p + t * V, V) { agree += 1 }
                var mean = 0.0
                for v in 0..<V { mean += Double(a.p[t * V + v]) }
                mean /= Double(V)
                for v in 0..<V {
                    errSq += pow(Double(c.p[t * V + v] - a.p[t * V + v]), 2)
                    refSq += pow(Double(a.p[t * V + v]) - mean, 2)
                }
                positions += 1
            }
        }
        let share = Double(agree) / Double(positions)
        // Q8_0 noise relative to the spread of the logits: a broken quantized path shows here
        // even where top-1 happens to survive.
        let relErr = (errSq / refSq).squareRoot()
        XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): F32 GGUF vs safetensors max abs diff \(worst)")
        XCTAssertGreaterThanOrEqual(share, 0.99, "\(name): Q8_0 top-1 agreement \(share)")
        XCTAssertLessThanOrEqual(relErr, 0.08, "\(name): Q8_0 logits relative rms error \(relErr)")
        print("\(name) GGUF: F32 max abs diff \(worst) over \(positions) positions; Q8_0 top-1 agreement "
              + "\(agree)/\(positions) = \(share), relative rms logit error \(relErr)")
    }

    func testGGUFDeepSeekV3SplitKB() throws {
        try checkGGUF("deepseek-v3")
        // Newer llama.cpp layout: attn_k_b / attn_v_b, MQA key/value lengths, *_mla sizes.
        let g = try GGUFFile(path: fixturePath("moe/deepseek-v3/model-f32.gguf"))
        XCTAssertNotNil(g.info("blk.0.attn_k_b.weight"))
        XCTAssertNil(g.info("blk.0.attn_kv_b.weight"))
    }
    func testGGUFDeepSeekV2LiteKVB() throws {
        try checkGGUF("deepseek-v2-lite")
        // Older converter layout: attn_kv_b and no expert_gating_func (softmax).
        let g = try GGUFFile(path: fixturePath("moe/deepseek-v2-lite/model-f32.gguf"))
        XCTAssertNotNil(g.info("blk.0.attn_kv_b.weight"))
        XCTAssertNil(g.archValue("expert_gating_func"))
    }
    func testGGUFQwen3MoE() throws { try checkGGUF("qwen3-moe") }
    func testGGUFMixtral() throws { try checkGGUF("mixtral") }

    // Acceptance 5: expert statistics from generation.
    func testRoutingStatsReport() throws {
        let model = try Self.load("deepseek-v3")
        let e = try Self.expected("deepseek-v3")
        let V = model.config.vocabSize
        let cache = model.makeCache(capacity: 64)
        let steps = 10
        let (_, stats) = try model.withRoutingStats {
            var l = try model.forward(e.prompt, cache: cache)
            for _ in 0..<steps { l = try model.forward([Sampler.argmax(l.p, V)], cache: cache) }
            return l
        }
        let k = model.config.moe!.numExpertsPerToken
        let tokens = e.prompt.count + steps
        let params = ParameterCount.of(config: model.config, weights: try ModelFiles.open(.hfFolder(fixturePath("moe/deepseek-v3"))).weights)
        let report = stats.report(parameters: params)
        print(report)
        var sparse = 0
        for (l, counts) in stats.counts.enumerated() where model.config.isMoELayer(l) {
            XCTAssertEqual(counts.reduce(0, +), tokens * k, "layer \(l)")
            XCTAssertEqual(stats.tokens[l], tokens)
            sparse += 1
            // The printed line carries the same numbers.
            let line = report.split(separator: "\n").first { $0.hasPrefix("layer \(l):") }.map(String.init) ?? ""
            let listed = line.split(separator: " ").compactMap { part -> Int? in
                let kv = part.split(separator: ":")
                return kv.count == 2 && Int(kv[0]) != nil ? Int(kv[1]) : nil
            }
            XCTAssertEqual(listed.count, model.config.moe!.numExperts)
            XCTAssertEqual(listed.reduce(0, +), tokens * k, line)
        }
        XCTAssertEqual(sparse, 2)
        XCTAssertTrue(report.contains("layer 0: dense"))
        XCTAssertLessThan(params.activePerToken, params.total)
        XCTAssertTrue(report.contains("active per token"))
        // Stopped: nothing more is recorded.
        _ = try model.forward([3], cache: cache)
        XCTAssertEqual(stats.tokens[1], tokens)
    }

    func testRouterSemantics() throws {
        // 8 experts in 4 groups, sigmoid + bias (V3): the bias decides, the weights ignore it.
        var m = MoEConfig(numExperts: 8, numExpertsPerToken: 2, expertIntermediateSize: 4)
        m.scoring = .sigmoid; m.topKMethod = .noauxTC; m.nGroup = 4; m.topKGroup = 2
        m.normTopKProb = true; m.routedScalingFactor = 2
        let w = Tensor.owned(name: "gate", shape: [8, 1], values: [Float](repeating: 0, count: 8))
        let bias: [Float] = [0, 0.5, 0, 0, 0.1, 0.2, 0, 0.45]
        let r = try ExpertRouter(config: m, gate: try Linear(weight: w), selectionBias: bias)
        let logits: [Float] = [3, 0, 0, 0, 0, 0, 0, 0]
        let c = logits.withUnsafeBufferPointer { r.route(logits: $0.baseAddress!) }
        // Biased scores: e0 0.953, e1 1.0, e4 0.6, e5 0.7, e7 0.95, others 0.5. Groups (sum of their
        // two best): g0 1.953, g1 1.0, g2 1.3, g3 1.45 → keep g0 and g3; best: e1 (1.0), e0 (0.953),
        // ahead of e7 (0.95). Weights use the unbiased sigmoid: e1 0.5, e0 0.953.
        XCTAssertEqual(c.experts, [1, 0])
        let s0: Float = 1 / (1 + expf(-3)), s1: Float = 0.5
        XCTAssertEqual(c.weights[0], 2 * s1 / (s0 + s1), accuracy: 1e-6)
        XCTAssertEqual(c.weights[1], 2 * s0 / (s0 + s1), accuracy: 1e-6)
        // Without the bias the same logits pick e0 first.
        let plain = try ExpertRouter(config: m, gate: try Linear(weight: w), selectionBias: nil)
        XCTAssertEqual(logits.withUnsafeBufferPointer { plain.route(logits: $0.baseAddress!) }.experts.first, 0)
    }
}

/// The `tiefsee` command line on the DeepSeek-V3 fixture (which carries a tiny tokenizer).
final class MoECLITests: XCTestCase {
    func run(_ args: [String]) throws -> String { try Self.run(args) }

    /// Runs the built `tiefsee` with `args` and returns its standard output (status 0 asserted).
    static func run(_ args: [String]) throws -> String {
        let r = try runTiefseeCLI(args)
        XCTAssertEqual(r.status, 0, "tiefsee \(args.joined(separator: " ")): \(r.stderr)")
        return r.stdout
    }

    // Acceptance 5
    func testRunShowExperts() throws {
        let out = try run(["run", fixturePath("moe/deepseek-v3"), "-p", "the cat sat on the mat", "--raw", "-n", "8",
                           "--temp", "0", "--show-experts"])
        print(out)
        let k = 2, experts = 8
        var layers = 0
        for line in out.split(separator: "\n") where line.hasPrefix("layer ") && !line.hasSuffix("dense") {
            let counts = line.split(separator: " ").compactMap { part -> Int? in
                let kv = part.split(separator: ":")
                return kv.count == 2 && Int(kv[0]) != nil ? Int(kv[1]) : nil
            }
            XCTAssertEqual(counts.count, experts, String(line))
            // "(sum S = T tokens × k)"
            let tokens = line.components(separatedBy: "= ").last.flatMap { Int($0.split(separator: " ")[0]) } ?? -1
            XCTAssertGreaterThan(tokens, 8)
            XCTAssertEqual(counts.reduce(0, +), tokens * k, String(line))
            layers += 1
        }
        XCTAssertEqual(layers, 2)
        XCTAssertTrue(out.contains("layer 0: dense"))
        XCTAssertTrue(out.contains("active per token"))
    }

    func testLogitsRoutingJSON() throws {
        let e = try MoETests.expected("deepseek-v3")
        let out = try run(["logits", fixturePath("moe/deepseek-v3"), "--tokens", e.prompt.map(String.init).joined(separator: ","), "--routing"])
        let j = try JSONValue.parse(out)
        let routing = try XCTUnwrap(j["routing"]?.array)
        XCTAssertEqual(routing.count, e.routing.count)
        for (l, ref) in e.routing.enumerated() {
            guard let ref = ref else { XCTAssertNil(routing[l].array, "layer \(l) is dense: null"); continue }
            let toks = try XCTUnwrap(routing[l].array)
            XCTAssertEqual(toks.count, e.prompt.count)
            for (t, want) in ref.enumerated() {
                XCTAssertEqual(toks[t]["experts"]?.array?.compactMap(\.int), want.experts, "layer \(l) token \(t)")
                let w = toks[t]["weights"]?.array?.compactMap(\.double) ?? []
                for (a, b) in zip(w, want.weights) { XCTAssertEqual(Float(a), b, accuracy: 1e-5) }
            }
        }
    }
}
