import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// The server's RAM prompt cache (`--cache-ram`): states saved from slots, restored by the
/// longest shared prefix, least recently used dropped at the budget.
final class PromptCacheTests: XCTestCase {
    /// A 2-layer cache whose position p holds the values p*10+l (+0.5 for values).
    func filledCache(_ n: Int, capacity: Int = 64, base: Float = 0) -> KVCache {
        let c = KVCache(layers: 2, capacity: capacity, kWidth: 3, vWidth: 2)
        for l in 0..<2 {
            for p in 0..<n {
                for j in 0..<3 { c.keys[l].p[p * 3 + j] = base + Float(p * 10 + l) + Float(j) / 4 }
                for j in 0..<2 { c.values[l].p[p * 2 + j] = base + Float(p * 10 + l) + 0.5 + Float(j) / 4 }
            }
        }
        c.length = n
        return c
    }

    func testRestoreCopiesTheLongestSharedPrefix() {
        let pc = PromptCache(budgetBytes: 1 << 20, minTokens: 4)
        let a = Array(0..<40), b = Array(100..<140)
        XCTAssertTrue(pc.save(tokens: a, from: filledCache(40)))
        XCTAssertTrue(pc.save(tokens: b, from: filledCache(40, base: 1000)))
        XCTAssertFalse(pc.save(tokens: [1, 2], from: filledCache(2)), "shorter than minTokens")
        XCTAssertEqual(pc.count, 2)
        let slot = KVCache(layers: 2, capacity: 64, kWidth: 3, vWidth: 2)
        let prompt = Array(100..<125) + [7, 7, 7, 7]
        let got = pc.restore(prompt: prompt, limit: prompt.count - 2, atLeast: 3, into: slot)
        XCTAssertEqual(got, Array(100..<125))
        XCTAssertEqual(slot.length, 25)
        for l in 0..<2 {
            XCTAssertEqual(slot.keys[l].p[24 * 3 + 2], 1000 + Float(24 * 10 + l) + 0.5)
            XCTAssertEqual(slot.values[l].p[24 * 2 + 1], 1000 + Float(24 * 10 + l) + 0.75)
        }
        // The slot itself already shares more: nothing restored.
        XCTAssertNil(pc.restore(prompt: prompt, limit: prompt.count - 2, atLeast: 30, into: slot))
        // The limit keeps the last prompt tokens to be read again.
        XCTAssertEqual(pc.restore(prompt: a, limit: a.count - 2, atLeast: 0, into: slot)?.count, 38)
    }

    func testBudgetDropsTheLeastRecentlyUsedAndLongerStatesCoverShorter() {
        let perToken = 2 * (3 + 2) * 4
        let pc = PromptCache(budgetBytes: 100 * perToken, minTokens: 4)
        let a = Array(0..<40), b = Array(200..<240), c = Array(300..<340)
        pc.save(tokens: a, from: filledCache(40))
        pc.save(tokens: b, from: filledCache(40))
        XCTAssertEqual(pc.bytes, 80 * perToken)
        // Use a: b becomes the oldest, and c (40 tokens) only fits without it.
        let slot = KVCache(layers: 2, capacity: 64, kWidth: 3, vWidth: 2)
        XCTAssertNotNil(pc.restore(prompt: a + [1, 1], limit: 40, atLeast: 0, into: slot))
        pc.save(tokens: c, from: filledCache(40))
        XCTAssertEqual(pc.count, 2)
        XCTAssertNil(pc.restore(prompt: b + [1, 1], limit: 40, atLeast: 0, into: slot), "b was dropped")
        XCTAssertNotNil(pc.restore(prompt: a + [1, 1], limit: 40, atLeast: 0, into: slot))
        // A state extending a replaces it; a prefix of a saved state adds nothing.
        pc.save(tokens: a + Array(500..<510), from: filledCache(50))
        XCTAssertEqual(pc.count, 2)
        XCTAssertEqual(pc.bytes, 90 * perToken)
        pc.save(tokens: Array(a.prefix(20)), from: filledCache(20))
        XCTAssertEqual(pc.count, 2)
        XCTAssertFalse(pc.save(tokens: Array(0..<120), from: filledCache(120, capacity: 128)), "larger than the whole budget")
    }

    /// parallel 1: request A (long system prompt), then C (another prompt) takes the only
    /// slot, then B with A's system prompt starts from the saved state: /metrics counts the
    /// restored tokens, and B's greedy answer is the one a server without the cache gives.
    func testServerRestoresASystemPromptAfterTheSlotWasReused() throws {
        let engine = try TestServers.requireEngine()
        TestServers.raiseFileLimit()
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.cacheRAMBytes = 64 << 20
        let cached = try OpenAIServer(engine: engine, config: cfg)
        defer { cached.stop() }
        cfg.cacheRAMBytes = 0
        let plain = try OpenAIServer(engine: engine, config: cfg)
        defer { plain.stop() }
        let system = JSONValue.string((1...30).map { "Rule \($0): the office at site \($0) opens at \($0 % 12 + 1) o'clock and closes later." }
            .joined(separator: " ")).serialized()
        func ask(_ port: Int, system sys: String, _ q: String) throws -> String {
            let body = #"{"messages":[{"role":"system","content":\#(sys)},{"role":"user","content":\#(JSONValue.string(q).serialized())}],"temperature":0,"max_tokens":16}"#
            let r = try XCTUnwrap(RawHTTP.post(port: port, "/v1/chat/completions", body))
            XCTAssertEqual(r.status, 200, r.body)
            return try XCTUnwrap(r.json?["choices"]?[0]?["message"]?["content"]?.string, r.body)
        }
        func metric(_ name: String) throws -> Int {
            let m = try XCTUnwrap(RawHTTP.request(port: cached.port, "GET", "/metrics")).body
            let line = try XCTUnwrap(m.split(separator: "\n").first { $0.hasPrefix(name + " ") }, name)
            return Int(line.split(separator: " ")[1])!
        }
        _ = try ask(cached.port, system: system, "When does site 3 open?")
        _ = try ask(cached.port, system: JSONValue.string("You are a poet who writes about the sea and ships.").serialized(), "Write a line.")
        XCTAssertEqual(try metric("tiefsee_prompt_cache_hits_total"), 0)
        XCTAssertGreaterThan(try metric("tiefsee_prompt_cache_entries"), 0)
        let b = try ask(cached.port, system: system, "When does site 7 close?")
        XCTAssertEqual(try metric("tiefsee_prompt_cache_hits_total"), 1)
        let systemTokens = try engine.tokenizer.encode(JSONValue.parse(system).string!).count
        XCTAssertGreaterThan(try metric("tiefsee_prompt_cache_tokens_total"), systemTokens, "the whole system prompt came from RAM")
        XCTAssertEqual(b, try ask(plain.port, system: system, "When does site 7 close?"))
    }
}
