import Foundation
import XCTest
@testable import Tiefsee

/// Prompt-lookup speculation: the drafts, and the default model writing the same greedy text
/// with and without it on prompts that quote their context (a passage, code to edit).
final class PromptLookupTests: XCTestCase {
    func testDraftsFollowTheMostRecentLongestMatch() {
        var p = PromptLookup()
        //               0  1  2  3  4  5  6  7  8  9 10 11
        let history = [5, 6, 7, 8, 9, 1, 6, 7, 8, 2, 6, 7]
        // Suffix [6, 7] (no earlier [8, 2, 6, 7]-style longer match): most recent earlier at 6 → 8, 2, 6, 7
        XCTAssertEqual(p.draft(history, limit: 3), [8, 2, 6])
        XCTAssertEqual(p.draft([1, 2, 3, 9, 9, 2, 3], limit: 10), [9, 9, 2, 3])
        XCTAssertEqual(p.draft([1, 2, 3, 4], limit: 5), [], "no repeated suffix")
        XCTAssertEqual(p.draft([4, 4], limit: 5), [], "a match needs at least minNgram tokens before the end")
        p.record(drafted: 4, accepted: 0)
        XCTAssertEqual(p.draft([1, 2, 3, 9, 9, 2, 3], limit: 10), [], "backs off after a miss")
        XCTAssertEqual(p.draft([1, 2, 3, 9, 9, 2, 3], limit: 10), [9, 9, 2, 3])
        XCTAssertEqual(p.acceptanceRate, 0)
    }

    func testGreedyTextIsTheSameWithAndWithoutLookup() throws {
        let engine = try Engine.load(try requireDefaultModel())
        let passage = "The warehouse in Hamburg ships orders placed before 14:00 on the same day. Orders placed later ship the next working day. Returns are accepted within 30 days if the item is unused and in its original packaging."
        let code = "def total(items):\n    result = 0\n    for item in items:\n        result = result + item.price * item.quantity\n    return result\n"
        let asks = [
            "Context:\n\(passage)\n\nQuestion: Quote the sentence about returns exactly.",
            "Rename the variable `result` to `acc` in this function and show the whole function:\n\n\(code)",
        ]
        var drafted = 0, accepted = 0
        for q in asks {
            let prompt = engine.encodePrompt(try engine.renderChat([.object([("role", .string("user")), ("content", .string(q))])]))
            var options = GenerationOptions()
            options.sampling = .greedy
            options.maxTokens = 64
            options.promptLookup = false
            let plain = try Session(engine: engine, contextSize: 1024).generate(prompt: prompt, options: options)
            options.promptLookup = true
            let fast = try Session(engine: engine, contextSize: 1024).generate(prompt: prompt, options: options)
            XCTAssertEqual(fast.tokens, plain.tokens, "\(q.prefix(40))…:\n\(plain.text)\n---\n\(fast.text)")
            XCTAssertEqual(fast.finishReason, plain.finishReason)
            drafted += fast.draftedTokens; accepted += fast.acceptedDraftTokens
            print("lookup: \(fast.acceptedDraftTokens)/\(fast.draftedTokens) drafted tokens accepted in \(fast.verifySteps) checks; \(fast.tokens.count) tokens")
        }
        XCTAssertGreaterThan(accepted, 20, "quoting prompts should accept drafts")
        XCTAssertLessThanOrEqual(accepted, drafted)
    }
}

/// The server drafts for greedy requests: the same text as with `prompt_lookup: false`, and
/// the accepted drafts show in /metrics.
final class ServerPromptLookupTests: XCTestCase {
    func testServerTextSameWithAndWithoutLookup() throws {
        let s = try TestServers.requireShared()
        func accepted() throws -> Int {
            let m = try XCTUnwrap(RawHTTP.request(port: s.port, "GET", "/metrics")).body
            let line = try XCTUnwrap(m.split(separator: "\n").first { $0.hasPrefix("tiefsee_draft_tokens_accepted_total ") })
            return Int(line.split(separator: " ")[1])!
        }
        let q = JSONValue.string("Repeat this list exactly: alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu").serialized()
        func ask(_ lookup: Bool) throws -> String {
            let r = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/chat/completions",
                                               #"{"messages":[{"role":"user","content":\#(q)}],"temperature":0,"max_tokens":40,"prompt_lookup":\#(lookup)}"#))
            return try XCTUnwrap(r.json?["choices"]?[0]?["message"]?["content"]?.string, r.body)
        }
        let before = try accepted()
        let plain = try ask(false)
        XCTAssertEqual(try accepted(), before)
        let fast = try ask(true)
        XCTAssertEqual(fast, plain)
        XCTAssertGreaterThan(try accepted(), before + 5, "the repeated list should be drafted")
    }
}
