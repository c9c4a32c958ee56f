import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// DeepSeek-V3's multi-token-prediction layer on the tiny random fixture (fixtures/moe/deepseek-v3,
/// layer 3): logits against the PyTorch reference in scripts/gen_moe_fixtures.py (add_mtp), which
/// runs transformers' DeepseekV3DecoderLayer on eh_proj's output, teacher-forced on prompt + greedy.
final class MultiTokenPredictionTests: XCTestCase {
    struct Reference {
        let tokens: [Int]
        let hidden: [[Float]]
        let logits: [[Float]]
        let argmaxHits: Int
    }

    static func reference() throws -> Reference {
        let j = try JSONValue.parse(contentsOf: fixturePath("moe/deepseek-v3/expected_mtp.json"))
        func rows(_ k: String) -> [[Float]] { j[k]!.array!.map { $0.array!.map { Float($0.double!) } } }
        return Reference(tokens: j["tokens"]!.array!.map { $0.int! }, hidden: rows("hidden"), logits: rows("logits"),
                         argmaxHits: j["argmax_hits"]!.int!)
    }

    func testLoadsTheMTPLayer() throws {
        let model = try MoETests.load("deepseek-v3")
        XCTAssertEqual(model.config.numNextnPredictLayers, 1)
        XCTAssertEqual(model.layers.count, 3)
        let mtp = try XCTUnwrap(model.mtp as? MultiTokenPrediction, model.mtpUnavailable ?? "")
        XCTAssertEqual(mtp.layerIndex, 3)
        XCTAssertTrue(mtp.ownHead)
        XCTAssertTrue(mtp.block.feedForward is MoEBlock, "layer 3 is past first_k_dense_replace: MoE")
        // The bf16 twin keeps the old zero placeholders (no attention or experts): it loads without MTP.
        let twin = try MoETests.load("deepseek-v3-bf16")
        XCTAssertNil(twin.mtp)
        XCTAssertNotNil(twin.mtpUnavailable)
    }

    /// The main model's hidden states, then all MTP rows in one batch: the reference's numbers.
    func testMTPLogitsMatchReferenceInOneBatch() throws {
        let model = try MoETests.load("deepseek-v3")
        let mtp = try XCTUnwrap(model.mtp)
        let ref = try Self.reference()
        let T = ref.tokens.count, H = model.config.hiddenSize
        let (_, hidden) = try model.forwardWithHidden(ref.tokens, cache: model.makeCache(capacity: 64), lastK: 1)
        var worstHidden: Float = 0
        for i in 0..<T { worstHidden = max(worstHidden, MoETests.maxAbsDiff(hidden.p + i * H, ref.hidden[i])) }
        XCTAssertLessThan(worstHidden, 1e-4, "main model hidden states")
        let cache = mtp.makeCache(capacity: 64)
        let (logits, _) = try mtp.forward(tokens: Array(ref.tokens[1...]), hidden: hidden.p, cache: cache, lastK: T - 1)
        let V = mtp.head.outFeatures
        var worst: Float = 0, hits = 0
        for i in 0..<T - 1 {
            worst = max(worst, MoETests.maxAbsDiff(logits.p + i * V, ref.logits[i]))
            if i + 2 < T && Sampler.argmax(logits.p + i * V, V) == ref.tokens[i + 2] { hits += 1 }
        }
        print("MTP logits vs reference, \(T - 1) rows at once: max abs diff \(worst), hidden \(worstHidden)")
        XCTAssertLessThan(worst, 1e-4, "MTP logits, \(T - 1) rows at once")
        XCTAssertEqual(hits, ref.argmaxHits)
        XCTAssertEqual(cache.length, T - 1)
    }

    /// Prefill of the prompt, then one token at a time (as drafting runs it): the same numbers.
    func testMTPLogitsMatchReferenceStepByStep() throws {
        let model = try MoETests.load("deepseek-v3")
        let mtp = try XCTUnwrap(model.mtp)
        let ref = try Self.reference()
        let T = ref.tokens.count, H = model.config.hiddenSize, V = mtp.head.outFeatures
        let main = model.makeCache(capacity: 64), cache = mtp.makeCache(capacity: 64)
        let P = 12
        let (_, h0) = try model.forwardWithHidden(Array(ref.tokens[..<P]), cache: main, lastK: 1)
        var hidden = Array(UnsafeBufferPointer(start: h0.p, count: P * H))
        // Rows 0..P-2 in one MTP batch (the prompt), then each new row as its token arrives.
        let (first, _) = try mtp.forward(tokens: Array(ref.tokens[1..<P]), hidden: h0.p, cache: cache, lastK: P - 1)
        var worst: Float = 0
        for i in 0..<P - 1 { worst = max(worst, MoETests.maxAbsDiff(first.p + i * V, ref.logits[i])) }
        for i in P - 1..<T - 1 {
            let (_, h) = try model.forwardWithHidden([ref.tokens[i + 1]], cache: main, lastK: 1)
            hidden += Array(UnsafeBufferPointer(start: h.p, count: H))
            let (l, _) = try hidden.withUnsafeBufferPointer { b in
                try mtp.forward(tokens: [ref.tokens[i + 1]], hidden: b.baseAddress! + i * H, cache: cache)
            }
            worst = max(worst, MoETests.maxAbsDiff(l.p, ref.logits[i]))
        }
        print("MTP logits vs reference, prompt batch then single steps: max abs diff \(worst)")
        XCTAssertLessThan(worst, 1e-4, "MTP logits, prompt batch then single steps")
    }

    /// `--mtp`: greedy tokens are plain decoding's, and the proposals are exactly the reference
    /// MTP's argmax along the way (a replay of Session's verification loop on the reference rows
    /// says how many are proposed and accepted).
    func testGreedyTokensSameWithMTPDrafts() throws {
        let engine = try Engine.load(fixturePath("moe/deepseek-v3"))
        let ref = try Self.reference()
        let prompt = Array(ref.tokens[..<12]), n = ref.tokens.count - prompt.count
        let plain = try Session(engine: engine, contextSize: 128).generate(prompt: prompt, options: DraftModelTests.greedy(n, speculate: false))
        XCTAssertEqual(plain.tokens, Array(ref.tokens[12...]))
        let draft = try MTPDraft(model: engine.model, promptLookupFirst: false)
        let session = Session(engine: engine, contextSize: 128, mtp: draft)
        let spec = try session.generate(prompt: prompt, options: DraftModelTests.greedy(n))
        XCTAssertEqual(spec.tokens, plain.tokens)

        // The replay: row r of the reference predicts tokens[r + 2].
        let V = engine.model.outputHead.outFeatures
        let argmax = ref.logits.map { row in row.withUnsafeBufferPointer { Sampler.argmax($0.baseAddress!, V) } }
        var taken = 0, len = prompt.count, known = false, drafted = 0, accepted = 0
        replay: while taken < n {
            if known { known = false } else { taken += 1; len += 1; if taken >= n { break } }
            drafted += 1
            let agrees = argmax[len - 2] == ref.tokens[len]
            if agrees { accepted += 1 }
            taken += 1; len += 1
            if taken >= n { break replay }
            known = !agrees
        }
        print("MTP drafts on the fixture: \(spec.acceptedDraftTokens) of \(spec.draftedTokens) accepted in \(spec.verifySteps) checks (random weights)")
        XCTAssertEqual(spec.draftedTokens, drafted)
        XCTAssertEqual(spec.acceptedDraftTokens, accepted)
        XCTAssertGreaterThan(accepted, 0)
        XCTAssertLessThan(accepted, drafted, "the fixture's MTP is right only some of the time")

        // A second turn that keeps the first (the MTP rows carry over) and one that rewrites
        // part of it (rows whose hidden states were consumed: the model recomputes from there).
        let turn2 = prompt + spec.tokens + [5, 9, 17]
        let plain2 = try Session(engine: engine, contextSize: 128).generate(prompt: turn2, options: DraftModelTests.greedy(12, speculate: false))
        XCTAssertEqual(try session.generate(prompt: turn2, options: DraftModelTests.greedy(12)).tokens, plain2.tokens)
        let turn3 = Array(prompt[..<8]) + [33, 44]
        let plain3 = try Session(engine: engine, contextSize: 128).generate(prompt: turn3, options: DraftModelTests.greedy(12, speculate: false))
        let spec3 = try session.generate(prompt: turn3, options: DraftModelTests.greedy(12))
        XCTAssertEqual(spec3.tokens, plain3.tokens)
        XCTAssertGreaterThan(spec3.draftedTokens, 0)
    }

    /// Chained proposals (the block on its own output) change only how many tokens each check
    /// takes: the text stays plain greedy decoding's.
    func testChainedMTPDraftsKeepGreedyTokens() throws {
        let engine = try Engine.load(fixturePath("moe/deepseek-v3"))
        let prompt = [1, 17, 42, 99, 3, 120, 127, 7]
        let plain = try Session(engine: engine, contextSize: 128).generate(prompt: prompt, options: DraftModelTests.greedy(30, speculate: false))
        let draft = try MTPDraft(model: engine.model, maxDraft: 4, minConfidence: 0, promptLookupFirst: false)
        let spec = try Session(engine: engine, contextSize: 128, mtp: draft).generate(prompt: prompt, options: DraftModelTests.greedy(30))
        XCTAssertEqual(spec.tokens, plain.tokens)
        XCTAssertGreaterThan(spec.draftedTokens, spec.verifySteps, "several tokens per check")
    }

    func testMTPNeedsTheLayer() throws {
        XCTAssertThrowsError(try MTPDraft(model: try MoETests.load("deepseek-v3-bf16")))
        XCTAssertThrowsError(try MTPDraft(model: try MoETests.load("mixtral")))
    }

    /// MTP logits of every reference row in one batch, from the model's own hidden states.
    static func batchedLogits(_ model: TransformerModel, _ tokens: [Int]) throws -> [[Float]] {
        let mtp = try XCTUnwrap(model.mtp, model.mtpUnavailable ?? "no MTP layer")
        let (_, hidden) = try model.forwardWithHidden(tokens, cache: model.makeCache(capacity: 64), lastK: 1)
        let (logits, _) = try mtp.forward(tokens: Array(tokens[1...]), hidden: hidden.p, cache: mtp.makeCache(capacity: 64),
                                          lastK: tokens.count - 1)
        let V = mtp.head.outFeatures
        return (0..<tokens.count - 1).map { Array(UnsafeBufferPointer(start: logits.p + $0 * V, count: V)) }
    }

    /// GGUF as llama.cpp's converters write MTP layers: blk.3 with the block's usual tensors and
    /// nextn.{enorm,hnorm,eh_proj,embed_tokens,shared_head_norm,shared_head_head}, block_count 4,
    /// deepseek2.nextn_predict_layers 1 (scripts/gen_moe_gguf.py).
    func testGGUFNextNLayer() throws {
        let ref = try Self.reference()
        let f32 = try MoETests.load("deepseek-v3", file: "model-mtp-f32.gguf")
        XCTAssertEqual(f32.config.numLayers, 3)
        XCTAssertEqual(f32.config.numNextnPredictLayers, 1)
        XCTAssertEqual(f32.layers.count, 3)
        XCTAssertEqual((f32.mtp as? MultiTokenPrediction)?.ownHead, true)
        var worst: Float = 0
        for (got, want) in zip(try Self.batchedLogits(f32, ref.tokens), ref.logits) {
            worst = max(worst, zip(got, want).map { abs($0 - $1) }.max()!)
        }
        print("MTP logits from model-mtp-f32.gguf vs reference: max abs diff \(worst)")
        XCTAssertLessThan(worst, 1e-4)
        // Q8_0 (eh_proj, the block and shared_head_head quantized): the same predictions.
        let q8 = try MoETests.load("deepseek-v3", file: "model-mtp-q8_0.gguf")
        let V = ref.logits[0].count
        func top(_ r: [Float]) -> Int { r.withUnsafeBufferPointer { Sampler.argmax($0.baseAddress!, V) } }
        let q8Logits = try Self.batchedLogits(q8, ref.tokens)
        let agree = zip(q8Logits, ref.logits).filter { top($0) == top($1) }.count
        print("MTP top-1 from model-mtp-q8_0.gguf: \(agree) of \(ref.logits.count) rows agree with the f32 reference")
        XCTAssertGreaterThanOrEqual(agree, ref.logits.count - 2)
        // The plain GGUF (no MTP blocks, no nextn_predict_layers): no MTP, nothing missing.
        let plain = try MoETests.load("deepseek-v3", file: "model-f32.gguf")
        XCTAssertNil(plain.mtp)
        XCTAssertNil(plain.mtpUnavailable)
        XCTAssertEqual(plain.config.numNextnPredictLayers, 0)
    }

    /// The server's scheduler with --mtp: each slot drafts with the MTP layer, the text is plain
    /// greedy decoding's (also for a second request reusing the slot's prefix), and the proposals
    /// show in /metrics' draft counters.
    func testSchedulerWithMTPWritesTheSameText() throws {
        let engine = try Engine.load(fixturePath("moe/deepseek-v3"))
        let metrics = ServerMetrics(slots: 1)
        let scheduler = BatchScheduler(engine: engine, parallel: 1, contextSize: 256, maxQueue: 4, metrics: metrics,
                                       mtp: try MTPDraft(model: engine.model))   // prompt lookup in front
        defer { scheduler.shutdown() }
        func run(_ prompt: [Int], _ options: GenerationOptions) throws -> String {
            let job = GenerationJob(prompt: prompt, options: options)
            try scheduler.submit(job)
            var text = "", done = false
            let deadline = Date().addingTimeInterval(120)
            while !done && Date() < deadline {
                for ev in job.next(timeout: 1) {
                    switch ev { case .text(let t, _): text += t; case .done: done = true }
                }
            }
            XCTAssertTrue(done)
            return text
        }
        let prompt = [11, 40, 23, 9, 100, 77, 5]
        let plain = try Session(engine: engine, contextSize: 256).generate(prompt: prompt, options: DraftModelTests.greedy(32, speculate: false))
        XCTAssertEqual(try run(prompt, DraftModelTests.greedy(32)), plain.text)
        let again = prompt + plain.tokens + [3, 4]
        let plain2 = try Session(engine: engine, contextSize: 256).generate(prompt: again, options: DraftModelTests.greedy(16, speculate: false))
        XCTAssertEqual(try run(again, DraftModelTests.greedy(16)), plain2.text)
        let m = metrics.render()
        func counter(_ name: String) throws -> Int {
            let line = try XCTUnwrap(m.split(separator: "\n").first { $0.hasPrefix(name + " ") })
            return Int(line.split(separator: " ")[1])!
        }
        XCTAssertGreaterThan(try counter("tiefsee_draft_tokens_total"), 0)
        XCTAssertGreaterThan(try counter("tiefsee_draft_tokens_accepted_total"), 0)
    }

    /// With prompt lookup in front (the CLI's and server's default), a prompt that repeats
    /// itself drafts several tokens per check from the context; the MTP layer, which still
    /// sees every position's hidden state, takes over where the context has no match.
    func testPromptLookupInFrontOfMTP() throws {
        let engine = try Engine.load(fixturePath("moe/deepseek-v3"))
        let first = try Session(engine: engine, contextSize: 256).generate(prompt: [1, 17, 42], options: DraftModelTests.greedy(24, speculate: false))
        let prompt = [1, 17, 42] + first.tokens + [1, 17, 42]   // the model will quote itself
        let plain = try Session(engine: engine, contextSize: 256).generate(prompt: prompt, options: DraftModelTests.greedy(40, speculate: false))
        let both = try Session(engine: engine, contextSize: 256, mtp: try MTPDraft(model: engine.model))
            .generate(prompt: prompt, options: DraftModelTests.greedy(40))
        let mtpOnly = try Session(engine: engine, contextSize: 256, mtp: try MTPDraft(model: engine.model, promptLookupFirst: false))
            .generate(prompt: prompt, options: DraftModelTests.greedy(40))
        XCTAssertEqual(both.tokens, plain.tokens)
        XCTAssertEqual(mtpOnly.tokens, plain.tokens)
        print("lookup + MTP: \(both.acceptedDraftTokens)/\(both.draftedTokens) in \(both.verifySteps) checks; MTP alone \(mtpOnly.acceptedDraftTokens)/\(mtpOnly.draftedTokens) in \(mtpOnly.verifySteps)")
        XCTAssertGreaterThan(both.draftedTokens, both.verifySteps, "lookup drafts several tokens per check")
        XCTAssertEqual(mtpOnly.draftedTokens, mtpOnly.verifySteps, "the MTP layer one")
    }

    /// A sampled turn between greedy ones: it keeps no hidden states (they would wait unconsumed),
    /// and the next greedy turn recomputes what its MTP rows need: still plain greedy's tokens.
    func testSampledTurnBetweenDraftedTurns() throws {
        let engine = try Engine.load(fixturePath("moe/deepseek-v3"))
        let draft = try MTPDraft(model: engine.model, promptLookupFirst: false)
        let session = Session(engine: engine, contextSize: 256, mtp: draft)
        let prompt = [1, 17, 42, 99, 3]
        let t1 = try session.generate(prompt: prompt, options: DraftModelTests.greedy(12))
        var sampled = DraftModelTests.greedy(12)
        sampled.sampling.temperature = 0.9
        sampled.sampling.seed = 7
        let p2 = prompt + t1.tokens + [5]
        let t2 = try session.generate(prompt: p2, options: sampled)
        XCTAssertEqual(t2.draftedTokens, 0)
        XCTAssertEqual(engine.model.mtp.map { _ in session.cache.hiddenTap?.count }, 0, "a sampled turn keeps no hidden states")
        let p3 = p2 + t2.tokens + [9, 17]
        let plain = try Session(engine: engine, contextSize: 256).generate(prompt: p3, options: DraftModelTests.greedy(16, speculate: false))
        let t3 = try session.generate(prompt: p3, options: DraftModelTests.greedy(16))
        XCTAssertEqual(t3.tokens, plain.tokens)
        XCTAssertGreaterThan(t3.draftedTokens, 0)
        XCTAssertGreaterThan(t3.promptTokensEvaluated, p3.count - p2.count - t2.tokens.count, "recomputed from the end of the MTP rows")
    }

    /// `tiefsee quantize` of the HF folder keeps the MTP layer (blk.3 + nextn.*, block_count 4,
    /// nextn_predict_layers 1), and the bf16 twin's placeholder layer is left out.
    func testQuantizeKeepsTheMTPLayer() throws {
        let ref = try Self.reference()
        let out = NSTemporaryDirectory() + "tiefsee-mtp-q8-\(getpid()).gguf"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let plan = try quantizeModel(input: fixturePath("moe/deepseek-v3"), output: out, scheme: .q8_0)
        XCTAssertEqual(plan.unused, [], "every source tensor converted")
        let model = try ModelLoader.load(ModelFiles.open(.gguf(out)))
        XCTAssertEqual(model.config.numLayers, 3)
        XCTAssertEqual(model.mtp?.layerIndex, 3)
        let V = ref.logits[0].count
        func top(_ r: [Float]) -> Int { r.withUnsafeBufferPointer { Sampler.argmax($0.baseAddress!, V) } }
        let agree = zip(try Self.batchedLogits(model, ref.tokens), ref.logits).filter { top($0) == top($1) }.count
        XCTAssertGreaterThanOrEqual(agree, ref.logits.count - 2)
        let twin = NSTemporaryDirectory() + "tiefsee-mtp-twin-\(getpid()).gguf"
        defer { try? FileManager.default.removeItem(atPath: twin) }
        let p2 = try quantizeModel(input: fixturePath("moe/deepseek-v3-bf16"), output: twin, scheme: .q8_0)
        XCTAssertTrue(p2.unused.contains("model.layers.3.eh_proj.weight"))
        XCTAssertNil(try ModelLoader.load(ModelFiles.open(.gguf(twin))).mtp)
    }
}
