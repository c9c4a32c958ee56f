import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// `--draft MODEL`: a draft model proposes, the target checks in one batched step; the greedy
/// text is the target's own, in the CLI session and in the server's scheduler.
final class DraftModelTests: XCTestCase {
    /// The tiny random DeepSeek-V3 fixture (MLA, MoE) is the target; its bf16 twin (the same
    /// weights rounded to bf16) the draft, with the target's tokenizer: logits close enough
    /// that most proposals are right, and some are not.
    static func fixtureEngines() throws -> (target: Engine, draft: Engine) {
        let draftDir = try folder(weights: "moe/deepseek-v3-bf16", tokenizer: "moe/deepseek-v3")
        return (try Engine.load(fixturePath("moe/deepseek-v3")), try Engine.load(draftDir))
    }

    /// A temporary model folder: config and weights from one fixture, tokenizer files from another.
    static func folder(weights: String, tokenizer: String) throws -> String {
        let dir = NSTemporaryDirectory() + "tiefsee-draft-\(weights.replacingOccurrences(of: "/", with: "-"))-\(tokenizer.replacingOccurrences(of: "/", with: "-"))-\(getpid())"
        let fm = FileManager.default
        try? fm.removeItem(atPath: dir)
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] { try fm.createSymbolicLink(atPath: dir + "/" + f, withDestinationPath: fixturePath(weights + "/" + f)) }
        for f in try fm.contentsOfDirectory(atPath: fixturePath(tokenizer)) where f.hasPrefix("tokenizer") {
            try fm.createSymbolicLink(atPath: dir + "/" + f, withDestinationPath: fixturePath(tokenizer + "/" + f))
        }
        return dir
    }

    static func greedy(_ n: Int, speculate: Bool = true) -> GenerationOptions {
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = n
        o.ignoreEOS = true
        o.promptLookup = speculate
        return o
    }

    func testGreedyTokensSameWithAndWithoutDraftOnFixtures() throws {
        let (target, twin) = try Self.fixtureEngines()
        // An unrelated random model with the same tokenizer: most of its proposals are wrong,
        // which exercises the rejection path (cache cut back, the target's token taken).
        let stranger = try Engine.load(try Self.folder(weights: "moe/mixtral", tokenizer: "moe/deepseek-v3"))
        let vocab = target.tokenizer.vocabSize
        var rates: [Double] = []
        for draftEngine in [twin, stranger] {
            let draft = try DraftModel(engine: draftEngine, target: target, maxDraft: 6, minConfidence: 0, promptLookupFirst: false)
            var drafted = 0, accepted = 0
            for seed in 1...3 {
                var rng = SplitMix(seed: UInt64(seed))
                let prompt = (0..<12).map { _ in Int.random(in: 3..<vocab, using: &rng) }
                let plain = try Session(engine: target, contextSize: 256).generate(prompt: prompt, options: Self.greedy(48, speculate: false))
                let fast = try Session(engine: target, contextSize: 256, draft: draft).generate(prompt: prompt, options: Self.greedy(48))
                XCTAssertEqual(plain.tokens.count, 48)
                XCTAssertEqual(fast.tokens, plain.tokens, "seed \(seed)")
                XCTAssertEqual(plain.draftedTokens, 0)
                XCTAssertGreaterThan(fast.verifySteps, 0)
                drafted += fast.draftedTokens; accepted += fast.acceptedDraftTokens
            }
            print("draft fixture \(draftEngine.config.family.rawValue): \(accepted)/\(drafted) proposed tokens accepted")
            rates.append(Double(accepted) / Double(max(drafted, 1)))
        }
        XCTAssertGreaterThan(rates[0], 0.8, "a bf16 twin should mostly agree with its f32 target")
        XCTAssertLessThan(rates[1], 0.5, "an unrelated model's proposals are mostly rejected")
    }

    /// A session keeps the draft cache across turns: the second turn's text is still the
    /// target's greedy text when the prompt extends the first turn.
    func testDraftSessionAcrossTurnsMatchesFreshGreedy() throws {
        let (target, draftEngine) = try Self.fixtureEngines()
        let draft = try DraftModel(engine: draftEngine, target: target, maxDraft: 4)
        let session = Session(engine: target, contextSize: 256, draft: draft)
        let first = try session.generate(prompt: [5, 17, 99, 3, 120, 8], options: Self.greedy(20))
        let follow = [5, 17, 99, 3, 120, 8] + first.tokens + [42, 7, 60]
        let second = try session.generate(prompt: follow, options: Self.greedy(24))
        let plain = try Session(engine: target, contextSize: 256).generate(prompt: follow, options: Self.greedy(24, speculate: false))
        XCTAssertEqual(second.tokens, plain.tokens)
        XCTAssertGreaterThan(second.acceptedDraftTokens, 0)
    }

    /// With a draft model, a prompt-lookup match is still proposed first; the draft model
    /// writes the proposal only when the context holds no match.
    func testPromptLookupIsTriedBeforeTheDraftModel() throws {
        let (target, twin) = try Self.fixtureEngines()
        let draft = try DraftModel(engine: twin, target: target, maxDraft: 3, minConfidence: 0)
        var both = draft.drafter(draft.makeState(contextSize: 64))
        XCTAssertTrue(both is LookupThenModel)
        XCTAssertEqual(try both.draft([5, 6, 7, 8, 9, 10, 6, 7], limit: 3), [8, 9, 10], "the earlier [6, 7] is followed by 8, 9, 10")
        let noRepeat = [5, 6, 7, 8, 9, 10, 11, 12]
        var modelOnly = ModelDrafter(model: draft, state: draft.makeState(contextSize: 64))
        let expected = try modelOnly.draft(noRepeat, limit: 3)
        XCTAssertEqual(expected.count, 3)
        XCTAssertEqual(try both.draft(noRepeat, limit: 3), expected)
    }

    func testVocabularyMismatchIsRejected() throws {
        let target = try Engine.load(fixturePath("moe/deepseek-v3"))
        let other = try Engine.load(try Self.folder(weights: "moe/deepseek-v3-bf16", tokenizer: "tokenizer/llama3-style"))
        XCTAssertThrowsError(try DraftModel(engine: other, target: target)) { e in
            XCTAssertTrue(e is DraftVocabularyMismatch, "\(e)")
            XCTAssertTrue("\(e)".contains("vocabulary differs"), "\(e)")
        }
        XCTAssertThrowsError(try DraftModel.checkVocabulary(draft: ["a", "b", "c"], target: ["a", "x", "c"])) { e in
            XCTAssertTrue("\(e)".contains("token 1 is 'b' in the draft, 'x' in the target"), "\(e)")
        }
        XCTAssertNoThrow(try DraftModel(engine: target, target: target))
    }

    /// The scheduler drafts greedy requests with its draft model: the same text as without
    /// speculation, and the proposals show in /metrics' counters.
    func testSchedulerWithDraftModelWritesTheSameText() throws {
        let (target, draftEngine) = try Self.fixtureEngines()
        let draft = try DraftModel(engine: draftEngine, target: target)
        let metrics = ServerMetrics(slots: 2)
        let scheduler = BatchScheduler(engine: target, parallel: 2, contextSize: 256, maxQueue: 4, metrics: metrics, draft: draft)
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
        let plain = try Session(engine: target, contextSize: 256).generate(prompt: prompt, options: Self.greedy(32, speculate: false))
        XCTAssertEqual(try run(prompt, Self.greedy(32)), plain.text)
        let m = metrics.render()
        let line = try XCTUnwrap(m.split(separator: "\n").first { $0.hasPrefix("tiefsee_draft_tokens_accepted_total ") })
        XCTAssertGreaterThan(Int(line.split(separator: " ")[1])!, 0)
    }

    /// The default model drafting for itself (the pairing the figures use is Q8_0 target,
    /// Q4_K_M draft; this checks the mechanism on real text): the same greedy tokens, and a
    /// draft this close to the target has nearly every proposal accepted.
    func testDefaultModelSameTextWithDraft() throws {
        let engine = try Engine.load(try requireDefaultModel())
        let draft = try DraftModel(engine: try Engine.load(try requireDefaultModel()), target: engine)
        let q = "Write a Python function that returns the n-th Fibonacci number, with a docstring."
        let prompt = engine.encodePrompt(try engine.renderChat([.object([("role", .string("user")), ("content", .string(q))])]))
        var o = Self.greedy(48, speculate: false)
        o.ignoreEOS = false
        let plain = try Session(engine: engine, contextSize: 1024).generate(prompt: prompt, options: o)
        o.promptLookup = true
        let fast = try Session(engine: engine, contextSize: 1024, draft: draft).generate(prompt: prompt, options: o)
        XCTAssertEqual(fast.tokens, plain.tokens, "\(plain.text)\n---\n\(fast.text)")
        print("draft (self): \(fast.acceptedDraftTokens)/\(fast.draftedTokens) accepted in \(fast.verifySteps) checks")
        XCTAssertGreaterThan(Double(fast.acceptedDraftTokens), 0.8 * Double(fast.draftedTokens))
    }
}
