import XCTest
@testable import Tiefsee

/// DeepSeek-V3.2 (DeepSeek Sparse Attention) against transformers' DeepseekV32ForCausalLM on the
/// tiny fixture (scripts/gen_dsv32_fixtures.py): index_topk 6 < the 12-token prompt, so from
/// position 6 on every query attends to a strict subset of the cache.
final class DeepSeekV32Tests: XCTestCase {
    static let name = "deepseek-v32"

    struct Expected {
        let prompt: [Int], greedy: [Int], topK: Int
        let logits: [[Float]], decodeLogits: [[Float]], fullLogitsLast: [Float]
        /// Per layer: per token (prompt, then decode steps) the reference's choice or selection.
        let routing: [[ExpertChoice]?], decodeRouting: [[ExpertChoice]?]
        let selected: [[[Int32]]], decodeSelected: [[[Int32]]]
    }

    static func expected() throws -> Expected {
        let j = try JSONValue.parse(contentsOf: fixturePath("moe/\(name)/expected.json"))
        func floats(_ v: JSONValue?) -> [Float] { (v?.array ?? []).map { Float($0.double ?? .nan) } }
        func ints(_ v: JSONValue?) -> [Int] { (v?.array ?? []).map { $0.int! } }
        func routing(_ k: String) -> [[ExpertChoice]?] {
            j[k]!.array!.map { layer in
                layer.array.map { $0.map { ExpertChoice(experts: ints($0["experts"]), weights: floats($0["weights"])) } }
            }
        }
        func selected(_ k: String) -> [[[Int32]]] { j[k]!.array!.map { $0.array!.map { ints($0).map(Int32.init) } } }
        return Expected(prompt: ints(j["prompt"]), greedy: ints(j["greedy"]), topK: j["index_topk"]!.int!,
                        logits: j["logits"]!.array!.map(floats), decodeLogits: j["decode_logits"]!.array!.map(floats),
                        fullLogitsLast: floats(j["full_logits_last"]), routing: routing("routing"),
                        decodeRouting: routing("decode_routing"), selected: selected("selected"),
                        decodeSelected: selected("decode_selected"))
    }

    static func load(_ file: String? = nil) throws -> TransformerModel { try MoETests.load(name, file: file) }

    func compareRouting(_ got: [[ExpertChoice]], _ want: [[ExpertChoice]?], _ what: String) -> (compared: Int, worst: Float) {
        var worst: Float = 0, compared = 0
        XCTAssertEqual(got.count, want.count)
        for (l, ref) in want.enumerated() {
            guard let ref = ref else { XCTAssertTrue(got[l].isEmpty, "\(what): layer \(l) is dense"); continue }
            XCTAssertEqual(got[l].count, ref.count, "\(what): layer \(l) routed tokens")
            for (t, (g, w)) in zip(got[l], ref).enumerated() {
                XCTAssertEqual(g.experts, w.experts, "\(what): layer \(l) token \(t) experts")
                for (a, b) in zip(g.weights, w.weights) { worst = max(worst, abs(a - b)) }
                compared += 1
            }
        }
        XCTAssertLessThanOrEqual(worst, 1e-5, "\(what): combine weights max abs diff \(worst)")
        return (compared, worst)
    }

    /// Prefill logits, routing and indexer selections; then token-by-token greedy decode with the
    /// cache, each step's logits, routing and selections; then one pass over prompt + greedy.
    func check(file: String? = nil) throws {
        let model = try Self.load(file)
        let e = try Self.expected()
        let V = model.config.vocabSize, label = file ?? "safetensors"
        let dsa = model.sparseAttentionBlocks
        XCTAssertEqual(dsa.count, model.config.numLayers)
        for b in dsa { b.recordSelections = true }
        defer { for b in dsa { b.recordSelections = false } }
        let cache = model.makeCache(capacity: 64)
        let (logits, stats) = try model.withRoutingStats(keepDecisions: true) {
            try model.forward(e.prompt, cache: cache, lastK: e.prompt.count)
        }
        var prefill: Float = 0
        for (t, row) in e.logits.enumerated() { prefill = max(prefill, MoETests.maxAbsDiff(logits.p + t * V, row)) }
        XCTAssertLessThanOrEqual(prefill, 1e-4, "\(label): prompt logits max abs diff \(prefill)")
        let pr = compareRouting(stats.decisions, e.routing, "\(label) prefill")
        for (l, b) in dsa.enumerated() { XCTAssertEqual(b.selections, e.selected[l], "\(label): layer \(l) prompt selections") }
        let strict = e.selected.joined().filter { $0.count == e.topK && $0.last! >= Int32(e.topK) }.count
        XCTAssertGreaterThan(strict, 0, "the fixture must exercise a strict selection")

        // Decode: greedy tokens with the cache, each step's logits vs the reference's cached step.
        for b in dsa { b.clearSelections() }
        var generated = [Sampler.argmax(logits.p + (e.prompt.count - 1) * V, V)]
        var decode: Float = 0
        let (_, dstats) = try model.withRoutingStats(keepDecisions: true) {
            for want in e.decodeLogits {
                let step = try model.forward([generated.last!], cache: cache)
                decode = max(decode, MoETests.maxAbsDiff(step.p, want))
                generated.append(Sampler.argmax(step.p, V))
            }
        }
        XCTAssertEqual(generated, e.greedy, "\(label): greedy tokens")
        XCTAssertLessThanOrEqual(decode, 1e-4, "\(label): cached decode logits max abs diff \(decode)")
        let dr = compareRouting(dstats.decisions, e.decodeRouting, "\(label) decode")
        for (l, b) in dsa.enumerated() { XCTAssertEqual(b.selections, e.decodeSelected[l], "\(label): layer \(l) decode selections") }
        let full = try model.forward(e.prompt + e.greedy.dropLast(), cache: model.makeCache(capacity: 64))
        let onePass = MoETests.maxAbsDiff(full.p, e.fullLogitsLast)
        XCTAssertLessThanOrEqual(onePass, 1e-4, "\(label): one-pass logits max abs diff \(onePass)")
        print("deepseek-v32 (\(label)): prompt logits max abs diff \(prefill), cached decode \(decode), one-pass \(onePass); "
              + "routing \(pr.compared)+\(dr.compared) decisions identical (weights ≤ \(max(pr.worst, dr.worst))); "
              + "indexer selections identical, \(strict) prompt queries with a strict top-\(e.topK)")
    }

    func testMatchesTransformersPrefillAndDecode() throws { try check() }
    func testGGUFDeepSeek32MatchesTransformers() throws { try check(file: "model-f32.gguf") }

    func testConfigFields() throws {
        let c = try Self.load().config
        XCTAssertEqual(c.family, .deepseekV32)
        XCTAssertEqual(c.dsa, SparseAttentionConfig(indexTopK: 6, indexNHeads: 16, indexHeadDim: 32))
        XCTAssertEqual((0..<3).map(c.isMoELayer), [false, true, true])  // mlp_layer_types
        XCTAssertEqual(c.moe?.topKMethod, .noauxTC)
        XCTAssertEqual(c.ropeLayout, .adjacentPairs)
        let g = try Self.load("model-f32.gguf").config
        XCTAssertEqual(g.family, .deepseekV32)
        XCTAssertEqual(g.dsa, c.dsa)
        XCTAssertEqual(g.numLayers, 3, "block_count 4 counts the MTP block")
        XCTAssertEqual((0..<3).map(g.isMoELayer), [false, true, true])
        // The hub's spelling: no mlp_layer_types, first_k_dense_replace; a missing q_lora_rank is refused.
        let j = try JSONValue.parse(contentsOf: fixturePath("moe/\(Self.name)/config.json")).object!
        func with(_ drop: Set<String>, _ add: [(String, JSONValue)]) -> JSONValue { .object(j.filter { !drop.contains($0.0) } + add) }
        let hub = with(["mlp_layer_types", "first_k_dense_replace"], [("first_k_dense_replace", .int(2))])
        XCTAssertEqual((0..<3).map(try ModelConfig.fromHF(hub).isMoELayer), [false, false, true])
        XCTAssertThrowsError(try ModelConfig.fromHF(with(["q_lora_rank"], [("q_lora_rank", .null)]))) {
            XCTAssertTrue("\($0)".contains("q_lora_rank"), "\($0)")
        }
    }

    /// The cache: [c_KV | k_rope] in the key rows, the indexer key in the value rows; a decode at
    /// position N reads exactly the index_topk selected latent rows of each layer.
    func testDecodeReadsOnlySelectedLatentRows() throws {
        let model = try Self.load()
        let e = try Self.expected()
        let mla = try XCTUnwrap(model.config.mla), dsa = try XCTUnwrap(model.config.dsa)
        let cache = model.makeCache(capacity: 64)
        XCTAssertEqual(cache.kWidth, mla.kvLoraRank + mla.qkRopeHeadDim)
        XCTAssertEqual(cache.vWidth, dsa.indexHeadDim)
        XCTAssertEqual(model.cacheBytesPerToken, model.config.numLayers * (mla.kvLoraRank + mla.qkRopeHeadDim + dsa.indexHeadDim) * 4)
        let blocks = model.sparseAttentionBlocks
        _ = try model.forward(e.prompt, cache: cache)
        // Prefill: query t reads min(t + 1, topk) rows.
        for b in blocks {
            XCTAssertEqual(b.mla.latentRowsRead, e.prompt.indices.reduce(0) { $0 + min($1 + 1, dsa.indexTopK) })
        }
        var token = e.greedy[0]
        for step in 0..<4 {
            for b in blocks { b.mla.resetReadCounter(); b.recordSelections = true; b.clearSelections() }
            let position = cache.length
            _ = try model.forward([token], cache: cache)
            for (l, b) in blocks.enumerated() {
                XCTAssertEqual(b.mla.latentRowsRead, dsa.indexTopK, "layer \(l): decode at position \(position) read \(b.mla.latentRowsRead) latent rows")
                XCTAssertEqual(b.selections, [e.decodeSelected[l][step]], "layer \(l) position \(position): the rows read are the reference's top-k")
                XCTAssertLessThan(dsa.indexTopK, position + 1)
            }
            token = e.greedy[step + 1]
        }
        // Dense MLA on the same cache would read every position.
        let v3 = try MoETests.load("deepseek-v3")
        let c3 = v3.makeCache(capacity: 64)
        _ = try v3.forward(e.prompt, cache: c3)
        let m3 = try XCTUnwrap(v3.layers[0].attention as? MultiHeadLatentAttention)
        m3.resetReadCounter()
        _ = try v3.forward([1], cache: c3)
        XCTAssertEqual(m3.latentRowsRead, e.prompt.count + 1)
    }

    /// Quantized caches: both rows are stored whole; q8_0 keeps greedy decoding on the reference.
    func testQuantizedCache() throws {
        let model = try Self.load()
        let e = try Self.expected()
        XCTAssertEqual(model.layers[0].attention.cacheRowAlignment(), 16)  // gcd(80, 32)
        XCTAssertThrowsError(try model.setCacheTypes(key: .q8_0, value: .f32))
        try model.setCacheTypes(key: .f16, value: .f16)
        defer { try? model.setCacheTypes(key: .f32, value: .f32) }
        let cache = model.makeCache(capacity: 64)
        let V = model.config.vocabSize
        var last = try model.forward(e.prompt, cache: cache)
        var generated = [Sampler.argmax(last.p, V)]
        while generated.count < e.greedy.count {
            last = try model.forward([generated.last!], cache: cache)
            generated.append(Sampler.argmax(last.p, V))
        }
        XCTAssertEqual(generated, e.greedy, "f16 cache greedy tokens")
    }

    func testAbsorbedEqualsExpanded() throws {
        let model = try Self.load()
        let e = try Self.expected()
        let V = model.config.vocabSize
        let a = model.makeCache(capacity: 64), b = model.makeCache(capacity: 64)
        model.setLatentAttentionMode(.expanded)
        defer { model.setLatentAttentionMode(.absorbed) }
        let x = try model.forward(e.prompt + e.greedy, cache: b, lastK: 8)
        model.setLatentAttentionMode(.absorbed)
        let y = try model.forward(e.prompt + e.greedy, cache: a, lastK: 8)
        let d = MoETests.maxAbsDiff(x.p, Array(UnsafeBufferPointer(start: y.p, count: 8 * V)))
        XCTAssertLessThanOrEqual(d, 1e-4, "sparse absorbed vs expanded \(d)")
    }

    /// The fixture discriminates: with the indexer's selection switched off (index_topk past the
    /// context, i.e. dense MLA) the logits leave the reference.
    func testSelectionChangesTheResult() throws {
        let files = try ModelFiles.open(.hfFolder(fixturePath("moe/\(Self.name)")))
        var c = try XCTUnwrap(files.config)
        c.dsa?.indexTopK = 1000
        let dense = try DeepSeekV32Decoder.load(config: c, weights: WeightLoader(source: files.weights, naming: files.naming, fileName: "fixture"))
        let e = try Self.expected()
        let V = c.vocabSize
        let logits = try dense.forward(e.prompt, cache: dense.makeCache(capacity: 64), lastK: e.prompt.count)
        var early: Float = 0, late: Float = 0
        for (t, row) in e.logits.enumerated() {
            let d = MoETests.maxAbsDiff(logits.p + t * V, row)
            if t < e.topK { early = max(early, d) } else { late = max(late, d) }
        }
        XCTAssertLessThanOrEqual(early, 1e-4, "positions < index_topk select everything: dense MLA is the same")
        XCTAssertGreaterThan(late, 1e-2, "dense attention must differ from DSA once the selection is strict")
        print("deepseek-v32: dense MLA vs the DSA reference: \(early) before position index_topk, \(late) after")
    }

    /// `tiefsee quantize` on the HF folder writes a deepseek32 GGUF with the indexer's tensors and keys.
    func testQuantizeToDeepSeek32GGUF() throws {
        let dir = NSTemporaryDirectory() + "tiefsee-dsv32-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/m.gguf"
        _ = try quantizeModel(input: fixturePath("moe/\(Self.name)"), output: out, scheme: .q8_0)
        let g = try GGUFFile(path: out)
        XCTAssertEqual(g.architecture, "deepseek32")
        XCTAssertEqual(g["deepseek32.attention.indexer.top_k"]?.int, 6)
        XCTAssertNotNil(g.info("blk.2.indexer.k_norm.bias"))
        XCTAssertNotNil(g.info("blk.0.attn_q_a.bias"))
        let model = try ModelLoader.load(ModelFiles.open(.gguf(out)))
        let e = try Self.expected()
        let V = model.config.vocabSize
        let logits = try model.forward(e.prompt, cache: model.makeCache(capacity: 64), lastK: e.prompt.count)
        let agree = e.logits.indices.filter { t in
            Sampler.argmax(logits.p + t * V, V) == e.logits[t].indices.max { e.logits[t][$0] < e.logits[t][$1] }!
        }.count
        print("deepseek-v32 Q8_0 GGUF: top-1 agreement \(agree)/\(e.logits.count)")
        XCTAssertGreaterThanOrEqual(agree, e.logits.count - 1)
    }

    /// A 200-token prompt in one batch (indexer scores over many rows, MLA in row chunks) against
    /// the same tokens decoded one by one: same selections, same logits.
    func testLongPromptMatchesTokenByToken() throws {
        let model = try Self.load()
        let V = model.config.vocabSize, n = 200
        var rng = SplitMix(seed: 7)
        let tokens = (0..<n).map { _ in Int(rng.next() % UInt64(V)) }
        let blocks = model.sparseAttentionBlocks
        for b in blocks { b.recordSelections = true; b.clearSelections() }
        defer { for b in blocks { b.recordSelections = false } }
        let batched = try model.forward(tokens, cache: model.makeCache(capacity: n), lastK: n)
        let batchedSelections = blocks.map(\.selections)
        for b in blocks { b.clearSelections() }
        let cache = model.makeCache(capacity: n)
        var worst: Float = 0
        for (t, id) in tokens.enumerated() {
            let step = try model.forward([id], cache: cache)
            worst = max(worst, MoETests.maxAbsDiff(step.p, Array(UnsafeBufferPointer(start: batched.p + t * V, count: V))))
        }
        XCTAssertEqual(blocks.map(\.selections), batchedSelections)
        XCTAssertLessThanOrEqual(worst, 1e-4, "\(n)-token prompt vs token by token, max abs diff \(worst)")
        print("deepseek-v32: \(n)-token prompt vs token by token: max abs diff \(worst), selections identical")
    }

    func testInfoReportsKVBytesPerLayerKind() throws {
        let out = try MoECLITests.run(["info", fixturePath("moe/\(Self.name)")])
        XCTAssertTrue(out.contains("MLA latent:"), out)
        XCTAssertTrue(out.contains("80 values (kv_lora_rank 64 + qk_rope_head_dim 16) × 3 layers = 960 B per token"), out)
        XCTAssertTrue(out.contains("indexer keys:"), out)
        XCTAssertTrue(out.contains("32 values (index_head_dim) × 3 layers = 384 B per token"), out)
    }

    func testLogitsRoutingCLI() throws {
        let e = try Self.expected()
        let out = try MoECLITests.run(["logits", fixturePath("moe/\(Self.name)"), "--tokens",
                                         e.prompt.map(String.init).joined(separator: ","), "--routing", "--last", "\(e.prompt.count)"])
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
