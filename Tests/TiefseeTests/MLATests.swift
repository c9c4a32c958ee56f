import XCTest
@testable import Tiefsee

/// Multi-head Latent Attention: the absorbed decode path (W_UK folded into the query, W_UV after
/// attention, on the compressed cache) against the naive expanded path, and the cache layout.
final class MLATests: XCTestCase {
    /// Acceptance 2: 64 decode steps, absorbed vs expanded, logits within 1e-4 at every step.
    func checkAbsorbedEqualsExpanded(_ name: String, file: String? = nil) throws {
        let model = try MoETests.load(name, file: file)
        let mla = try XCTUnwrap(model.config.mla)
        let V = model.config.vocabSize
        let prompt = try MoETests.expected(name).prompt
        let steps = 64
        let absorbed = model.makeCache(capacity: prompt.count + steps)
        let expanded = model.makeCache(capacity: prompt.count + steps)
        model.setLatentAttentionMode(.absorbed)
        var a = try model.forward(prompt, cache: absorbed)
        model.setLatentAttentionMode(.expanded)
        var b = try model.forward(prompt, cache: expanded)
        defer { model.setLatentAttentionMode(.absorbed) }
        var worst = MoETests.maxAbsDiff(a.p, Array(UnsafeBufferPointer(start: b.p, count: V)))
        for _ in 0..<steps {
            let next = Sampler.argmax(a.p, V)  // both paths are fed the same tokens
            model.setLatentAttentionMode(.absorbed)
            a = try model.forward([next], cache: absorbed)
            model.setLatentAttentionMode(.expanded)
            b = try model.forward([next], cache: expanded)
            worst = max(worst, MoETests.maxAbsDiff(a.p, Array(UnsafeBufferPointer(start: b.p, count: V))))
        }
        XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): absorbed vs expanded max abs diff \(worst)")
        XCTAssertEqual(absorbed.length, prompt.count + steps)
        // The cache holds only [latent | k_rope] per token per layer.
        XCTAssertEqual(absorbed.kWidth, mla.kvLoraRank + mla.qkRopeHeadDim)
        XCTAssertEqual(absorbed.vWidth, 0)
        XCTAssertEqual(absorbed.bytes, model.config.numLayers * absorbed.capacity * (mla.kvLoraRank + mla.qkRopeHeadDim) * 4)
        let mha = model.config.numHeads * (mla.qkHeadDim + mla.vHeadDim)
        print("\(name)\(file.map { " (\($0))" } ?? ""): absorbed vs expanded over \(steps) decode steps: max abs diff \(worst); "
              + "cache \(absorbed.kWidth) floats/token/layer (MHA would need \(mha))")
    }

    func testAbsorbedEqualsExpandedV3() throws { try checkAbsorbedEqualsExpanded("deepseek-v3") }
    func testAbsorbedEqualsExpandedV2Lite() throws { try checkAbsorbedEqualsExpanded("deepseek-v2-lite") }
    func testAbsorbedEqualsExpandedSplitKBGGUF() throws { try checkAbsorbedEqualsExpanded("deepseek-v3", file: "model-f32.gguf") }

    func testSoftmaxScaleWithYarnMscale() throws {
        let model = try MoETests.load("deepseek-v3")
        let c = model.config
        XCTAssertEqual(c.ropeScaling.kind, .yarn)
        XCTAssertEqual(c.ropeLayout, .adjacentPairs)
        let attn = try XCTUnwrap(model.layers[0].attention as? MultiHeadLatentAttention)
        let m = 0.1 * 1.0 * log(4.0) + 1
        XCTAssertEqual(Double(attn.softmaxScale), m * m / (48.0).squareRoot(), accuracy: 1e-6)
        // cos/sin scaling is mscale(mscale)/mscale(mscale_all_dim) = 1 for this config.
        XCTAssertEqual(attn.rope.attentionScaling, 1, accuracy: 1e-7)
        // GGUF keeps it through yarn_log_multiplier.
        let g = try MoETests.load("deepseek-v3", file: "model-f32.gguf")
        let ga = try XCTUnwrap(g.layers[0].attention as? MultiHeadLatentAttention)
        XCTAssertEqual(ga.softmaxScale, attn.softmaxScale, accuracy: 1e-6)
        // V2-Lite style (no YaRN): plain qk_head_dim^-0.5.
        let v2 = try XCTUnwrap(try MoETests.load("deepseek-v2-lite").layers[0].attention as? MultiHeadLatentAttention)
        XCTAssertEqual(Double(v2.softmaxScale), 1 / (48.0).squareRoot(), accuracy: 1e-7)
    }

    func testBatchedSequencesShareNothing() throws {
        // Two sequences in one batch through MLA equal each run alone.
        let model = try MoETests.load("deepseek-v3")
        let V = model.config.vocabSize
        let s1 = [1, 5, 9, 33, 70], s2 = [4, 100, 2]
        let alone1 = try model.forward(s1, cache: model.makeCache(capacity: 16))
        let alone2 = try model.forward(s2, cache: model.makeCache(capacity: 16))
        let both = try model.forwardBatch([(s1, model.makeCache(capacity: 16), 1), (s2, model.makeCache(capacity: 16), 1)])
        // Keep the buffers alive while their pointers are read (release builds end lifetimes early).
        let (d1, d2) = withExtendedLifetime((both, alone1, alone2)) {
            (MoETests.maxAbsDiff(both[0].p, Array(UnsafeBufferPointer(start: alone1.p, count: V))),
             MoETests.maxAbsDiff(both[1].p, Array(UnsafeBufferPointer(start: alone2.p, count: V))))
        }
        XCTAssertLessThanOrEqual(max(d1, d2), 1e-5)
    }
}
