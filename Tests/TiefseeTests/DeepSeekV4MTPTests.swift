import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// DeepSeek-V4's take-back of a step's positions (what rejected drafts need) and its MTP block
/// (scripts/gen_dsv4_mtp_fixture.py: DeepSeek's MTPBlock built from transformers' V4 modules on
/// the tiny fixture, mtp_expected.json its logits).
final class DeepSeekV4MTPTests: XCTestCase {
    static var model: TransformerModel { DeepSeekV4Tests.model }
    static var prompt: [Int] { DeepSeekV4Tests.expected.prompt }

    /// A step of k tokens from position P, taken back to P + j, then one more token: the same
    /// logits, compressed entries and window as a cache that was only ever fed P + j tokens.
    /// The steps cross CSA window closes (every 4), the HCA close at 128 and the ring's wrap.
    func testTakingBackAStepEqualsNeverFeedingIt() throws {
        let model = Self.model, p = Self.prompt, V = model.config.vocabSize
        var checked = 0
        for (P, k) in [(120, 12), (60, 16), (125, 4), (16, 2), (3, 9)] {
            for j in [0, 1, k / 2, k - 1] {
                let a = try XCTUnwrap(model.makeCache(capacity: 256) as? DeepSeekV4Cache)
                _ = try model.forward(Array(p[..<P]), cache: a)
                _ = try model.forward(Array(p[P..<P + k]), cache: a)
                XCTAssertTrue(a.canTruncate(to: P + j))
                XCTAssertFalse(a.canTruncate(to: P - 1), "before the last step")
                a.truncate(to: P + j)
                XCTAssertEqual(a.length, P + j)
                let la = try model.forward([7], cache: a)

                let b = try XCTUnwrap(model.makeCache(capacity: 256) as? DeepSeekV4Cache)
                _ = try model.forward(Array(p[..<P]), cache: b)
                if j > 0 { _ = try model.forward(Array(p[P..<P + j]), cache: b) }
                let lb = try model.forward([7], cache: b)
                let d = DeepSeekV4Tests.maxAbsDiff(la.p, Array(UnsafeBufferPointer(start: lb.p, count: V)))
                XCTAssertLessThanOrEqual(d, 1e-4, "step \(P)+\(k) taken back to \(P + j)")
                for (x, y) in zip(a.layerStates, b.layerStates) {
                    XCTAssertEqual(x.compressor?.entryCount, y.compressor?.entryCount, "step \(P)+\(k) back to \(P + j)")
                    XCTAssertEqual(x.indexer?.entryCount, y.indexer?.entryCount)
                    XCTAssertEqual(x.compressor?.pending, y.compressor?.pending)
                }
                checked += 1
            }
        }
        XCTAssertEqual(checked, 20)
        // Only the last step: after a second step, the first one's positions cannot return.
        let c = model.makeCache(capacity: 256)
        _ = try model.forward(Array(p[..<40]), cache: c)
        _ = try model.forward([5, 6], cache: c)
        _ = try model.forward([7], cache: c)
        XCTAssertTrue(c.canTruncate(to: 42))
        XCTAssertFalse(c.canTruncate(to: 41))
        XCTAssertEqual(c.takeBackLimit, DeepSeekV4Cache.stepTakeBack)
        XCTAssertFalse(c.canRewind, "the prompt cache still treats it as keep-all-or-nothing")
    }

    /// The MTP block's logits match the reference built from transformers' V4 modules, for every
    /// kept row, whether the rows come in one pass or in two.
    func testMTPBlockMatchesReference() throws {
        let model = Self.model
        let mtp = try XCTUnwrap(model.mtp as? DeepSeekV4MTP, model.mtpUnavailable ?? "no MTP block")
        XCTAssertEqual(mtp.layerIndex, 4)
        XCTAssertEqual(mtp.hiddenWidth, 4 * model.config.hiddenSize)
        let j = try JSONValue.parse(contentsOf: fixturePath("dsv4/tiny/mtp_expected.json"))
        let prompt = j["prompt"]!.array!.map { $0.int! }, rows = j["rows"]!.array!.map { $0.int! }
        let want = j["logits"]!.array!.map { $0.array!.map { Float($0.double!) } }
        XCTAssertEqual(prompt, Self.prompt)
        let (_, hidden) = try model.forwardWithHidden(prompt, cache: model.makeCache(capacity: 256), lastK: 1)
        let T = prompt.count - 1, W = mtp.hiddenWidth, V = mtp.head.outFeatures
        let (one, _) = try mtp.forward(tokens: Array(prompt[1...]), hidden: hidden.p, cache: mtp.makeCache(capacity: 256), lastK: T)
        let cache = mtp.makeCache(capacity: 256)
        let (first, _) = try mtp.forward(tokens: Array(prompt[1...70]), hidden: hidden.p, cache: cache, lastK: 70)
        let (rest, _) = try mtp.forward(tokens: Array(prompt[71...]), hidden: hidden.p + 70 * W, cache: cache, lastK: T - 70)
        var worst: Float = 0, split: Float = 0
        for (r, row) in zip(rows, want) {
            worst = max(worst, DeepSeekV4Tests.maxAbsDiff(one.p + r * V, row))
            split = max(split, DeepSeekV4Tests.maxAbsDiff(r < 70 ? first.p + r * V : rest.p + (r - 70) * V, row))
        }
        print("DeepSeek-V4 MTP block: logits max abs diff \(worst) (one pass), \(split) (two passes) over \(rows.count) rows")
        XCTAssertLessThanOrEqual(worst, 1e-4)
        XCTAssertLessThanOrEqual(split, 1e-4)
    }

    /// Greedy text is plain decoding's with the MTP block drafting (alone, chained, or behind
    /// prompt lookup) and with prompt lookup alone, which V4 now takes too: every rejected
    /// draft is taken back from the sliding windows and the compressors.
    func testGreedyTextIsUnchangedByDrafting() throws {
        let engine = try Engine(files: ModelFiles.open(.hfFolder(fixturePath("dsv4/tiny"))))
        let first = try Session(engine: engine, contextSize: 512).generate(prompt: Array(Self.prompt[..<20]), options: DraftModelTests.greedy(24, speculate: false))
        // The model quotes itself past the HCA close at 128, so lookup drafts get accepted there.
        let prompt = Array(Self.prompt[..<100]) + Array(Self.prompt[..<20]) + first.tokens + Array(Self.prompt[..<20])
        let plain = try Session(engine: engine, contextSize: 512).generate(prompt: prompt, options: DraftModelTests.greedy(40, speculate: false))
        let lookup = try Session(engine: engine, contextSize: 512).generate(prompt: prompt, options: DraftModelTests.greedy(40))
        let mtpOnly = try Session(engine: engine, contextSize: 512, mtp: try MTPDraft(model: engine.model, promptLookupFirst: false))
            .generate(prompt: prompt, options: DraftModelTests.greedy(40))
        let chained = try Session(engine: engine, contextSize: 512, mtp: try MTPDraft(model: engine.model, maxDraft: 3, minConfidence: 0, promptLookupFirst: false))
            .generate(prompt: prompt, options: DraftModelTests.greedy(40))
        let both = try Session(engine: engine, contextSize: 512, mtp: try MTPDraft(model: engine.model))
            .generate(prompt: prompt, options: DraftModelTests.greedy(40))
        print("DeepSeek-V4 drafting: lookup \(lookup.acceptedDraftTokens)/\(lookup.draftedTokens), MTP \(mtpOnly.acceptedDraftTokens)/\(mtpOnly.draftedTokens), "
              + "chained MTP \(chained.acceptedDraftTokens)/\(chained.draftedTokens), lookup + MTP \(both.acceptedDraftTokens)/\(both.draftedTokens)")
        XCTAssertEqual(plain.tokens.count, 40)
        for (name, r) in [("lookup", lookup), ("MTP", mtpOnly), ("chained MTP", chained), ("lookup + MTP", both)] {
            XCTAssertEqual(r.tokens, plain.tokens, name)
            XCTAssertGreaterThan(r.draftedTokens, 0, name)
        }
        XCTAssertGreaterThan(lookup.acceptedDraftTokens, 0, "the quoted part is drafted and kept")
        XCTAssertEqual(mtpOnly.draftedTokens, mtpOnly.verifySteps, "one MTP proposal per check")
        XCTAssertLessThan(mtpOnly.acceptedDraftTokens, mtpOnly.draftedTokens, "some proposals were rejected and taken back")
        XCTAssertGreaterThan(chained.draftedTokens, chained.verifySteps, "chained proposals")
    }

    /// The server's scheduler drafts for V4 slots too (prompt lookup and --mtp) and writes plain
    /// greedy decoding's text, also for a second request that continues the slot's conversation.
    func testSchedulerDraftsForDeepSeekV4() throws {
        let engine = try Engine(files: ModelFiles.open(.hfFolder(fixturePath("dsv4/tiny"))))
        for mtp in [false, true] {
            let metrics = ServerMetrics(slots: 1)
            let scheduler = BatchScheduler(engine: engine, parallel: 1, contextSize: 512, maxQueue: 4, metrics: metrics,
                                           mtp: mtp ? try MTPDraft(model: engine.model) : nil)
            defer { scheduler.shutdown() }
            func run(_ prompt: [Int], _ options: GenerationOptions) -> String {
                let job = GenerationJob(prompt: prompt, options: options)
                try! scheduler.submit(job)
                var text = "", done = false
                let deadline = Date().addingTimeInterval(120)
                while !done && Date() < deadline {
                    for ev in job.next(timeout: 1) { switch ev { case .text(let t, _): text += t; case .done: done = true } }
                }
                XCTAssertTrue(done)
                return text
            }
            let prompt = Array(Self.prompt[..<60]) + Array(Self.prompt[..<12])
            let plain = try Session(engine: engine, contextSize: 512).generate(prompt: prompt, options: DraftModelTests.greedy(24, speculate: false))
            XCTAssertEqual(run(prompt, DraftModelTests.greedy(24)), plain.text, mtp ? "with --mtp" : "prompt lookup")
            let again = prompt + plain.tokens + [3, 4]
            let plain2 = try Session(engine: engine, contextSize: 512).generate(prompt: again, options: DraftModelTests.greedy(16, speculate: false))
            XCTAssertEqual(run(again, DraftModelTests.greedy(16)), plain2.text, mtp ? "with --mtp, continued" : "prompt lookup, continued")
            let line = metrics.render().split(separator: "\n").first { $0.hasPrefix("tiefsee_draft_tokens_total ") }
            XCTAssertGreaterThan(Int(line?.split(separator: " ").last ?? "") ?? 0, 0, mtp ? "MTP drafts" : "lookup drafts")
        }
    }
}
