import XCTest
@testable import Tiefsee

/// Tiny random models from transformers (scripts/gen_model_fixtures.py): logits and greedy
/// tokens must match the reference, through one batched prefill and through the KV cache.
final class DenseModelTests: XCTestCase {
    struct Expected {
        let prompt: [Int]
        let logits: [[Float]]
        let greedy: [Int]
        let fullLogitsLast: [Float]
    }

    func expected(_ name: String) throws -> Expected {
        let j = try JSONValue.parse(contentsOf: fixturePath("models/\(name)/expected.json"))
        func floats(_ v: JSONValue?) -> [Float] { (v?.array ?? []).map { Float($0.double ?? .nan) } }
        return Expected(prompt: j["prompt"]!.array!.map { $0.int! },
                        logits: j["logits"]!.array!.map(floats),
                        greedy: j["greedy"]!.array!.map { $0.int! },
                        fullLogitsLast: floats(j["full_logits_last"]))
    }

    func load(_ name: String) throws -> TransformerModel {
        try ModelLoader.load(ModelFiles.open(.hfFolder(fixturePath("models/" + name))))
    }

    func check(_ name: String, tolerance: Float = 1e-4) throws {
        let model = try load(name)
        let e = try expected(name)
        let V = model.config.vocabSize
        // 1. Prompt in one batched pass: every position's logits.
        let cache = model.makeCache(capacity: 64)
        let logits = try model.forward(e.prompt, cache: cache, lastK: e.prompt.count)
        var worst: Float = 0
        for (t, row) in e.logits.enumerated() { worst = max(worst, maxAbsDiff(logits.p + t * V, row)) }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(name): prompt logits max abs diff \(worst)")
        // 2. Greedy decode through the KV cache.
        var next = Sampler.argmax(logits.p + (e.prompt.count - 1) * V, V)
        var generated = [next]
        var lastLogits = logits
        while generated.count < e.greedy.count {
            lastLogits = try model.forward([next], cache: cache)
            next = Sampler.argmax(lastLogits.p, V)
            generated.append(next)
        }
        XCTAssertEqual(generated, e.greedy, "\(name): greedy tokens")
        // 3. Without the cache: the whole sequence in one pass gives the same last logits.
        let fresh = model.makeCache(capacity: 64)
        let seq = e.prompt + e.greedy.dropLast()
        let full = try model.forward(seq, cache: fresh)
        let d1 = maxAbsDiff(full.p, e.fullLogitsLast)
        let d2 = maxAbsDiff(lastLogits.p, e.fullLogitsLast)
        XCTAssertLessThanOrEqual(d1, tolerance, "\(name): one-pass logits diff \(d1)")
        XCTAssertLessThanOrEqual(d2, tolerance, "\(name): cached decode logits diff \(d2)")
        print("\(name): prompt logits max abs diff \(worst), one-pass \(d1), cached \(d2)")
    }

    func testLlamaGQAWithLlama3Rope() throws { try check("llama-gqa-llama3rope") }
    func testQwen2BiasTiedEmbeddings() throws { try check("qwen2-bias-tied") }
    func testQwen3QKNorm() throws { try check("qwen3-qknorm") }
    func testMistral() throws { try check("mistral") }
    func testQwen2BF16() throws { try check("qwen2-bf16") }

    /// The same models written as GGUF by llama.cpp's conventions (scripts/gen_dense_gguf.py):
    /// F32 must match the transformers reference like the safetensors twin; Q8_0 must keep
    /// the top-1 token on (nearly) every position.
    func checkGGUF(_ name: String) throws {
        let e = try expected(name)
        let f32 = try ModelLoader.load(ModelFiles.open(.gguf(fixturePath("gguf/\(name)-f32.gguf"))))
        let V = f32.config.vocabSize
        let a = try f32.forward(e.prompt, cache: f32.makeCache(capacity: 32), lastK: e.prompt.count)
        var worst: Float = 0
        for (t, row) in e.logits.enumerated() { worst = max(worst, maxAbsDiff(a.p + t * V, row)) }
        XCTAssertLessThanOrEqual(worst, 1e-4, "\(name) GGUF F32 max abs diff \(worst)")
        let q8 = try ModelLoader.load(ModelFiles.open(.gguf(fixturePath("gguf/\(name)-q8_0.gguf"))))
        XCTAssertEqual(q8.layers.count, f32.layers.count)
        let b = try q8.forward(e.prompt, cache: q8.makeCache(capacity: 32), lastK: e.prompt.count)
        // Random tiny models have near-ties; 8-bit weights may flip those, not clear winners.
        var agree = 0, clear = 0, q8worst: Float = 0
        for (t, row) in e.logits.enumerated() {
            q8worst = max(q8worst, maxAbsDiff(b.p + t * V, row))
            let sorted = row.sorted(by: >)
            let same = Sampler.argmax(b.p + t * V, V) == row.indices.max(by: { row[$0] < row[$1] })
            if same { agree += 1 }
            if sorted[0] - sorted[1] > 0.1 { clear += 1; XCTAssertTrue(same, "\(name) Q8_0 position \(t): clear top-1 changed") }
        }
        print("\(name) GGUF: F32 max abs diff \(worst); Q8_0 top-1 agreement \(agree)/\(e.logits.count) (all \(clear) clear positions), max abs diff \(q8worst)")
        let range = e.logits.map { ($0.max()! - $0.min()!) }.min()!
        XCTAssertLessThan(q8worst, 0.05 * range, "8-bit error should stay a few percent of the logit range")
    }

    func testGGUFLlamaPermutedRopeAndRopeFreqs() throws { try checkGGUF("llama-gqa-llama3rope") }
    func testGGUFQwen2() throws { try checkGGUF("qwen2-bias-tied") }
    func testGGUFQwen3() throws { try checkGGUF("qwen3-qknorm") }

    func testContextFullIsAnErrorNotACrash() throws {
        let model = try load("qwen2-bias-tied")
        let cache = model.makeCache(capacity: 8)
        XCTAssertThrowsError(try model.forward(Array(repeating: 5, count: 9), cache: cache)) { e in
            XCTAssertTrue(e is ContextFullError)
        }
        let before = cache.length
        XCTAssertThrowsError(try model.forward([1_000_000], cache: cache)) { e in
            XCTAssertTrue("\(e)".contains("token id 1000000 is outside the vocabulary"), "\(e)")
        }
        XCTAssertEqual(cache.length, before, "a refused token must not advance the cache")
    }
}
