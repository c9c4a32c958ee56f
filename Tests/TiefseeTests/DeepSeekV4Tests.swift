import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// A tiny random DeepSeek-V4 from transformers' deepseek_v4 (scripts/gen_dsv4_fixtures.py):
/// sliding / CSA / HCA layers, a window shorter than the 140-token prompt, sinks, hc_mult 4
/// hyper-connections, two hash-routed layers, MTP weights in the checkpoint. Logits, greedy
/// tokens and every routing decision must match, in one prefill and token by token.
final class DeepSeekV4Tests: XCTestCase {
    struct Expected {
        let prompt: [Int]
        let logits: [[Float]]
        let greedy: [Int]
        let decodeLogits: [[Float]]
        let routing: [[ExpertChoice]]
        let decodeRouting: [[ExpertChoice]]
        /// Per CSA layer: per prompt token, the compressed entries the indexer picked (sorted).
        let indexer: [Int: [[Int]]]
    }

    static let expected: Expected = {
        let j = try! JSONValue.parse(contentsOf: fixturePath("dsv4/tiny/expected.json"))
        func floats(_ v: JSONValue?) -> [Float] { (v?.array ?? []).map { Float($0.double ?? .nan) } }
        func ints(_ v: JSONValue?) -> [Int] { (v?.array ?? []).map { $0.int! } }
        func routing(_ v: JSONValue?) -> [[ExpertChoice]] {
            v!.array!.map { $0.array!.map { ExpertChoice(experts: ints($0["experts"]), weights: floats($0["weights"])) } }
        }
        var idx = [Int: [[Int]]]()
        for l in j["indexer"]!.array! { idx[l["layer"]!.int!] = l["topk"]!.array!.map(ints) }
        return Expected(prompt: ints(j["prompt"]), logits: j["logits"]!.array!.map(floats), greedy: ints(j["greedy"]),
                        decodeLogits: j["decode_logits"]!.array!.map(floats), routing: routing(j["routing"]),
                        decodeRouting: routing(j["decode_routing"]), indexer: idx)
    }()

    static let model: TransformerModel = try! ModelLoader.load(ModelFiles.open(.hfFolder(fixturePath("dsv4/tiny"))))

    static func maxAbsDiff(_ a: UnsafePointer<Float>, _ b: [Float]) -> Float {
        var m: Float = 0
        for i in b.indices { m = max(m, abs(a[i] - b[i])) }
        return m
    }

    /// Routing decisions vs the reference (experts as sets, sorted, with their weights).
    static func compareRouting(_ got: [[ExpertChoice]], _ want: [[ExpertChoice]], _ what: String) -> Float {
        XCTAssertEqual(got.count, want.count, what)
        var worst: Float = 0
        for (l, (g, w)) in zip(got, want).enumerated() {
            XCTAssertEqual(g.count, w.count, "\(what): layer \(l) routed tokens")
            for (t, (a, b)) in zip(g, w).enumerated() {
                let order = a.experts.indices.sorted { a.experts[$0] < a.experts[$1] }
                XCTAssertEqual(order.map { a.experts[$0] }, b.experts, "\(what): layer \(l) token \(t) experts")
                for (i, wb) in zip(order, b.weights) { worst = max(worst, abs(a.weights[i] - wb)) }
            }
        }
        return worst
    }

    func testConfigFromDeepSeekCheckpoint() throws {
        let c = Self.model.config
        XCTAssertEqual(c.family, .deepseekV4)
        let v = try XCTUnwrap(c.v4)
        XCTAssertEqual(v.layerTypes, [.slidingAttention, .compressedSparseAttention, .heavilyCompressedAttention, .compressedSparseAttention])
        XCTAssertEqual(v.compressRatios, [0, 4, 128, 4])
        XCTAssertEqual(v.hashLayers, [true, true, false, false])
        XCTAssertEqual(v.qkRopeHeadDim, 16)
        XCTAssertEqual(v.slidingWindow, 16)
        XCTAssertEqual(v.hcMult, 4)
        XCTAssertEqual(v.hcSinkhornIters, 7)
        XCTAssertEqual(v.indexTopk, 5)
        XCTAssertEqual(v.compressRopeScaling.kind, .yarn)
        XCTAssertEqual(v.compressRopeScaling.attentionFactor, 1)
        XCTAssertEqual(v.compressRopeTheta, 160000)
        XCTAssertEqual(c.moe?.scoring, .sqrtSoftplus)
        XCTAssertEqual(c.moe?.routedScalingFactor, 1.5)
        XCTAssertEqual(Self.model.moeBlocks.map { $0.router.tokenExperts != nil }, [true, true, false, false])
        XCTAssertEqual(Self.model.moeBlocks.map { $0.router.selectionBias != nil }, [false, false, true, true])
        // The checkpoint carries a multi-token-prediction block, which decoding does not load.
        let files = try ModelFiles.open(.hfFolder(fixturePath("dsv4/tiny")))
        XCTAssertTrue(files.weights.tensorNames.contains("mtp.0.e_proj.weight"))
        let params = ParameterCount.of(config: c, weights: files.weights)
        let mtp = files.weights.tensorNames.filter { $0.hasPrefix("mtp.") }.reduce(0) { $0 + (files.weights.tensor($1)?.elementCount ?? 0) }
        let all = files.weights.tensorNames.reduce(0) { $0 + (files.weights.tensor($1)?.elementCount ?? 0) }
        XCTAssertEqual(params.total, all - mtp, "the MTP block is not part of the decoding model")
        // 6 of 8 routed experts idle per token in each of the 4 layers.
        XCTAssertEqual(params.total - params.activePerToken, 4 * 6 * 3 * 64 * 32)
    }

    /// The whole prompt in one pass: logits at every position and every routing decision.
    func testPrefillMatchesTransformers() throws {
        let model = Self.model, e = Self.expected, V = model.config.vocabSize
        let cache = model.makeCache(capacity: 256)
        let (logits, stats) = try model.withRoutingStats(keepDecisions: true) {
            try model.forward(e.prompt, cache: cache, lastK: e.prompt.count)
        }
        var worst: Float = 0
        for (t, row) in e.logits.enumerated() { worst = max(worst, Self.maxAbsDiff(logits.p + t * V, row)) }
        let w = Self.compareRouting(stats.decisions, e.routing, "prefill")
        XCTAssertLessThanOrEqual(worst, 1e-4, "prefill logits max abs diff \(worst)")
        XCTAssertLessThanOrEqual(w, 1e-5, "prefill routing weights max abs diff \(w)")
        print("DeepSeek-V4 prefill (\(e.prompt.count) tokens): logits max abs diff \(worst), routing weights \(w)")
    }

    /// Token by token through the cache (each layer kind's window, entries and open window), then
    /// greedy decoding: the logits of every prompt position, transformers' greedy tokens and its
    /// cached-decode logits, and routing for prompt and generated tokens.
    func testTokenByTokenDecodeMatchesTransformers() throws {
        let model = Self.model, e = Self.expected, V = model.config.vocabSize
        let cache = model.makeCache(capacity: 256)
        var worst: Float = 0, last = FloatBuffer(count: 0)
        let (_, stats) = try model.withRoutingStats(keepDecisions: true) {
            for (t, id) in e.prompt.enumerated() {
                last = try model.forward([id], cache: cache)
                worst = max(worst, Self.maxAbsDiff(last.p, e.logits[t]))
            }
        }
        let w = Self.compareRouting(stats.decisions, e.routing, "token-by-token prompt")
        var generated = [Sampler.argmax(last.p, V)]
        var decodeWorst: Float = 0
        let (_, decodeStats) = try model.withRoutingStats(keepDecisions: true) {
            while generated.count < e.greedy.count {
                last = try model.forward([generated.last!], cache: cache)
                decodeWorst = max(decodeWorst, Self.maxAbsDiff(last.p, e.decodeLogits[generated.count]))
                generated.append(Sampler.argmax(last.p, V))
            }
        }
        let dw = Self.compareRouting(decodeStats.decisions, e.decodeRouting, "greedy decode")
        XCTAssertLessThanOrEqual(worst, 1e-4, "token-by-token prompt logits max abs diff \(worst)")
        XCTAssertLessThanOrEqual(w, 1e-5)
        XCTAssertEqual(generated, e.greedy, "greedy tokens")
        XCTAssertLessThanOrEqual(decodeWorst, 1e-4, "cached greedy decode logits max abs diff \(decodeWorst)")
        XCTAssertLessThanOrEqual(dw, 1e-5)
        print("DeepSeek-V4 token by token: prompt logits max abs diff \(worst), greedy decode logits \(decodeWorst), "
              + "routing weights \(max(w, dw)), greedy \(generated)")
    }

    /// Uneven chunks (windows and compressed entries closing inside a chunk and across chunks,
    /// the HCA entry at position 127 inside one) give the same logits as the reference.
    func testChunkedPrefillMatchesTransformers() throws {
        let model = Self.model, e = Self.expected, V = model.config.vocabSize
        let cache = model.makeCache(capacity: 256)
        var worst: Float = 0, start = 0
        for size in [3, 1, 22, 7, 64, 43] {
            let chunk = Array(e.prompt[start..<start + size])
            let l = try model.forward(chunk, cache: cache, lastK: size)
            for t in 0..<size { worst = max(worst, Self.maxAbsDiff(l.p + t * V, e.logits[start + t])) }
            start += size
        }
        XCTAssertEqual(start, e.prompt.count)
        XCTAssertLessThanOrEqual(worst, 1e-4, "chunked prefill logits max abs diff \(worst)")
        print("DeepSeek-V4 chunked prefill: logits max abs diff \(worst)")
    }

    /// A decode step at position N reads, per layer kind, only its window and compressed entries:
    /// sliding_window rows everywhere, index_topk of the ⌊(N+1)/4⌋ CSA entries (the indexer scores
    /// all of them), every one of the ⌊(N+1)/128⌋ HCA entries; and the ring holds only the window.
    func testDecodeReadsOnlyWindowAndCompressedEntries() throws {
        let model = Self.model, e = Self.expected, v = model.config.v4!
        let cache = try XCTUnwrap(model.makeCache(capacity: 512) as? DeepSeekV4Cache)
        _ = try model.forward(e.prompt, cache: cache)
        for n in [e.prompt.count, 200, 255] {
            while cache.length < n { _ = try model.forward([5], cache: cache) }
            for l in cache.layerStates { l.resetReads() }
            _ = try model.forward([7], cache: cache)   // decode at position n
            for (i, l) in cache.layerStates.enumerated() {
                XCTAssertEqual(l.windowReads, v.slidingWindow, "layer \(i) at \(n): window rows")
                switch l.type {
                case .slidingAttention:
                    XCTAssertEqual(l.compressedReads, 0); XCTAssertEqual(l.indexKeyReads, 0)
                case .compressedSparseAttention:
                    XCTAssertEqual(l.indexKeyReads, (n + 1) / 4, "layer \(i) at \(n): indexer keys scored")
                    XCTAssertEqual(l.compressedReads, min(v.indexTopk, (n + 1) / 4), "layer \(i) at \(n): CSA entries read")
                case .heavilyCompressedAttention:
                    XCTAssertEqual(l.compressedReads, (n + 1) / 128, "layer \(i) at \(n): HCA entries read")
                    XCTAssertEqual(l.indexKeyReads, 0)
                }
                XCTAssertEqual(l.ring.count, (v.slidingWindow + DeepSeekV4Cache.stepTakeBack) * v.headDim)
                XCTAssertEqual(l.compressor?.entryCount ?? 0, v.compressRatios[i] > 0 ? (n + 1) / v.compressRatios[i] : 0)
            }
        }
    }

    /// The lightning indexer picks the same compressed entries as transformers for every prompt
    /// token, in one prefill and token by token (index_topk 5 of up to 35 entries).
    func testIndexerPicksMatchTransformers() throws {
        let model = Self.model, e = Self.expected
        for byToken in [false, true] {
            let cache = try XCTUnwrap(model.makeCache(capacity: 256) as? DeepSeekV4Cache)
            for l in cache.layerStates { l.recordIndexerPicks = true }
            if byToken { for id in e.prompt { _ = try model.forward([id], cache: cache) } } else { _ = try model.forward(e.prompt, cache: cache) }
            XCTAssertEqual(Set(e.indexer.keys), [1, 3])
            var selective = 0
            for (layer, want) in e.indexer {
                let got = cache.layerStates[layer].indexerPicks
                XCTAssertEqual(got.count, want.count)
                for (t, (g, w)) in zip(got, want).enumerated() {
                    XCTAssertEqual(g, w, "layer \(layer) token \(t) (\(byToken ? "token by token" : "prefill"))")
                    if (t + 1) / 4 > 5 { selective += 1 }
                }
            }
            XCTAssertGreaterThan(selective, 200, "positions where the indexer had to choose")
        }
    }

    /// Sequences batched in one step (the server's continuous batching) each get what they get alone.
    func testBatchedSequencesMatchSeparateRuns() throws {
        let model = Self.model, e = Self.expected, V = model.config.vocabSize
        let a = Array(e.prompt[..<70]), b = Array(e.prompt[30..<135])
        let ca = model.makeCache(capacity: 256), cb = model.makeCache(capacity: 256)
        let batched = try model.forwardBatch([(a, ca, 1), (b, cb, 1)])
        let la = try model.forward(a, cache: model.makeCache(capacity: 256)), lb = try model.forward(b, cache: model.makeCache(capacity: 256))
        XCTAssertLessThanOrEqual(Self.maxAbsDiff(batched[0].p, Array(UnsafeBufferPointer(start: la.p, count: V))), 1e-5)
        XCTAssertLessThanOrEqual(Self.maxAbsDiff(batched[1].p, Array(UnsafeBufferPointer(start: lb.p, count: V))), 1e-5)
        // and one decode step for both
        let step = try model.forwardBatch([([5], ca, 1), ([6], cb, 1)])
        let fa = try model.forward(a + [5], cache: model.makeCache(capacity: 256))
        let fb = try model.forward(b + [6], cache: model.makeCache(capacity: 256))
        XCTAssertLessThanOrEqual(Self.maxAbsDiff(step[0].p, Array(UnsafeBufferPointer(start: fa.p, count: V))), 1e-4)
        XCTAssertLessThanOrEqual(Self.maxAbsDiff(step[1].p, Array(UnsafeBufferPointer(start: fb.p, count: V))), 1e-4)
    }

    /// The KV bytes per position per layer kind (what `tiefsee info` prints) follow the ratios.
    func testCacheBytesPerLayerKind() throws {
        let model = Self.model, v = model.config.v4!
        let kinds = try XCTUnwrap(model.cacheLayout?.kinds)
        XCTAssertEqual(kinds.map(\.layers), [1, 2, 1])
        XCTAssertEqual(kinds.map(\.bytesPerToken), [0, Double((v.headDim + v.indexHeadDim) * 4) / 4, Double(v.headDim * 4) / 128])
        XCTAssertEqual(kinds[0].fixedBytes, (v.slidingWindow + DeepSeekV4Cache.stepTakeBack) * v.headDim * 4)
        XCTAssertEqual(model.cacheBytesPerToken, Int((2 * 56.0 + 1.0).rounded(.up)))
        // A cache for 1,024 positions is the windows, the entries and the open windows, nothing per position beyond.
        let cache = model.makeCache(capacity: 1024)
        let fixed = kinds.reduce(0) { $0 + $1.fixedBytes * $1.layers }
        XCTAssertLessThanOrEqual(cache.bytes, fixed + 1025 * model.cacheBytesPerToken + 4 * 1024)
    }

    /// The cache cannot be cut back: a new prompt sharing only part of what the session holds is
    /// read again from the start, and gives what a fresh session gives; continuing a
    /// conversation (the cache holds a prefix of the new prompt) reuses it.
    func testSessionRePrefillsWhenThePrefixCannotBeKept() throws {
        let model = Self.model, e = Self.expected
        let cache = model.makeCache(capacity: 256)
        _ = try model.forward(Array(e.prompt[..<40]), cache: cache)
        XCTAssertFalse(cache.canRewind)
        XCTAssertEqual(cache.reusablePrefix(40), 40)
        XCTAssertEqual(cache.reusablePrefix(39), 0)
        cache.truncate(to: 0)
        XCTAssertEqual(cache.length, 0)

        let engine = try Engine(files: ModelFiles.open(.hfFolder(fixturePath("dsv4/tiny"))))
        var options = GenerationOptions()
        options.maxTokens = 4
        options.ignoreEOS = true
        options.sampling.temperature = 0
        let session = Session(engine: engine, contextSize: 256)
        let first = try session.generate(prompt: Array(e.prompt[..<60]), options: options)
        XCTAssertEqual(first.promptTokensEvaluated, 60)
        let diverging = Array(e.prompt[..<30]) + [9, 9, 9]
        let second = try session.generate(prompt: diverging, options: options)
        XCTAssertEqual(second.promptTokensEvaluated, diverging.count, "re-read from the start")
        let fresh = try Session(engine: engine, contextSize: 256).generate(prompt: diverging, options: options)
        XCTAssertEqual(second.tokens, fresh.tokens)
        // The session holds the prompt and all but the last answer token: a follow-up reuses it.
        XCTAssertEqual(session.tokens, diverging + second.tokens.dropLast())
        let continued = session.tokens + [11]
        let third = try session.generate(prompt: continued, options: options)
        XCTAssertEqual(third.promptTokensEvaluated, 1)
        XCTAssertEqual(third.tokens, try Session(engine: engine, contextSize: 256).generate(prompt: continued, options: options).tokens)
    }

    static func loadGGUF(_ file: String) throws -> TransformerModel {
        try ModelLoader.load(ModelFiles.open(.gguf(fixturePath("dsv4/tiny/\(file)"))))
    }

    /// llama.cpp's deepseek4 GGUF of the same model (scripts/gen_dsv4_gguf.py): the same config,
    /// transformers' logits in prefill and decode, the same routing and greedy tokens.
    func testGGUFMatchesTransformers() throws {
        let model = try Self.loadGGUF("model-f32.gguf"), e = Self.expected, V = model.config.vocabSize
        XCTAssertEqual(model.config.family, .deepseekV4)
        XCTAssertEqual(model.config.v4, Self.model.config.v4, "DeepSeek-V4 settings from GGUF metadata")
        XCTAssertEqual(model.config.moe, Self.model.config.moe, "MoE settings from GGUF metadata")
        let cache = model.makeCache(capacity: 256)
        let (logits, stats) = try model.withRoutingStats(keepDecisions: true) {
            try model.forward(e.prompt, cache: cache, lastK: e.prompt.count)
        }
        var worst: Float = 0
        for (t, row) in e.logits.enumerated() { worst = max(worst, Self.maxAbsDiff(logits.p + t * V, row)) }
        let w = Self.compareRouting(stats.decisions, e.routing, "GGUF prefill")
        var generated = [Sampler.argmax(logits.p + (e.prompt.count - 1) * V, V)]
        var decodeWorst: Float = 0
        while generated.count < e.greedy.count {
            let l = try model.forward([generated.last!], cache: cache)
            decodeWorst = max(decodeWorst, Self.maxAbsDiff(l.p, e.decodeLogits[generated.count]))
            generated.append(Sampler.argmax(l.p, V))
        }
        XCTAssertLessThanOrEqual(worst, 1e-4, "GGUF prefill logits max abs diff \(worst)")
        XCTAssertLessThanOrEqual(w, 1e-5)
        XCTAssertEqual(generated, e.greedy)
        XCTAssertLessThanOrEqual(decodeWorst, 1e-4, "GGUF decode logits max abs diff \(decodeWorst)")
        print("DeepSeek-V4 GGUF f32: prefill logits max abs diff \(worst), decode \(decodeWorst), routing weights \(w)")
    }

    /// The Q8_0 twin (projections, experts, embeddings and head in Q8_0) stays close to the
    /// reference: top-1 agreement over the prompt positions and the relative RMS logit error.
    /// The random model is chaotic where it selects (expert and indexer margins of ~2e-4, the
    /// swiglu clip): quantization noise flips some selections and the logits after them, so the
    /// bounds are loose (measured: 117/140 top-1, 0.17 relative error); a wrong layout or
    /// kernel gives chance-level agreement. The f32 twin above is the exact check.
    func testGGUFQ8_0StaysCloseToTransformers() throws {
        let model = try Self.loadGGUF("model-q8_0.gguf")
        XCTAssertEqual(model.outputHead.weight.type, .q8_0)
        try assertCloseToTransformers(model, "Q8_0")
    }

    /// The same model quantized by llama.cpp's own quantizer (llama_model_quantize, Q8_0, as
    /// gen_dsv4_gguf.py --llama-q8 makes it): unlike our converter it also quantizes the
    /// hyper-connection mixes (hc_*_fn, output_hc_fn), the compressors' position biases (Q8_0,
    /// or F16 where a row is not whole blocks) and the indexer's weights_proj, which is what the
    /// V4-Flash benchmark model's Q4_K_M file holds; Tiefsee must read them all (measured:
    /// 113/140 top-1, 0.17 relative error, as our own Q8_0 twin).
    func testLlamaCppQuantizedGGUFStaysCloseToTransformers() throws {
        let model = try Self.loadGGUF("model-llama-q8_0.gguf")
        try assertCloseToTransformers(model, "llama.cpp Q8_0")
    }

    /// Top-1 agreement over the prompt positions and the relative RMS logit error against
    /// transformers, with the Q8_0 bounds above.
    func assertCloseToTransformers(_ model: TransformerModel, _ label: String) throws {
        let e = Self.expected, V = model.config.vocabSize
        XCTAssertEqual(model.config.v4, Self.model.config.v4)
        let logits = try model.forward(e.prompt, cache: model.makeCache(capacity: 256), lastK: e.prompt.count)
        var agree = 0
        var errSq = 0.0, refSq = 0.0
        for (t, row) in e.logits.enumerated() {
            let p = logits.p + t * V
            if Sampler.argmax(p, V) == Sampler.argmax(row, V) { agree += 1 }
            for i in 0..<V { errSq += Double((p[i] - row[i]) * (p[i] - row[i])); refSq += Double(row[i] * row[i]) }
        }
        let rel = (errSq / refSq).squareRoot(), rate = Double(agree) / Double(e.logits.count)
        XCTAssertGreaterThanOrEqual(rate, 0.75, "\(label) top-1 agreement \(agree)/\(e.logits.count)")
        XCTAssertLessThanOrEqual(rel, 0.3, "\(label) relative rms logit error \(rel)")
        print("DeepSeek-V4 GGUF \(label): top-1 agreement \(agree)/\(e.logits.count), relative rms logit error \(rel)")
    }

    /// The server's scheduler with a cache that cannot rewind: a request sharing part of what the
    /// slot holds is read from the start (prompt lookup and the prompt cache stay off for it),
    /// and answers as a fresh session does; a follow-up holding the slot's whole content reuses it.
    func testSchedulerRePrefillsDeepSeekV4() throws {
        let e = Self.expected
        let engine = try Engine(files: ModelFiles.open(.hfFolder(fixturePath("dsv4/tiny"))))
        let metrics = ServerMetrics(slots: 1)
        let scheduler = BatchScheduler(engine: engine, parallel: 1, contextSize: 256, maxQueue: 4, metrics: metrics,
                                       promptCache: PromptCache(budgetBytes: 1 << 20, minTokens: 4))
        defer { scheduler.shutdown() }
        var options = GenerationOptions()
        options.maxTokens = 4
        options.ignoreEOS = true
        options.sampling.temperature = 0
        func run(_ prompt: [Int]) -> (text: String, summary: JobSummary?) {
            let job = GenerationJob(prompt: prompt, options: options)
            try! scheduler.submit(job)
            var text = "", summary: JobSummary? = nil
            let deadline = Date().addingTimeInterval(60)
            while summary == nil && Date() < deadline {
                for ev in job.next(timeout: 1) {
                    switch ev { case .text(let t, _): text += t; case .done(let s): summary = s }
                }
            }
            return (text, summary)
        }
        func promptTokensRead() -> Int {
            let line = metrics.render().split(separator: "\n").first { $0.hasPrefix("tiefsee_prompt_tokens_total ") }
            return Int(line?.split(separator: " ").last ?? "") ?? -1
        }
        let first = run(Array(e.prompt[..<60]))
        XCTAssertEqual(first.summary?.completionTokens, 4, first.summary?.error ?? "")
        XCTAssertEqual(promptTokensRead(), 60)
        let diverging = Array(e.prompt[..<30]) + [9, 9, 9]
        let second = run(diverging)
        XCTAssertNil(second.summary?.error)
        XCTAssertEqual(promptTokensRead(), 60 + diverging.count, "the shared 30 tokens are read again")
        let fresh = try Session(engine: engine, contextSize: 256).generate(prompt: diverging, options: options)
        XCTAssertEqual(second.text, fresh.text)
    }

    func testCheckpointNamesResolve() {
        XCTAssertEqual(DeepSeekV4Checkpoint.candidates("model.layers.1.self_attn.compressor.indexer.q_b_proj.weight")[1],
                       "layers.1.attn.indexer.wq_b.weight")
        XCTAssertEqual(DeepSeekV4Checkpoint.candidates("model.layers.3.mlp.experts.7.down_proj.weight")[1],
                       "layers.3.ffn.experts.7.w2.weight")
        XCTAssertEqual(DeepSeekV4Checkpoint.candidates("model.layers.0.attn_hc.fn")[1], "layers.0.hc_attn_fn")
        XCTAssertEqual(DeepSeekV4Checkpoint.candidates("model.layers.2.self_attn.compressor.position_bias")[1],
                       "layers.2.attn.compressor.ape")
        XCTAssertEqual(DeepSeekV4Checkpoint.candidates("model.layers.1.self_attn.kv_norm.weight")[1], "layers.1.attn.kv_norm.weight")
        XCTAssertEqual(DeepSeekV4Checkpoint.candidates("model.layers.1.self_attn.compressor.indexer.kv_norm.weight")[1],
                       "layers.1.attn.indexer.compressor.norm.weight")
        XCTAssertEqual(DeepSeekV4Checkpoint.ggufCandidates("model.layers.3.self_attn.compressor.indexer.scorer.weights_proj.weight"),
                       ["blk.3.indexer.proj.weight"])
        XCTAssertEqual(DeepSeekV4Checkpoint.ggufCandidates("model.hc_head.hc_fn"), ["output_hc_fn.weight"])
    }
}
