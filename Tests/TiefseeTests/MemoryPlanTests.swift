import Foundation
import XCTest
@testable import Tiefsee

/// Bits per weight by tensor kind and the fit-in-memory estimate, on the low-bit MoE fixture.
final class MemoryPlanTests: XCTestCase {
    let path = fixturePath("gguf/lowbit-mixed.gguf")

    func testBitsPerWeightByKind() throws {
        let f = WeightFootprint(try GGUFFile(path: path))
        // Routed experts: gate IQ1_S (50 B), up IQ1_M (56 B), down IQ2_XXS (66 B) per 256 weights,
        // 4 experts x 256 x 256 each.
        let experts = f.part(.routedExperts)
        XCTAssertEqual(experts.weights, 3 * 4 * 256 * 256)
        XCTAssertEqual(experts.bytes, 4 * 256 * (50 + 56 + 66))
        XCTAssertEqual(experts.bitsPerWeight, Double(50 + 56 + 66) * 8 / 768, accuracy: 1e-12)
        // Shared expert: IQ3_XXS, IQ4_XS, Q3_K; embeddings Q2_K + head IQ4_XS (128 x 256 each).
        XCTAssertEqual(f.part(.sharedExperts).bytes, 256 * (98 + 136 + 110))
        XCTAssertEqual(f.part(.embeddings).bytes, 128 * (84 + 136))
        XCTAssertEqual(f.part(.embeddings).tensors, 2)
        XCTAssertEqual(f.part(.attention).tensors, 12)
        XCTAssertEqual(f.part(.denseFFN).tensors, 3)
        XCTAssertEqual(f.part(.other).bitsPerWeight, 32)   // norms, router, expert bias: F32
        let all = try GGUFFile(path: path).tensorInfos
        XCTAssertEqual(f.total.bytes, all.reduce(0) { $0 + $1.byteCount })
        XCTAssertEqual(f.total.tensors, all.count)
        XCTAssertEqual(TensorKind.of(name: "model.layers.3.mlp.experts.7.down_proj.weight", rank: 2), .routedExperts)
        XCTAssertEqual(TensorKind.of(name: "model.layers.3.mlp.shared_experts.up_proj.weight", rank: 2), .sharedExperts)
        XCTAssertEqual(TensorKind.of(name: "model.layers.3.self_attn.kv_a_proj_with_mqa.weight", rank: 2), .attention)
        XCTAssertEqual(TensorKind.of(name: "model.layers.3.mlp.gate.weight", rank: 2), .other)
        XCTAssertEqual(TensorKind.of(name: "lm_head.weight", rank: 2), .embeddings)
        XCTAssertEqual(TensorKind.of(name: "blk.0.attn_norm.weight", rank: 1), .other)
    }

    func testFitsOrStreamsExperts() throws {
        let files = try ModelFiles.open(.gguf(path))
        let weights = WeightFootprint(files.weights).total.bytes
        let experts = WeightFootprint(files.weights).part(.routedExperts).bytes
        // MLA latent cache: 2 layers x (64 + 16) x 4 bytes per token.
        let kv = 256 * 2 * 80 * 4
        let big = try XCTUnwrap(MemoryPlan.estimate(files, availableBytes: 1 << 30))
        XCTAssertEqual(big.kvCacheBytes, kv)
        XCTAssertEqual(big.contextTokens, 256)
        XCTAssertEqual(big.verdict, .fits)
        XCTAssertTrue(big.summary.hasPrefix("memory: fits"), big.summary)
        let mid = try XCTUnwrap(MemoryPlan.estimate(files, availableBytes: weights + kv - experts / 2))
        XCTAssertEqual(mid.verdict, .streamsExperts)
        XCTAssertEqual(mid.residentBytes, weights - experts + kv)
        XCTAssertTrue(mid.summary.contains("routed experts (0.2 MiB) will stream from disk"), mid.summary)
        XCTAssertTrue(mid.summary.contains("about 50% of the experts"), mid.summary)
        // An expert cache is resident memory too; a shorter context shrinks the cache.
        var o = EngineOptions()
        o.experts = ExpertResidencyOptions(cacheBytes: experts)
        XCTAssertEqual(MemoryPlan.estimate(files, options: o, availableBytes: weights + kv - experts / 2)?.verdict, .pagesWeights)
        XCTAssertEqual(MemoryPlan.estimate(files, contextTokens: 16, availableBytes: weights + 16 * 640)?.verdict, .fits)
        let small = try XCTUnwrap(MemoryPlan.estimate(files, availableBytes: 100_000))
        XCTAssertEqual(small.verdict, .pagesWeights)
        XCTAssertTrue(small.summary.contains("paged in from disk on every token"), small.summary)
    }
}
